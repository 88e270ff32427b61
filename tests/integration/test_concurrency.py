"""Tests of the migration lock: runs that overlap on one database, and a run that times out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    LockTimeoutError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.history import (
    HistoryTable,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    history_rows,
    migrate,
    migrate_params,
    user_relations,
    write_migrations,
)
from pgcluster import Database
from playbook_run import REPO_ROOT

pytestmark = pytest.mark.matrix

WORKER_MODULE = "ansible_collections.dbops.migrations.tests.integration.migrate_worker"
WORKER_TIMEOUT_SECONDS = 120.0
CONNECT_TIMEOUT_SECONDS = 60.0
DEFAULT_HISTORY = HistoryTable("public", "schema_migrations")


@contextmanager
def holding_migration_lock(database: Database, application_name: str) -> Iterator[int]:
    """Hold the default history table's migration lock in another session, and yield its pid.

    The session runs in autocommit mode, so pg_stat_activity shows it as idle.
    """
    connection = psycopg2.connect(database.dsn, application_name=application_name)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [DEFAULT_HISTORY.lock_key()])
            cursor.execute("SELECT pg_catalog.pg_backend_pid()")
            yield cursor.fetchone()[0]
    finally:
        connection.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    """Return a function that starts migrate_worker with the given parameters.

    Workers still running when the test ends are killed.
    """
    started: list[subprocess.Popen[str]] = []
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / ".collections"))

    def start(params: dict[str, Any]) -> subprocess.Popen[str]:
        params_file = tmp_path / f"worker_{len(started) + 1}.json"
        params_file.write_text(json.dumps(params), encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(params_file)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_sessions(
    database: Database, application_names: set[str], workers: list[subprocess.Popen[str]]
) -> None:
    """Wait until a session of each application name is connected to ``database``."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
    while True:
        rows = database.query(
            "SELECT application_name FROM pg_catalog.pg_stat_activity WHERE datname = %s",
            [database.name],
        )
        if application_names <= {name for (name,) in rows}:
            return
        for worker in workers:
            if worker.poll() is not None:
                output, errors = worker.communicate()
                pytest.fail(f"a worker exited before connecting: {output} {errors}")
        if time.monotonic() > deadline:
            pytest.fail(f"the workers did not connect within {CONNECT_TIMEOUT_SECONDS:g} s")
        time.sleep(0.05)


def worker_outcome(worker: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a worker and return its JSON output, or fail the test if it printed none."""
    output, errors = worker.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    try:
        return dict(json.loads(output))
    except json.JSONDecodeError:
        pytest.fail(f"worker exited {worker.returncode} without JSON output: {errors}")


def test_concurrent_runs_apply_each_migration_once(
    database: Database, tmp_path: Path, start_worker: Any
) -> None:
    migrations = write_migrations(
        tmp_path / "sql",
        {
            "V1__slow_create_a.sql": (
                "SELECT pg_catalog.pg_sleep(2);\nCREATE TABLE a (id integer PRIMARY KEY);\n"
            ),
            "V2__create_b.sql": "CREATE TABLE b (id integer PRIMARY KEY);\n",
        },
    )
    names = {"migrate worker 1", "migrate worker 2"}

    # The test holds the lock until both workers are connected, so both are waiting for it
    # when it is released, and the one that wins still holds it while V1 sleeps.
    with holding_migration_lock(database, "migrate test gate"):
        workers = [
            start_worker(
                migrate_params(
                    database,
                    migrations,
                    connect_params={"application_name": name},
                    lock_wait_timeout=int(WORKER_TIMEOUT_SECONDS),
                )
            )
            for name in sorted(names)
        ]
        wait_for_sessions(database, names, workers)
    outcomes = [worker_outcome(worker) for worker in workers]

    assert [outcome.get("error") for outcome in outcomes] == [None, None], outcomes
    results = sorted((outcome["result"] for outcome in outcomes), key=lambda r: r["changed"])
    idle, busy = results
    assert [entry["version"] for entry in busy["applied"]] == ["1", "2"]
    assert idle["applied"] == []
    assert idle["changed"] is False
    assert idle["pending"] == []
    assert idle["current_version"] == "2"
    rows = history_rows(database)
    assert [(row["installed_rank"], row["version"]) for row in rows] == [(1, "1"), (2, "2")]


def test_lock_timeout_names_holder(database: Database, tmp_path: Path) -> None:
    migrations = write_migrations(
        tmp_path / "sql", {"V1__create_a.sql": "CREATE TABLE a (id integer);\n"}
    )
    holder = "migrate test lock holder"

    with holding_migration_lock(database, holder) as pid:
        with pytest.raises(LockTimeoutError) as raised:
            migrate(migrate_params(database, migrations, lock_wait_timeout=1))

    expected = (
        r"Timed out after 1 s waiting for the migration lock on public\.schema_migrations, held "
        rf"by pid {pid} \({re.escape(holder)}, idle, connected since "
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[^)]*\)\. "
        r"Wait for that run to finish, or stop it, then run again\."
    )
    assert re.fullmatch(expected, str(raised.value)), str(raised.value)
    assert user_relations(database) == set(), "the run changed the database without the lock"
