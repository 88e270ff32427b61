"""Tests of the collection as it is shipped: the changelog, the artifact that ansible-galaxy
builds, a deploy from that artifact once installed, and the execution environment's build
context.

The deploy runs ``ansible-playbook dbops.migrations.deploy_schema`` outside the repository,
with ANSIBLE_COLLECTIONS_PATH naming only the temporary install, so the checkout is not used.
The execution environment is checked with ``ansible-builder create``, which writes the build
context without building an image: the tests have no container engine.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from bindep.depends import Depends

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    history_versions,
    relations_by_kind,
)
from pgcluster import Database
from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, playbook_environment

VENV_BIN = ANSIBLE_PLAYBOOK.parent
COMMAND_TIMEOUT_SECONDS = 300.0

GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text(encoding="utf-8"))
ARTIFACT_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"

# Path components that only a checkout has: virtualenvs, caches, test and benchmark output.
LOCAL_COMPONENTS = {
    ".git",
    ".collections",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".ansible",
    "__pycache__",
}
LOCAL_PREFIXES = ("tests/output", "bench/results", "context/")
# Generous: the artifact is about 0.2 MB, and one stray virtualenv makes it tens of MB.
MAX_ARTIFACT_BYTES = 5 * 1024 * 1024


def run(
    command: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and return the finished process; fail the test when it exits non-zero."""
    completed = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        output = f"{completed.stdout}\n{completed.stderr}"
        pytest.fail(f"{command[0]} exited with {completed.returncode}:\n{output}")
    return completed


def tool_environment(**extra: str) -> dict[str, str]:
    """Return the environment for Ansible's tools, with the venv first on PATH.

    playbook_environment drops ANSIBLE_COLLECTIONS_PATH and ANSIBLE_CONFIG, so only what
    ``extra`` sets decides where collections are found.
    """
    return playbook_environment({}, extra)


def build_collection(source: Path, output: Path) -> Path:
    run(
        [VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", output, source],
        output,
    )
    return output / ARTIFACT_NAME


def artifact_members(artifact: Path) -> list[str]:
    with tarfile.open(artifact) as archive:
        return archive.getnames()


def local_only_members(members: list[str]) -> list[str]:
    """Return the members that come from a checkout's local files rather than the source."""
    found = []
    for member in members:
        parts = PurePosixPath(member).parts
        if LOCAL_COMPONENTS.intersection(parts) or any(p.startswith(".venv") for p in parts):
            found.append(member)
        elif member.startswith(LOCAL_PREFIXES) or member.endswith((".tar.gz", ".pyc")):
            found.append(member)
    return found


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the checkout with ansible-galaxy and return the artifact's path."""
    output = tmp_path_factory.mktemp("artifact")
    return build_collection(REPO_ROOT, output)


@pytest.fixture(scope="module")
def collections_root(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the artifact offline into a new collections path and return that path."""
    root = tmp_path_factory.mktemp("collections")
    command = ["ansible-galaxy", "collection", "install", "--offline", "--no-deps"]
    run([*command, "--collections-path", root, artifact], root, tool_environment())
    return root


# ---------------------------------------------------------------------------------------------
# Changelog


def test_changelog_fragments_lint() -> None:
    completed = run([VENV_BIN / "antsibull-changelog", "lint"], REPO_ROOT)

    assert completed.stdout == "", completed.stdout


def test_changelog_yaml_lint() -> None:
    command = [VENV_BIN / "antsibull-changelog", "lint-changelog-yaml", "changelogs/changelog.yaml"]

    completed = run(command, REPO_ROOT)

    assert completed.stdout == "", completed.stdout


def test_changelog_release_collects_fragments(tmp_path: Path) -> None:
    """Release the version of galaxy.yml in a copy, and compare the result with the fragments."""
    copy = tmp_path / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    for name in ("changelogs", "meta", "plugins", "roles", "playbooks"):
        shutil.copytree(REPO_ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO_ROOT / "galaxy.yml", copy / "galaxy.yml")
    fragments = [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted((REPO_ROOT / "changelogs" / "fragments").glob("*.yml"))
    ]
    command = [
        "antsibull-changelog",
        "release",
        "--version",
        GALAXY["version"],
        "--date",
        "2026-01-01",
    ]

    run(command, copy, tool_environment())

    changelog = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text(encoding="utf-8"))
    release = changelog["releases"][GALAXY["version"]]
    minor_changes = [entry for fragment in fragments for entry in fragment.get("minor_changes", [])]
    summaries = [
        fragment["release_summary"] for fragment in fragments if "release_summary" in fragment
    ]
    assert sorted(release["changes"]["minor_changes"]) == sorted(minor_changes)
    assert [release["changes"]["release_summary"]] == summaries
    assert {module["name"] for module in release["modules"]} == {
        "postgresql_migrate",
        "postgresql_migration_info",
        "postgresql_matview_refresh",
    }
    assert (copy / "CHANGELOG.md").is_file()


# ---------------------------------------------------------------------------------------------
# Artifact


def test_artifact_contains_collection(artifact: Path) -> None:
    members = set(artifact_members(artifact))

    assert {"MANIFEST.json", "FILES.json", "meta/runtime.yml"} <= members
    assert "plugins/modules/postgresql_migrate.py" in members
    assert "roles/schema/tasks/main.yml" in members
    assert "playbooks/deploy_schema.yml" in members
    assert "files/sql/schema/V1__initial_schema.sql" in members
    assert "changelogs/changelog.yaml" in members


def test_artifact_leaves_out_local_files(artifact: Path) -> None:
    members = artifact_members(artifact)

    assert local_only_members(members) == []
    assert artifact.stat().st_size < MAX_ARTIFACT_BYTES, sorted(members)


def test_build_ignore_covers_generated_paths(tmp_path: Path) -> None:
    """Plant what make, pytest, ansible-builder and the benchmarks create, and build a copy."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "meta", source / "meta")
    for name in ("galaxy.yml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    planted = [
        ".venv/bin/python",
        ".venv/awx-collections/ansible_collections/awx/awx/MANIFEST.json",
        ".collections/ansible_collections/dbops/migrations/galaxy.yml",
        ".hypothesis/examples/0",
        ".pytest_cache/README.md",
        ".ruff_cache/CACHEDIR.TAG",
        ".ansible/collections/README",
        "bench/.venv-community/bin/python",
        "bench/results/smoke/results.json",
        "tests/output/junit.xml",
        "context/Containerfile",
        "changelogs/.plugin-cache.yaml",
        "plugins/modules/__pycache__/postgresql_migrate.cpython-311.pyc",
        "dbops-migrations-0.0.1.tar.gz",
    ]
    for name in planted:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("planted\n", encoding="utf-8")
    output = tmp_path / "output"
    output.mkdir()

    members = artifact_members(build_collection(source, output))

    assert [name for name in planted if name in members] == []
    assert local_only_members(members) == []


# ---------------------------------------------------------------------------------------------
# Installed collection


def test_installed_collection_is_only_copy(collections_root: Path) -> None:
    environment = tool_environment(ANSIBLE_COLLECTIONS_PATH=str(collections_root))
    command = ["ansible-galaxy", "collection", "list", "dbops.migrations", "--format", "json"]

    listing = json.loads(run(command, collections_root, environment).stdout)

    installed = collections_root / "ansible_collections"
    assert {path: sorted(found) for path, found in listing.items()} == {
        str(installed): ["dbops.migrations"]
    }
    assert (installed / "dbops" / "migrations" / "MANIFEST.json").is_file()


def run_installed_playbook(
    name: str, database: Database, collections_root: Path
) -> subprocess.CompletedProcess[str]:
    """Run the installed playbook ``dbops.migrations.<name>`` outside the repository."""
    environment = playbook_environment(
        database.env, {"ANSIBLE_COLLECTIONS_PATH": str(collections_root)}
    )
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, f"dbops.migrations.{name}"],
        cwd=collections_root,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def test_installed_collection_deploys(
    database: Database, collections_root: Path, play_recap: Callable[..., dict[str, int]]
) -> None:
    completed = run_installed_playbook("deploy_schema", database, collections_root)

    output = f"{completed.stdout}\n{completed.stderr}"
    assert completed.returncode == 0, output
    assert play_recap(completed.stdout)["changed"] == 1, output
    assert play_recap(completed.stdout)["failed"] == 0, output
    relations = relations_by_kind(database)
    assert relations["table"] == SHIPPED_TABLES | {"schema_migrations"}
    assert relations["materialized view"] == SHIPPED_MATERIALIZED_VIEWS
    assert relations["view"] == SHIPPED_VIEWS
    assert history_versions(database) == ["1", "2", "3"]


def test_installed_status_and_refresh_playbooks(
    database: Database, collections_root: Path, play_recap: Callable[..., dict[str, int]]
) -> None:
    deploy = run_installed_playbook("deploy_schema", database, collections_root)
    assert deploy.returncode == 0, f"{deploy.stdout}\n{deploy.stderr}"

    status = run_installed_playbook("migration_status", database, collections_root)
    refresh = run_installed_playbook("refresh_matviews", database, collections_root)

    status_output = f"{status.stdout}\n{status.stderr}"
    assert status.returncode == 0, status_output
    assert play_recap(status.stdout)["changed"] == 0, status_output
    assert (
        "The database is at version 3: 3 applied, 0 failed, 0 pending, 0 drifted." in status_output
    )
    refresh_output = f"{refresh.stdout}\n{refresh.stderr}"
    assert refresh.returncode == 0, refresh_output
    assert play_recap(refresh.stdout)["failed"] == 0, refresh_output
    # V3 records both views as refreshed when it creates them, so neither is due yet.
    assert '"msg": "No materialized view refreshed; 2 not due."' in refresh_output


# ---------------------------------------------------------------------------------------------
# Execution environment

EE_DEFINITION = yaml.safe_load((REPO_ROOT / "execution-environment.yml").read_text("utf-8"))


@functools.cache
def bindep_rules() -> Depends:
    """Parse bindep.txt once, because every parse rebuilds bindep's grammar (a second or more)."""
    return Depends((REPO_ROOT / "bindep.txt").read_text(encoding="utf-8"))


def requirement_pin(name: str) -> str:
    """Return the line of requirements.txt that pins ``name``."""
    for line in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if re.match(rf"{re.escape(name)}\s*==", line):
            return line.strip()
    raise AssertionError(f"requirements.txt does not pin {name}")


@pytest.fixture(scope="module")
def ee_context(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``ansible-builder create`` on copies of the definition and its files."""
    workdir = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy2(REPO_ROOT / name, workdir / name)
    shutil.copy2(artifact, workdir / artifact.name)
    context = workdir / "context"
    command = [VENV_BIN / "ansible-builder", "create", "--file", "execution-environment.yml"]
    command += ["--context", context, "--output-filename", "Containerfile"]

    completed = run(command, workdir, tool_environment())

    # ansible-builder only warns when a file of additional_build_files is missing.
    assert "No matches" not in completed.stdout + completed.stderr, completed.stdout
    return context


def test_ee_pins_follow_requirements() -> None:
    dependencies: dict[str, Any] = EE_DEFINITION["dependencies"]

    assert EE_DEFINITION["version"] == 3
    assert dependencies["ansible_core"]["package_pip"] == requirement_pin("ansible-core")
    assert dependencies["ansible_runner"]["package_pip"].startswith("ansible-runner==")
    assert dependencies["python"] == "requirements.txt"
    assert dependencies["system"] == "bindep.txt"


def test_ee_installs_this_version(artifact: Path) -> None:
    collections = EE_DEFINITION["dependencies"]["galaxy"]["collections"]
    build_files = EE_DEFINITION["additional_build_files"]

    assert [PurePosixPath(entry["name"]).name for entry in collections] == [artifact.name]
    assert [entry["src"] for entry in build_files] == [artifact.name]


def test_ee_containerfile_installs_requirements(ee_context: Path) -> None:
    containerfile = (ee_context / "Containerfile").read_text(encoding="utf-8")
    base_image = EE_DEFINITION["images"]["base_image"]["name"]
    interpreter = EE_DEFINITION["dependencies"]["python_interpreter"]

    assert f'ARG EE_BASE_IMAGE="{base_image}"' in containerfile
    assert f'ARG PYCMD="{interpreter["python_path"]}"' in containerfile
    install_refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.MULTILINE)
    assert install_refs is not None, containerfile
    assert requirement_pin("ansible-core") in install_refs[1].split()
    assert EE_DEFINITION["dependencies"]["ansible_runner"]["package_pip"] in install_refs[1]
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect --user-pip=requirements.txt" in containerfile


def test_ee_context_copies_dependencies(ee_context: Path, artifact: Path) -> None:
    build = ee_context / "_build"
    galaxy_requirements = yaml.safe_load((build / "requirements.yml").read_text("utf-8"))

    assert (build / "requirements.txt").read_text("utf-8") == (
        REPO_ROOT / "requirements.txt"
    ).read_text("utf-8")
    assert (build / "bindep.txt").read_text("utf-8") == (REPO_ROOT / "bindep.txt").read_text(
        "utf-8"
    )
    assert galaxy_requirements == EE_DEFINITION["dependencies"]["galaxy"]
    # The galaxy stage copies _build to /build, where requirements.yml names the artifact.
    copied = build / "collections" / artifact.name
    assert copied.read_bytes() == artifact.read_bytes()


def test_ee_introspection_finds_collection_requirements(
    ee_context: Path, collections_root: Path, tmp_path: Path
) -> None:
    """Run the builder stage's introspection on the installed collection, as the image would."""
    scripts = ee_context / "_build" / "scripts"
    python_output = tmp_path / "requirements.txt"
    system_output = tmp_path / "bindep.txt"
    command = [VENV_BIN / "python", scripts / "introspect.py", "introspect", collections_root]
    command += [f"--write-pip={python_output}", f"--write-bindep={system_output}"]

    run(command, tmp_path)

    python_lines = python_output.read_text("utf-8").splitlines()
    system_lines = system_output.read_text("utf-8").splitlines()
    # ansible-builder drops ansible-core from a collection's requirements: the image has it.
    assert python_lines == [
        f"{requirement_pin('psycopg2-binary')}  # from collection dbops.migrations"
    ]
    assert "libpq [platform:rpm]  # from collection dbops.migrations" in system_lines
    assert "gcc [compile]  # from collection dbops.migrations" in system_lines


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        (["platform:rpm"], ["libpq"]),
        (["platform:dpkg"], ["libpq5"]),
        (["compile", "platform:rpm"], ["libpq", "libpq-devel", "gcc", "python3.11-devel"]),
        (["compile", "platform:dpkg"], ["libpq5", "libpq-dev", "gcc", "python3-dev"]),
    ],
)
def test_bindep_packages_by_profile(profiles: list[str], expected: list[str]) -> None:
    packages = [rule[0] for rule in bindep_rules().active_rules(profiles)]

    assert packages == expected


def test_bindep_headers_match_ee_python() -> None:
    """The headers that build psycopg2 must belong to the Python the image installs."""
    package = EE_DEFINITION["dependencies"]["python_interpreter"]["package_system"]
    packages = [rule[0] for rule in bindep_rules().active_rules(["compile", "platform:rpm"])]

    assert f"{package}-devel" in packages
