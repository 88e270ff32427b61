"""Tests of the AWX configuration in awx/ and docs/awx.md, without an AWX server.

No AWX server runs here, so these tests check what can be checked without one:

- ``awx/configure_awx.yml`` passes ``ansible-playbook --syntax-check``, which resolves every
  module name, and ansible-lint, which also checks each module's arguments. Both need the
  awx.awx collection, which ``make awx-collection`` unpacks from the ``ansible`` package on PyPI.
  The same ansible-lint run checks execution-environment.yml against its schema.
- The credential type passes the checks that AWX applies when one is created, and its
  injectors, rendered the way AWX renders them for a job, produce a libpq environment.
- Each job template's playbook runs with ansible-playbook, given the options, survey answer,
  inventory and environment that AWX would give it, against a throwaway PostgreSQL server.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_SQL,
    history_versions,
    migrate,
    migrate_params,
    user_relations,
)
from pgcluster import Database
from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, playbook_environment

AWX_DIR = REPO_ROOT / "awx"
CONFIGURE_PLAYBOOK = AWX_DIR / "configure_awx.yml"
AWX_COLLECTIONS = REPO_ROOT / ".venv" / "awx-collections"
VENV_BIN = ANSIBLE_PLAYBOOK.parent
COMMAND_TIMEOUT_SECONDS = 300.0

LIBPQ_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
LIBPQ_VARIABLES = {
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
}
CONTROLLER_OPTIONS = {
    "controller_host",
    "controller_oauthtoken",
    "controller_username",
    "controller_password",
    "controller_config_file",
}
# Keys that AWX accepts in a field of a custom credential type, from the JSON schema of
# CredentialTypeInputField in AWX's awx/main/fields.py.
FIELD_KEYS = {
    "id",
    "label",
    "type",
    "format",
    "choices",
    "help_text",
    "multiline",
    "secret",
    "ask_at_runtime",
    "default",
}
IDENTIFIER = re.compile(r"^[a-zA-Z_]+[a-zA-Z0-9_]*$")
FILE_TEMPLATE_KEY = re.compile(r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$")

RunPlaybook = Callable[..., subprocess.CompletedProcess[str]]
PlayRecap = Callable[..., dict[str, int]]


class _PlaybookLoader(yaml.SafeLoader):
    """YAML loader that reads Ansible's ``!unsafe`` tag as a plain string."""


_PlaybookLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_PlaybookLoader)


CREDENTIAL_INPUTS = load_yaml(AWX_DIR / "credential_type" / "inputs.yml")
CREDENTIAL_INJECTORS = load_yaml(AWX_DIR / "credential_type" / "injectors.yml")
PLAY = load_yaml(CONFIGURE_PLAYBOOK)[0]


def tasks_of(module: str) -> list[dict[str, Any]]:
    """Return the arguments of every task of ``configure_awx.yml`` that calls ``module``."""
    return [task[module] for task in PLAY["tasks"] if module in task]


def task_calling(module: str) -> dict[str, Any]:
    """Return the task of ``configure_awx.yml`` that calls ``module``, which must be unique."""
    tasks = [task for task in PLAY["tasks"] if module in task]
    assert len(tasks) == 1, f"expected one task calling {module}, found {len(tasks)}"
    return tasks[0]


def job_template(key: str) -> dict[str, Any]:
    """Return the arguments of the job template named ``dbops_awx_job_templates[key]``."""
    name = PLAY["vars"]["dbops_awx_job_templates"][key]
    for template in tasks_of("awx.awx.job_template"):
        if template["name"] == f"{{{{ dbops_awx_job_templates.{key} }}}}":
            return template
    raise AssertionError(f"no job template task for {name!r}")


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    return f"{run.stdout}\n{run.stderr}"


# ---------------------------------------------------------------------------------------------
# configure_awx.yml with awx.awx


@pytest.fixture(scope="module")
def awx_collections() -> Path:
    """Unpack awx.awx with ``make awx-collection`` and return the collections path.

    Each pytest-xdist worker runs this fixture, so a file lock keeps a second ``make`` from
    deleting the directory that the first one is filling.
    """
    with open(AWX_COLLECTIONS.parent / "awx-collections.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        completed = subprocess.run(
            ["make", "--no-print-directory", "awx-collection"],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    if completed.returncode != 0:
        pytest.fail(f"make awx-collection failed:\n{output_of(completed)}")
    return AWX_COLLECTIONS


def test_configure_awx_syntax_check(awx_collections: Path) -> None:
    environment = playbook_environment({}, {"ANSIBLE_COLLECTIONS_PATH": str(awx_collections)})

    run = subprocess.run(
        [ANSIBLE_PLAYBOOK, "--syntax-check", CONFIGURE_PLAYBOOK],
        cwd=AWX_DIR,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )

    assert run.returncode == 0, output_of(run)


def test_ansible_lint_awx_and_ee(awx_collections: Path) -> None:
    """Lint awx/ and, in the same run, execution-environment.yml against its schema."""
    ansible_lint = VENV_BIN / "ansible-lint"
    if not ansible_lint.exists():
        pytest.skip("ansible-lint is not installed in the virtualenv")
    environment = playbook_environment({}, {"ANSIBLE_COLLECTIONS_PATH": str(awx_collections)})

    # --strict fails on warnings too, such as those of the experimental args rule, which
    # checks each module's arguments against its argument spec.
    run = subprocess.run(
        [ansible_lint, "--offline", "--strict", "--nocolor", "awx/", "execution-environment.yml"],
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )

    assert run.returncode == 0, output_of(run)


def test_configure_awx_takes_controller_from_environment() -> None:
    text = CONFIGURE_PLAYBOOK.read_text(encoding="utf-8")
    first_check = PLAY["tasks"][0]["ansible.builtin.assert"]["that"]

    for task in PLAY["tasks"]:
        for module, arguments in task.items():
            if module.startswith("awx.awx."):
                assert CONTROLLER_OPTIONS.isdisjoint(arguments), task["name"]
    assert "lookup('ansible.builtin.env', 'CONTROLLER_HOST') | length > 0" in first_check
    assert "lookup('ansible.builtin.env', 'CONTROLLER_OAUTH_TOKEN') | length > 0" in first_check
    # The usage comment shows `CONTROLLER_OAUTH_TOKEN=...`, and any other value is a token.
    assert re.findall(r"CONTROLLER_OAUTH_TOKEN=(?!\.\.\.)\S+", text) == []


def test_configure_awx_stops_without_controller(
    awx_collections: Path, play_recap: PlayRecap
) -> None:
    """Run the playbook with no AWX server set: its first task must stop it, before any module
    of awx.awx falls back to 127.0.0.1."""
    environment = playbook_environment({}, {"ANSIBLE_COLLECTIONS_PATH": str(awx_collections)})
    for name in ("CONTROLLER_HOST", "CONTROLLER_OAUTH_TOKEN", "TOWER_HOST", "TOWER_OAUTH_TOKEN"):
        environment.pop(name, None)

    run = subprocess.run(
        [ANSIBLE_PLAYBOOK, CONFIGURE_PLAYBOOK],
        cwd=AWX_DIR,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )

    recap = play_recap(run.stdout)
    assert run.returncode != 0, output_of(run)
    assert recap["ok"] == 0, output_of(run)
    assert recap["failed"] == 1, output_of(run)
    assert "Set CONTROLLER_HOST, CONTROLLER_OAUTH_TOKEN" in run.stdout, output_of(run)


def test_configure_awx_password_from_environment() -> None:
    task = task_calling("awx.awx.credential")

    assert task.get("no_log") is True
    assert task["awx.awx.credential"]["inputs"]["password"] == (
        "{{ lookup('ansible.builtin.env', 'PGPASSWORD') }}"
    )
    assert task["awx.awx.credential"]["credential_type"] == "{{ dbops_awx_credential_type }}"


def test_job_templates_run_shipped_playbooks() -> None:
    expected = {
        "deploy": ("playbooks/deploy_schema.yml", "run"),
        "check": ("playbooks/deploy_schema.yml", "check"),
        "status": ("playbooks/migration_status.yml", "run"),
        "refresh": ("playbooks/refresh_matviews.yml", "run"),
    }

    for key, (playbook, job_type) in expected.items():
        template = job_template(key)
        assert template["playbook"] == playbook, key
        assert (REPO_ROOT / playbook).is_file(), playbook
        assert template["job_type"] == job_type, key
        assert template["credentials"] == ["{{ dbops_awx_credential }}"], key
        assert "extra_vars" not in template, key


def test_check_job_template_shows_diff() -> None:
    assert job_template("check")["diff_mode"] is True
    assert "diff_mode" not in job_template("deploy")


def test_target_survey_sets_deploy_target() -> None:
    survey = PLAY["vars"]["dbops_awx_target_survey"]

    assert job_template("deploy")["survey_enabled"] is True
    assert job_template("deploy")["survey_spec"] == "{{ dbops_awx_target_survey }}"
    assert job_template("check")["survey_spec"] == "{{ dbops_awx_target_survey }}"
    assert {"name", "description"} <= survey.keys()
    assert [question["variable"] for question in survey["spec"]] == ["deploy_schema_target"]
    # deploy_schema.yml rejects an empty target, which AWX sends for a blank optional answer.
    assert survey["spec"][0]["required"] is True
    assert survey["spec"][0]["min"] == 1


def test_refresh_schedule_every_five_minutes() -> None:
    schedule = task_calling("awx.awx.schedule")["awx.awx.schedule"]
    rrule = PLAY["vars"]["dbops_awx_refresh_rrule"]

    assert schedule["unified_job_template"] == "{{ dbops_awx_job_templates.refresh }}"
    assert schedule["rrule"] == "{{ dbops_awx_refresh_rrule }}"
    assert re.fullmatch(r"DTSTART;TZID=UTC:\d{8}T\d{6} RRULE:FREQ=MINUTELY;INTERVAL=5", rrule)
    assert job_template("refresh")["allow_simultaneous"] is False


# ---------------------------------------------------------------------------------------------
# The credential type


def test_credential_type_inputs() -> None:
    fields = {field["id"]: field for field in CREDENTIAL_INPUTS["fields"]}

    assert list(fields) == [
        "host",
        "port",
        "username",
        "password",
        "database",
        "sslmode",
        "sslrootcert",
    ]
    assert [name for name, field in fields.items() if field.get("secret")] == ["password"]
    assert fields["sslrootcert"]["multiline"] is True
    assert set(fields["sslmode"]["choices"]) == LIBPQ_SSLMODES
    assert set(CREDENTIAL_INPUTS["required"]) <= fields.keys()


def test_credential_type_accepted_by_awx_rules() -> None:
    """Apply the checks that AWX 24 makes when a credential type is created or changed."""
    defined = [field["id"] for field in CREDENTIAL_INPUTS["fields"]]

    assert set(CREDENTIAL_INPUTS) <= {"fields", "required"}
    assert len(defined) == len(set(defined)), defined
    for field in CREDENTIAL_INPUTS["fields"]:
        assert set(field) <= FIELD_KEYS, field
        assert IDENTIFIER.match(field["id"]), field
        assert field["id"] != "tower", field
        assert field.get("type", "string") == "string", field
        assert isinstance(field.get("default", ""), str), field
    assert set(CREDENTIAL_INJECTORS) <= {"file", "env", "extra_vars"}
    assert all(FILE_TEMPLATE_KEY.match(key) for key in CREDENTIAL_INJECTORS["file"])
    for name in CREDENTIAL_INJECTORS["env"]:
        assert IDENTIFIER.match(name), name
        assert not name.startswith("ANSIBLE_"), name
    # AWX renders every injector with StrictUndefined to reject unknown field names.
    namespace: dict[str, Any] = dict.fromkeys(defined, "EXAMPLE")
    namespace["tower"] = {"filename": {"sslrootcert": "EXAMPLE_FILENAME"}}
    strict = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    for section in ("file", "env"):
        for template in CREDENTIAL_INJECTORS[section].values():
            strict.from_string(template).render(namespace)


def inject_credential(inputs: Mapping[str, str], private_dir: Path) -> dict[str, str]:
    """Render the injectors for a credential with ``inputs`` and return the job's environment.

    This follows AWX's CredentialType.inject_credential. Inputs left empty are not defined
    for the templates, and each file injector is written to a file with mode 0600, which
    ``tower.filename.<name>`` names in the env templates.
    """
    namespace: dict[str, Any] = {name: value for name, value in inputs.items() if value}
    sandbox = ImmutableSandboxedEnvironment()
    filenames = {}
    for key, template in CREDENTIAL_INJECTORS.get("file", {}).items():
        path = private_dir / f"credential_{key.split('.')[-1]}"
        path.write_text(sandbox.from_string(template).render(namespace), encoding="utf-8")
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        filenames[key.split(".")[-1]] = str(path)
    namespace["tower"] = {"filename": filenames}
    return {
        name: sandbox.from_string(template).render(namespace)
        for name, template in CREDENTIAL_INJECTORS["env"].items()
    }


def test_injectors_set_libpq_environment(tmp_path: Path) -> None:
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    inputs = {
        "host": "db.example.com",
        "port": "6432",
        "username": "app_owner",
        "password": "s3cret",
        "database": "tracking_hub",
        "sslmode": "verify-full",
        "sslrootcert": certificate,
    }

    environment = inject_credential(inputs, tmp_path)

    assert set(environment) == LIBPQ_VARIABLES
    assert environment["PGHOST"] == "db.example.com"
    assert environment["PGPORT"] == "6432"
    assert environment["PGUSER"] == "app_owner"
    assert environment["PGPASSWORD"] == "s3cret"
    assert environment["PGDATABASE"] == "tracking_hub"
    assert environment["PGSSLMODE"] == "verify-full"
    ca_file = Path(environment["PGSSLROOTCERT"])
    assert ca_file.read_text(encoding="utf-8") == certificate
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600


def test_injectors_fill_empty_inputs(tmp_path: Path) -> None:
    inputs = {"host": "db.example.com", "username": "u", "password": "p", "database": "d"}

    environment = inject_credential({**inputs, "port": "", "sslrootcert": ""}, tmp_path)

    assert environment["PGPORT"] == "5432"
    assert environment["PGSSLMODE"] == "verify-full"
    # libpq reads an empty PGSSLROOTCERT as unset and uses ~/.postgresql/root.crt.
    assert environment["PGSSLROOTCERT"] == ""


# ---------------------------------------------------------------------------------------------
# Job templates, launched as AWX would launch them


@pytest.fixture
def launch_job(
    database: Database, run_playbook: RunPlaybook, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Return launch(key, survey_answers) that runs job template ``key`` against ``database``.

    The environment comes from the credential's injectors, filled with the database's
    connection. The inventory contains the host that configure_awx.yml creates. Job type check
    adds --check, and diff mode adds --diff. Survey answers become extra variables, and so do
    awx_job_id and awx_job_template_name, which AWX sets for every job.
    """
    connection = database.env
    inputs = {
        "host": connection["PGHOST"],
        "port": connection["PGPORT"],
        "username": connection["PGUSER"],
        "password": connection["PGPASSWORD"],
        "database": connection["PGDATABASE"],
        # The throwaway server has no TLS.
        "sslmode": "disable",
        "sslrootcert": "",
    }
    environment = inject_credential(inputs, tmp_path)
    host = tasks_of("awx.awx.host")[0]
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps({"all": {"hosts": {host["name"]: host["variables"]}}}), encoding="utf-8"
    )

    def launch(
        key: str, survey_answers: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        template = job_template(key)
        extra_vars = {"awx_job_id": 42, "awx_job_template_name": key, **(survey_answers or {})}
        arguments = [template["playbook"], "-i", str(inventory), "-e", json.dumps(extra_vars)]
        if template["job_type"] == "check":
            arguments.append("--check")
        if template.get("diff_mode"):
            arguments.append("--diff")
        return run_playbook(*arguments, env=environment)

    return launch


def test_deploy_job_applies_survey_target(
    database: Database, launch_job: Callable[..., Any], play_recap: PlayRecap
) -> None:
    run = launch_job("deploy", {"deploy_schema_target": "2"})

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["changed"] == 1, output_of(run)
    assert history_versions(database) == ["1", "2"]
    assert database.env["PGPASSWORD"] not in output_of(run)


def test_check_job_previews_without_writing(
    database: Database, launch_job: Callable[..., Any], play_recap: PlayRecap
) -> None:
    run = launch_job("check", {"deploy_schema_target": "3"})

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["changed"] == 1, output_of(run)
    assert "V1__initial_schema.sql" in run.stdout, output_of(run)
    assert user_relations(database) == set()


def test_status_and_refresh_jobs_after_deploy(
    database: Database, launch_job: Callable[..., Any], play_recap: PlayRecap
) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    # Make one materialized view due, as if its interval had passed since the deploy.
    due = "UPDATE materialized_view_refresh SET last_refreshed_at = now() - interval '1 hour'"
    database.query(f"{due} WHERE view_name = 'v_dispatch_summary'")

    status = launch_job("status")
    refresh = launch_job("refresh")

    assert status.returncode == 0, output_of(status)
    assert play_recap(status.stdout)["changed"] == 0, output_of(status)
    # The status is printed as a list of lines, one JSON string each.
    assert re.search(r'"Pending:",\s+"  none"', status.stdout), status.stdout
    assert refresh.returncode == 0, output_of(refresh)
    assert play_recap(refresh.stdout)["changed"] == 1, output_of(refresh)
    stale = database.query(
        "SELECT view_name FROM materialized_view_refresh"
        " WHERE last_refreshed_at < now() - interval '30 minutes'"
    )
    assert stale == [], output_of(refresh)


def test_docs_name_every_awx_file() -> None:
    docs = (REPO_ROOT / "docs" / "awx.md").read_text(encoding="utf-8")
    awx_files = sorted(
        str(path.relative_to(REPO_ROOT)) for path in AWX_DIR.rglob("*") if path.is_file()
    )

    assert [name for name in awx_files if f"`{name}`" not in docs] == []
    assert "No AWX server runs" in docs


def test_awx_collection_target_unpacks_only_awx(awx_collections: Path) -> None:
    namespaces = sorted(os.listdir(awx_collections / "ansible_collections"))

    assert namespaces == ["awx"]
    manifest = json.loads(
        (awx_collections / "ansible_collections" / "awx" / "awx" / "MANIFEST.json").read_text()
    )
    assert manifest["collection_info"]["name"] == "awx"
