"""Shared fixtures: a real PostgreSQL server, a fresh database per test, and ansible-playbook.

Fixtures:
    repo_root     Path of the repository, which is also the collection root.
    pg_cluster    PgCluster started once per pytest session (once per worker under xdist).
    database      pgcluster.Database created for one test and dropped after it.
    run_playbook  run_playbook(playbook, *args, env=None, timeout=600.0) runs ansible-playbook
                  against ``database`` and returns the CompletedProcess without raising.
    play_recap    play_recap(output, host="localhost") returns that host's PLAY RECAP counts.

Tests that use ``pg_cluster`` (directly or through another fixture) get the ``integration``
marker, and tests that use ``run_playbook`` also get ``playbook``, so ``-m "not integration"``
selects the tests that need no server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

# `ansible-test units` runs pytest with a configuration of its own, which lacks the pythonpath
# setting of pyproject.toml, so tools/ is put on sys.path here for the two imports below.
TOOLS_DIR = Path(__file__).resolve().parent.parent / "tools"
if str(TOOLS_DIR) not in sys.path:
    sys.path.insert(0, str(TOOLS_DIR))

from pgcluster import Database, PgCluster  # noqa: E402
from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, host_recap, playbook_environment  # noqa: E402

COLLECTION_LINK = REPO_ROOT / ".collections" / "ansible_collections" / "dbops" / "migrations"

PLAYBOOK_TIMEOUT_SECONDS = 600.0
TIMED_OUT_EXIT_CODE = 124

RunPlaybook = Callable[..., "subprocess.CompletedProcess[str]"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "pg_cluster" in fixtures:
            item.add_marker(pytest.mark.integration)
        if "run_playbook" in fixtures:
            item.add_marker(pytest.mark.playbook)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """Start one throwaway server for the session. Each xdist worker starts its own."""
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def database(pg_cluster: PgCluster) -> Iterator[Database]:
    """Create an empty database with a unique name, and drop it after the test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"test_{worker}_{uuid.uuid4().hex[:12]}"
    created = pg_cluster.create_database(name)
    try:
        yield created
    finally:
        pg_cluster.drop_database(name)


def _as_text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""


@pytest.fixture
def run_playbook(database: Database, repo_root: Path) -> RunPlaybook:
    """Return a function that runs ansible-playbook against the test's ``database``.

    The function takes the playbook path (relative to the repository root, or absolute),
    extra ansible-playbook arguments, optional extra environment variables and a timeout in
    seconds. It runs in the repository root, so the ansible.cfg there applies. It returns the
    CompletedProcess with stdout and stderr captured as text and never raises on failure. A
    run that times out returns exit code 124 with a note at the end of stderr.
    """
    if not COLLECTION_LINK.is_dir():
        pytest.fail(
            f"{COLLECTION_LINK} is missing, so Ansible cannot find dbops.migrations. "
            "Run `make setup` to create the symlink."
        )

    def run(
        playbook: str | Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = PLAYBOOK_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        command = [str(ANSIBLE_PLAYBOOK), str(playbook), *args]
        try:
            return subprocess.run(
                command,
                cwd=repo_root,
                env=playbook_environment(database.env, env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            note = f"\nansible-playbook timed out after {timeout:g} s"
            return subprocess.CompletedProcess(
                command, TIMED_OUT_EXIT_CODE, _as_text(error.stdout), _as_text(error.stderr) + note
            )

    return run


@pytest.fixture
def play_recap() -> Callable[..., dict[str, int]]:
    """Return ``host_recap(output, host="localhost")``, which raises ValueError if absent."""
    return host_recap
