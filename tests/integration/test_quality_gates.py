"""Ansible's quality gates, run as tests: ansible-test sanity and units, ruff, mypy,
ansible-lint with the production profile, and the module and role documentation as
ansible-doc renders it.

Each gate runs its tool as a subprocess. A failure shows the command, its exit status and the
end of its output, which is where every tool here prints its findings. ``make lint``,
``make sanity`` and ``make units`` run the same tools by hand. The first sanity run installs
each sanity test's requirements from PyPI into virtualenvs under .venv/ansible-test, which
takes about 3 minutes on 2 cores. Later runs take about a minute.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.dbops.migrations.plugins.modules import (
    postgresql_matview_refresh,
    postgresql_migrate,
    postgresql_migration_info,
)
from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, playbook_environment

VENV_BIN = ANSIBLE_PLAYBOOK.parent
ANSIBLE_TEST_LOCAL = REPO_ROOT / "tools" / "ansible_test_local.py"
SANITY_TIMEOUT_SECONDS = 1200.0
COMMAND_TIMEOUT_SECONDS = 300.0
OUTPUT_TAIL_LINES = 200

MODULES = ("postgresql_migrate", "postgresql_migration_info", "postgresql_matview_refresh")
ARGUMENT_SPECS = {
    "postgresql_migrate": postgresql_migrate.argument_spec,
    "postgresql_migration_info": postgresql_migration_info.argument_spec,
    "postgresql_matview_refresh": postgresql_matview_refresh.argument_spec,
}
MODULE_SECTIONS = (
    "OPTIONS",
    "ATTRIBUTES:",
    "NOTES:",
    "REQUIREMENTS:",
    "SEE ALSO:",
    "AUTHOR:",
    "EXAMPLES:",
    "RETURN VALUES:",
)
ROLE_ENTRY_POINTS = ("main", "schema", "views", "matviews", "refresh", "verify")


def run_gate(
    command: Sequence[str | Path],
    *,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the repository with stdout and stderr combined, without raising."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def failure_report(run: subprocess.CompletedProcess[str]) -> str:
    """Return the command, its exit status and the last lines of its output."""
    lines = run.stdout.splitlines()
    shown = "\n".join(lines[-OUTPUT_TAIL_LINES:])
    skipped = len(lines) - min(len(lines), OUTPUT_TAIL_LINES)
    header = f"{' '.join(run.args)} exited with {run.returncode}"
    if skipped:
        header += f" ({skipped} earlier lines of output left out)"
    return f"{header}:\n{shown}"


def ansible_doc_json(plugin_type: str, name: str) -> dict[str, Any]:
    """Return the documentation that ``ansible-doc --json`` gives for one plugin or role."""
    run = run_gate(
        [VENV_BIN / "ansible-doc", "-t", plugin_type, "--json", name], env=playbook_environment({})
    )
    assert run.returncode == 0, failure_report(run)
    docs: dict[str, Any] = json.loads(run.stdout)
    return docs[name]


# ---------------------------------------------------------------------------------------------
# ansible-test


def test_ansible_test_sanity() -> None:
    run = run_gate([sys.executable, ANSIBLE_TEST_LOCAL, "sanity"], timeout=SANITY_TIMEOUT_SECONDS)

    assert run.returncode == 0, failure_report(run)


def test_ansible_test_units() -> None:
    run = run_gate([sys.executable, ANSIBLE_TEST_LOCAL, "units"])

    assert run.returncode == 0, failure_report(run)
    assert " passed" in run.stdout, failure_report(run)


def test_sanity_has_no_ignore_entries() -> None:
    """ansible-test sanity passes on its own, without entries that exempt a file."""
    ignore_files = sorted((REPO_ROOT / "tests" / "sanity").glob("ignore-*.txt"))

    assert ignore_files == []


def test_every_option_in_an_argument_spec_is_documented() -> None:
    for module in MODULES:
        spec = ARGUMENT_SPECS[module]()
        options = ansible_doc_json("module", f"dbops.migrations.{module}")["doc"]["options"]

        assert set(spec) == set(options), module
        for name, option in options.items():
            assert spec[name].get("elements") == option.get("elements"), f"{module} {name}"
            assert set(spec[name].get("options") or {}) == set(option.get("suboptions") or {}), (
                f"{module} {name}"
            )


# ---------------------------------------------------------------------------------------------
# ruff, mypy and ansible-lint


def test_ruff_check() -> None:
    run = run_gate([VENV_BIN / "ruff", "check", "--no-cache", "."])

    assert run.returncode == 0, failure_report(run)


def test_ruff_format() -> None:
    run = run_gate([VENV_BIN / "ruff", "format", "--check", "--no-cache", "."])

    assert run.returncode == 0, failure_report(run)


def test_mypy_engine() -> None:
    """mypy checks plugins/module_utils/_migrations, with the options in pyproject.toml."""
    run = run_gate([VENV_BIN / "mypy"])

    assert run.returncode == 0, failure_report(run)


def test_ansible_lint_production_profile() -> None:
    """ansible-lint loads dbops.migrations from .collections/ through ansible.cfg; --offline
    keeps it from installing a copy of the collection into a cache of its own."""
    command = [VENV_BIN / "ansible-lint", "--offline", "--profile", "production", "--nocolor"]
    run = run_gate([*command, "roles", "playbooks", "molecule"], env=playbook_environment({}))

    assert run.returncode == 0, failure_report(run)
    assert "Profile 'production' was required, and it passed." in run.stdout, failure_report(run)


# ---------------------------------------------------------------------------------------------
# Documentation as ansible-doc renders it


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders_sections(module: str) -> None:
    name = f"dbops.migrations.{module}"
    run = run_gate([VENV_BIN / "ansible-doc", "-t", "module", name], env=playbook_environment({}))

    assert run.returncode == 0, failure_report(run)
    for section in MODULE_SECTIONS:
        assert section in run.stdout, f"{section} missing from ansible-doc {name}"
    for attribute in ("check_mode:", "diff_mode:", "action_group:", "platform:"):
        assert attribute in run.stdout, f"attribute {attribute} missing from ansible-doc {name}"


@pytest.mark.parametrize("module", MODULES)
def test_module_return_values_have_samples(module: str) -> None:
    returns = ansible_doc_json("module", f"dbops.migrations.{module}")["return"]

    for key, value in returns.items():
        for field in ("description", "returned", "type", "sample"):
            assert field in value, f"{module} return value {key} has no {field}"


@pytest.mark.parametrize("module", MODULES)
def test_module_attributes_for_check_and_diff_mode(module: str) -> None:
    attributes = ansible_doc_json("module", f"dbops.migrations.{module}")["doc"]["attributes"]

    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] in ("full", "none")
    assert attributes["action_group"]["membership"] == ["dbops.migrations.postgresql"]


def test_migrate_examples_cover_check_mode_and_inventory() -> None:
    examples = ansible_doc_json("module", "dbops.migrations.postgresql_migrate")["examples"]

    assert "check_mode: true" in examples
    assert "hosts: databases" in examples
    assert "group/dbops.migrations.postgresql:" in examples


def test_role_doc_renders_entry_points() -> None:
    name = "dbops.migrations.schema"
    run = run_gate([VENV_BIN / "ansible-doc", "-t", "role", name], env=playbook_environment({}))

    assert run.returncode == 0, failure_report(run)
    # Without colour, ansible-doc marks the entry point's name with asterisks.
    entry_points = re.findall(r"^ENTRY POINT: \*?(\w+)\*? - ", run.stdout, flags=re.M)
    assert entry_points == list(ROLE_ENTRY_POINTS), failure_report(run)
    assert "schema_login_host" in run.stdout
