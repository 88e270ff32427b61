"""Tests of postgresql_migrate under lock contention, timeouts, killed runs and lost servers."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ExecutionError,
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.history import (
    HistoryTable,
)
from ansible_collections.dbops.migrations.tests.integration.check_support import EngineThread
from ansible_collections.dbops.migrations.tests.integration.locks_support import (
    PgBouncer,
    Workers,
    advisory_lock_holders,
    advisory_lock_waiter,
    application_name_of,
    backend_pids,
    column_names,
    database_owner_role,
    relation_lock_waiter,
    sleeping_backend,
    start_server,
    stop_server,
    table_exists,
    wait_for,
    worker_outcome,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    history_rows,
    migrate,
    migrate_params,
    write_migrations,
)
from pgcluster import Database, PgCluster

pytestmark = pytest.mark.matrix

RunPlaybook = Callable[..., subprocess.CompletedProcess[str]]

DEFAULT_HISTORY = HistoryTable("public", "schema_migrations")
DEFAULT_APPLICATION_NAME = "dbops.migrations postgresql_migrate"

ITEMS_TABLE = "CREATE TABLE items (id integer PRIMARY KEY)"
ADD_NOTE = "ALTER TABLE items ADD COLUMN note text;\n"
ADD_NOTE_SCRIPT = "V1__items_note.sql"
BLOCKER_NAME = "locks test blocker"

# A migration that stops on this transaction-level advisory lock until the test releases it.
GATE_KEY = 515151


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    """Return a finished ansible-playbook run's stdout and stderr, for assertion messages."""
    return f"{run.stdout}\n{run.stderr}"


def write_playbook(path: Path, task: dict[str, Any]) -> Path:
    """Write a playbook of one play on localhost that runs ``task``, and return its path."""
    play = {
        "name": "Apply migrations",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [task],
    }
    # JSON is valid YAML, and json.dumps quotes every string safely.
    path.write_text(json.dumps([play], indent=2), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Lock timeouts and retries
# ---------------------------------------------------------------------------------------------


@dataclass
class Blocker:
    """A session with an open transaction that read ``items``, so it holds ACCESS SHARE."""

    connection: Any
    pid: int

    def release(self) -> None:
        self.connection.commit()


@pytest.fixture
def blocker(database: Database) -> Iterator[Blocker]:
    database.query(ITEMS_TABLE)
    connection = psycopg2.connect(database.dsn, application_name=BLOCKER_NAME)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM items")
            cursor.execute("SELECT pg_catalog.pg_backend_pid()")
            pid = cursor.fetchone()[0]
        yield Blocker(connection, pid)
    finally:
        connection.close()


def retry_params(database: Database, migrations: Path, **overrides: Any) -> dict[str, Any]:
    """Return parameters with lock_timeout 200ms, two retries and a 0.2 s first delay."""
    options = {"lock_timeout": "200ms", "lock_retries": 2, "lock_retry_delay": 0.2}
    return migrate_params(database, migrations, **{**options, **overrides})


def test_lock_timeout_gives_up_naming_blocker(
    database: Database, tmp_path: Path, blocker: Blocker
) -> None:
    migrations = write_migrations(tmp_path / "sql", {ADD_NOTE_SCRIPT: ADD_NOTE})

    with pytest.raises(ExecutionError) as raised:
        migrate(retry_params(database, migrations))

    message = str(raised.value)
    assert raised.value.sqlstate == "55P03", message
    assert "(SQLSTATE 55P03)" in message
    assert f"pid {blocker.pid} ({BLOCKER_NAME}, idle in transaction" in message
    assert "gave up after 2 retries" in message
    assert history_rows(database) == [], "the failed migration has a history row"
    assert column_names(database, "items") == ["id"], "ALTER TABLE was committed"


def test_lock_timeout_warns_on_each_retry(
    database: Database, tmp_path: Path, blocker: Blocker
) -> None:
    migrations = write_migrations(tmp_path / "sql", {ADD_NOTE_SCRIPT: ADD_NOTE})
    warnings: list[str] = []

    with pytest.raises(ExecutionError):
        migrate(retry_params(database, migrations), warnings)

    assert len(warnings) == 2, warnings
    for number, warning in enumerate(warnings, start=1):
        assert f"retry {number} of 2" in warning, warning
        assert f"pid {blocker.pid} ({BLOCKER_NAME}" in warning, warning


def rolled_back_and_waiting(database: Database, application_name: str) -> bool:
    """Return whether a run rolled back a migration and sleeps before retrying it.

    The engine's only ROLLBACK before that point is the one after a lock timeout, and the
    session stays idle until the retry begins.
    """
    rows = database.query(
        "SELECT 1 FROM pg_catalog.pg_stat_activity WHERE datname = %s"
        " AND application_name = %s AND state = 'idle' AND query = 'ROLLBACK'",
        [database.name, application_name],
    )
    return bool(rows)


def test_lock_retry_succeeds_after_blocker_commits(
    database: Database, tmp_path: Path, blocker: Blocker
) -> None:
    migrations = write_migrations(tmp_path / "sql", {ADD_NOTE_SCRIPT: ADD_NOTE})
    name = "locks test retrying run"
    # The blocker commits while the run sleeps before its first retry. The delay is longer
    # than in the other retry tests so that a busy machine still releases within it.
    run = EngineThread(
        retry_params(database, migrations, application_name=name, lock_retry_delay=2),
        check_mode=False,
    )

    run.start()
    try:
        wait_for(
            lambda: rolled_back_and_waiting(database, name),
            "the run rolled back after its first lock timeout",
        )
    finally:
        blocker.release()
    result = run.outcome()

    assert [entry["script"] for entry in result["applied"]] == [ADD_NOTE_SCRIPT]
    assert len(run.warnings) == 1, run.warnings
    assert "retry 1 of 2" in run.warnings[0]
    assert f"pid {blocker.pid} ({BLOCKER_NAME}, idle in transaction" in run.warnings[0]
    assert column_names(database, "items") == ["id", "note"]
    assert [row["script"] for row in history_rows(database)] == [ADD_NOTE_SCRIPT]


# ---------------------------------------------------------------------------------------------
# statement_timeout
# ---------------------------------------------------------------------------------------------

SLEEP_HALF_SECOND = "SELECT pg_catalog.pg_sleep(0.5);\n"


@pytest.fixture
def short_timeout_role(database: Database) -> Iterator[tuple[str, str]]:
    """Yield the name and password of a role whose own statement_timeout is 100ms."""
    name = f"locks_hasty_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    with database_owner_role(database, name, password, {"statement_timeout": "100ms"}):
        yield name, password


def test_statement_timeout_default_overrides_role(
    database: Database, tmp_path: Path, short_timeout_role: tuple[str, str]
) -> None:
    role, password = short_timeout_role
    connection = database.cluster.connect(database.name, user=role, password=password)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "100ms", "the role's statement_timeout is not set"
    finally:
        connection.close()
    migrations = write_migrations(tmp_path / "sql", {"V1__sleep.sql": SLEEP_HALF_SECOND})

    result = migrate(migrate_params(database, migrations, login_user=role, login_password=password))

    assert [entry["version"] for entry in result["applied"]] == ["1"]
    assert [row["installed_by"] for row in history_rows(database)] == [role]


def test_statement_timeout_option_cancels_migration(
    database: Database, tmp_path: Path, short_timeout_role: tuple[str, str]
) -> None:
    role, password = short_timeout_role
    migrations = write_migrations(tmp_path / "sql", {"V1__sleep.sql": SLEEP_HALF_SECOND})
    params = migrate_params(
        database, migrations, login_user=role, login_password=password, statement_timeout="100ms"
    )

    with pytest.raises(ExecutionError) as raised:
        migrate(params)

    message = str(raised.value)
    assert raised.value.sqlstate == "57014", message
    assert "(SQLSTATE 57014)" in message
    assert "statement_timeout was 100ms" in message
    assert "the module's statement_timeout option" in message
    assert history_rows(database) == []


def test_statement_timeout_number_shown_in_ms(
    database: Database, tmp_path: Path, short_timeout_role: tuple[str, str]
) -> None:
    role, password = short_timeout_role
    migrations = write_migrations(tmp_path / "sql", {"V1__sleep.sql": SLEEP_HALF_SECOND})
    params = migrate_params(
        database, migrations, login_user=role, login_password=password, statement_timeout="100"
    )

    with pytest.raises(ExecutionError) as raised:
        migrate(params)

    message = str(raised.value)
    assert "statement_timeout was 100 ms" in message, message
    assert "A number without a unit counts as milliseconds" in message


# ---------------------------------------------------------------------------------------------
# Concurrent runs
# ---------------------------------------------------------------------------------------------

CONCURRENT_RUNS = 8
CONCURRENT_MIGRATIONS = {
    f"V{number}__table_{number}.sql": f"CREATE TABLE table_{number} (id integer PRIMARY KEY);\n"
    for number in range(1, 6)
}


@contextmanager
def holding_migration_lock(database: Database) -> Iterator[None]:
    """Hold the default history table's migration lock in a session of the test."""
    connection = database.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [DEFAULT_HISTORY.lock_key()])
        yield
    finally:
        connection.close()


def all_poll_migration_lock(
    database: Database, names: set[str], processes: list[subprocess.Popen[str]]
) -> bool:
    """Return whether a session of each application name has polled the migration lock."""
    for process in processes:
        if process.poll() is not None:
            output, errors = process.communicate()
            raise AssertionError(f"a worker exited {process.returncode} early: {output} {errors}")
    rows = database.query(
        "SELECT application_name FROM pg_catalog.pg_stat_activity"
        " WHERE datname = %s AND query LIKE '%%pg_try_advisory_lock%%'",
        [database.name],
    )
    return names <= {name for (name,) in rows}


def test_concurrent_runs_record_each_migration_once(database: Database, tmp_path: Path) -> None:
    migrations = write_migrations(tmp_path / "sql", CONCURRENT_MIGRATIONS)
    names = [f"locks worker {number}" for number in range(1, CONCURRENT_RUNS + 1)]

    # The test holds the lock until every worker polls it, so all of them find the database
    # empty, without a history table, and compete for the lock at the same moment.
    with Workers(tmp_path) as workers:
        with holding_migration_lock(database):
            processes = [
                workers.start(migrate_params(database, migrations, application_name=name))
                for name in names
            ]
            wait_for(
                lambda: all_poll_migration_lock(database, set(names), processes),
                "every worker polls the migration lock",
            )
        outcomes = [worker_outcome(process) for process in processes]

    assert [outcome.returncode for outcome in outcomes] == [0] * CONCURRENT_RUNS, outcomes
    applied = sorted(len(outcome.output["result"]["applied"]) for outcome in outcomes)
    assert applied == [0] * (CONCURRENT_RUNS - 1) + [5], "not one run applied all five"
    rows = history_rows(database)
    assert [(row["installed_rank"], row["version"]) for row in rows] == [
        (rank, str(rank)) for rank in range(1, 6)
    ]
    assert all(row["success"] for row in rows), rows


# ---------------------------------------------------------------------------------------------
# Runs killed with SIGKILL
# ---------------------------------------------------------------------------------------------

KILL_ROUNDS = 20
KEPT_V1 = "CREATE TABLE kept (id integer PRIMARY KEY);\n"
FILLED_TABLE = (
    "CREATE TABLE filled (id integer PRIMARY KEY);\n"
    "INSERT INTO filled SELECT pg_catalog.generate_series(1, 1000);\n"
)
SLEEP_30_SECONDS = "SELECT pg_catalog.pg_sleep(30);\n"


def sleeping_worker_backend(database: Database, name: str, process: subprocess.Popen[str]) -> int:
    """Wait until the worker's session runs pg_sleep, and return that session's pid."""

    def find() -> int | None:
        if process.poll() is not None:
            output, errors = process.communicate()
            raise AssertionError(f"the worker exited {process.returncode} early: {output} {errors}")
        return sleeping_backend(database, name)

    return wait_for(find, "the worker runs pg_sleep in V2")


def test_killed_runs_commit_nothing(database: Database, tmp_path: Path) -> None:
    if database.cluster.major < 14:
        pytest.skip("client_connection_check_interval needs PostgreSQL 14 or later")
    # Without this setting the server notices a lost client only when pg_sleep returns, so
    # each killed run would keep the migration lock for 30 s.
    database.query(
        sql.SQL("ALTER DATABASE {} SET client_connection_check_interval = '50ms'").format(
            sql.Identifier(database.name)
        )
    )
    migrations = write_migrations(
        tmp_path / "sql",
        {"V1__kept.sql": KEPT_V1, "V2__filled.sql": FILLED_TABLE + SLEEP_30_SECONDS},
    )
    name = "locks killed run"
    params = migrate_params(database, migrations, application_name=name)

    with Workers(tmp_path) as workers:
        for round_number in range(1, KILL_ROUNDS + 1):
            process = workers.start(params)
            sleeping_worker_backend(database, name, process)
            process.send_signal(signal.SIGKILL)
            process.wait()
            wait_for(
                lambda: not backend_pids(database, name),
                f"the server ended the sessions of killed run {round_number}",
            )

            assert not table_exists(database, "filled"), f"round {round_number}: V2 committed"
            versions = [row["version"] for row in history_rows(database)]
            assert versions == ["1"], f"round {round_number}: history {versions}"
            holders = advisory_lock_holders(database, DEFAULT_HISTORY.lock_key())
            assert holders == set(), f"round {round_number}: migration lock held by {holders}"

    write_migrations(migrations, {"V2__filled.sql": FILLED_TABLE})
    result = migrate(migrate_params(database, migrations))

    assert [entry["version"] for entry in result["applied"]] == ["2"]
    assert [row["version"] for row in history_rows(database)] == ["1", "2"]
    assert database.query("SELECT count(*) FROM filled") == [(1000,)]


# ---------------------------------------------------------------------------------------------
# A server restarted during a run
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """Start a server for one test, so restarting it disturbs no other test."""
    with PgCluster() as cluster:
        yield cluster


def test_server_restart_fails_run_cleanly(own_cluster: PgCluster, tmp_path: Path) -> None:
    database = own_cluster.create_database("locks_restart")
    migrations = write_migrations(
        tmp_path / "sql",
        {"V1__kept.sql": KEPT_V1, "V2__filled.sql": FILLED_TABLE + SLEEP_30_SECONDS},
    )
    name = "locks restarted run"
    run = EngineThread(
        migrate_params(database, migrations, application_name=name), check_mode=False
    )

    run.start()

    def sleeping() -> int | None:
        if not run.is_alive():
            raise AssertionError(f"the run ended before pg_sleep: {run.error or run.result}")
        return sleeping_backend(database, name)

    wait_for(sleeping, "the run sleeps in V2")
    stop_server(own_cluster)
    with pytest.raises(MigrationError) as raised:
        run.outcome()
    start_server(own_cluster)

    message = str(raised.value)
    assert message.startswith("Migration V2 (V2__filled.sql, line 3) failed: "), message
    assert "connection" in message, "the message does not say that the connection was lost"
    assert "Nothing from V2 was committed; V1, applied in this run, stays applied." in message
    assert "Traceback" not in message
    assert [row["version"] for row in history_rows(database)] == ["1"]
    assert not table_exists(database, "filled")

    write_migrations(migrations, {"V2__filled.sql": FILLED_TABLE})
    result = migrate(migrate_params(database, migrations))

    assert [entry["version"] for entry in result["applied"]] == ["2"]
    rows = history_rows(database)
    assert [(row["installed_rank"], row["version"], row["success"]) for row in rows] == [
        (1, "1", True),
        (2, "2", True),
    ]
    assert database.query("SELECT count(*) FROM filled") == [(1000,)]


# ---------------------------------------------------------------------------------------------
# A transaction-pooling proxy
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def transaction_pooler(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[PgBouncer]:
    """Start PgBouncer in transaction pooling mode with two server connections per pool."""
    if shutil.which("pgbouncer") is None:
        pytest.skip("pgbouncer is not on PATH: install the pgbouncer package to run this test")
    directory = tmp_path / "pgbouncer"
    directory.mkdir()
    with PgBouncer(pg_cluster, directory, pool_mode="transaction", pool_size=2) as bouncer:
        yield bouncer


class QueryThread(threading.Thread):
    """Run one query on a connection in a thread, and keep its first value or its error."""

    def __init__(self, connection: Any, query: str) -> None:
        super().__init__(daemon=True)
        self.connection = connection
        self.query = query
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(self.query)
                self.value = cursor.fetchone()[0]
        except BaseException as error:  # re-raised in the test's thread by outcome()
            self.error = error

    def outcome(self) -> Any:
        self.join(60)
        if self.is_alive():
            raise AssertionError(f"{self.query!r} did not finish within 60 s")
        if self.error is not None:
            raise self.error
        return self.value


def test_transaction_pooling_stops_run(
    database: Database, tmp_path: Path, transaction_pooler: PgBouncer, blocker: Blocker
) -> None:
    bouncer = transaction_pooler
    migrations = write_migrations(
        tmp_path / "sql",
        {
            ADD_NOTE_SCRIPT: ADD_NOTE,
            "V2__items_label.sql": "ALTER TABLE items ADD COLUMN label text;\n",
        },
    )
    name = "locks pooled run"
    params = migrate_params(
        database,
        migrations,
        login_port=bouncer.port,
        application_name=name,
        lock_timeout="60s",
    )
    # Pool of two server processes. The pinned client keeps the first in a transaction, so
    # the run takes the migration lock on the second. The queued client waits for the second
    # while V1 holds it, and takes it when V1 commits. When the pinned client commits, the
    # run can only get the first server process for V2.
    pinned = bouncer.connect(database.name, "locks pinned client")
    queued = bouncer.connect(database.name, "locks queued client")
    try:
        with pinned.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_backend_pid()")
            pinned_pid = cursor.fetchone()[0]
        run = EngineThread(params, check_mode=False)
        run.start()
        run_pid = wait_for(
            lambda: relation_lock_waiter(database, "items"), "V1 waits for the blocker"
        )
        assert run_pid != pinned_pid, "the run got the pinned client's server process"
        queued_query = QueryThread(queued, "SELECT pg_catalog.pg_backend_pid()")
        queued_query.start()
        wait_for(
            lambda: bouncer.client_state("locks queued client") == "waiting",
            "the queued client waits for a server process",
        )
        blocker.release()
        assert queued_query.outcome() == run_pid, "the queued client got another process"
        pinned.commit()

        with pytest.raises(MigrationError) as raised:
            run.outcome()
    finally:
        pinned.close()
        queued.close()

    # NOTE: the run fails on the changed server process, then again when it releases the
    # migration lock on a process that does not hold it. The second error replaces the first,
    # so either message can arrive.
    message = str(raised.value)
    assert "A transaction-pooling proxy (such as PgBouncer in transaction mode)" in message
    assert (
        "migrations need a direct or session-pooled connection" in message
        or "connect directly or through session pooling" in message
    ), message
    assert [row["script"] for row in history_rows(database)] == [ADD_NOTE_SCRIPT]
    assert column_names(database, "items") == ["id", "note"]


# ---------------------------------------------------------------------------------------------
# Passwords in verbose output
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def secret_role(database: Database) -> Iterator[tuple[str, str]]:
    """Yield the name and password of a role that owns the test's database."""
    name = f"locks_secret_{secrets.token_hex(4)}"
    password = f"locks-secret-{secrets.token_hex(16)}"
    with database_owner_role(database, name, password):
        yield name, password


def test_verbose_run_hides_password_option(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, secret_role: tuple[str, str]
) -> None:
    role, password = secret_role
    migrations = write_migrations(tmp_path / "sql", {"V1__kept.sql": KEPT_V1})
    env = database.env
    task = {
        "name": "Apply migrations with a password from an extra variable",
        "dbops.migrations.postgresql_migrate": {
            "login_host": env["PGHOST"],
            "login_port": int(env["PGPORT"]),
            "login_db": env["PGDATABASE"],
            "login_user": role,
            "login_password": "{{ secret }}",
            "path": str(migrations),
        },
    }
    playbook = write_playbook(tmp_path / "password_option.yml", task)

    run = run_playbook(playbook, "-vvv", "-e", f"secret={password}")

    assert run.returncode == 0, output_of(run)
    assert password not in run.stdout, "the password appears in stdout"
    assert password not in run.stderr, "the password appears in stderr"
    assert [row["installed_by"] for row in history_rows(database)] == [role]


def test_verbose_run_hides_pgpassword(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, secret_role: tuple[str, str]
) -> None:
    role, password = secret_role
    migrations = write_migrations(tmp_path / "sql", {"V1__kept.sql": KEPT_V1})
    task = {
        "name": "Apply migrations with the libpq environment only",
        "dbops.migrations.postgresql_migrate": {"path": str(migrations)},
    }
    playbook = write_playbook(tmp_path / "pgpassword.yml", task)

    run = run_playbook(playbook, "-vvv", env={"PGUSER": role, "PGPASSWORD": password})

    assert run.returncode == 0, output_of(run)
    assert password not in run.stdout, "the password appears in stdout"
    assert password not in run.stderr, "the password appears in stderr"
    assert [row["installed_by"] for row in history_rows(database)] == [role]


def test_verbose_run_hides_connect_params_password(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, secret_role: tuple[str, str]
) -> None:
    role, password = secret_role
    migrations = write_migrations(tmp_path / "sql", {"V1__kept.sql": KEPT_V1})
    task = {
        "name": "Apply migrations with a password in connect_params",
        "dbops.migrations.postgresql_migrate": {
            "login_user": role,
            "connect_params": {"password": "{{ secret }}"},
            "path": str(migrations),
        },
    }
    playbook = write_playbook(tmp_path / "connect_params.yml", task)

    run = run_playbook(
        playbook, "-vvv", "-e", f"secret={password}", env={"PGPASSWORD": "not-the-password"}
    )

    assert run.returncode == 0, output_of(run)
    assert password not in run.stdout, "the password appears in stdout"
    assert password not in run.stderr, "the password appears in stderr"
    assert [row["installed_by"] for row in history_rows(database)] == [role]


def test_verbose_check_diff_hides_sql(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook
) -> None:
    secret = f"sql-secret-{secrets.token_hex(8)}"
    statement = f"CREATE ROLE verbose_{secrets.token_hex(4)} LOGIN PASSWORD '{secret}';\n"
    migrations = write_migrations(tmp_path / "sql", {"V1__service_role.sql": statement})
    task = {
        "name": "Preview a migration that carries a password",
        "dbops.migrations.postgresql_migrate": {
            "path": str(migrations),
            "hide_sql_in_diff": True,
        },
    }
    playbook = write_playbook(tmp_path / "hidden_sql.yml", task)

    run = run_playbook(playbook, "--check", "--diff", "-vvv")

    assert run.returncode == 0, output_of(run)
    assert "V1__service_role.sql" in run.stdout, output_of(run)
    assert "characters not shown" in run.stdout, output_of(run)
    assert secret not in run.stdout, "the SQL appears in stdout"
    assert secret not in run.stderr, "the SQL appears in stderr"


# ---------------------------------------------------------------------------------------------
# application_name
# ---------------------------------------------------------------------------------------------

GATED_V1 = f"SELECT pg_catalog.pg_advisory_xact_lock({GATE_KEY});\n" + KEPT_V1


@dataclass
class Gate:
    """A session of the test that holds the advisory lock GATE_KEY until released."""

    connection: Any

    def release(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [GATE_KEY])


@pytest.fixture
def gate(database: Database) -> Iterator[Gate]:
    connection = database.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [GATE_KEY])
        yield Gate(connection)
    finally:
        connection.close()


def gated_run_application_name(database: Database) -> str | None:
    """Wait until a run that holds the migration lock waits at the gate.

    Returns the application_name of that run's session.
    """
    pid = wait_for(
        lambda: advisory_lock_waiter(database, GATE_KEY), "the run waits at the gate in V1"
    )
    holders = advisory_lock_holders(database, DEFAULT_HISTORY.lock_key())
    assert holders == {pid}, f"the migration lock is held by {holders}, not by pid {pid}"
    return application_name_of(database, pid)


def test_application_name_names_module(database: Database, tmp_path: Path, gate: Gate) -> None:
    migrations = write_migrations(tmp_path / "sql", {"V1__kept.sql": GATED_V1})
    run = EngineThread(migrate_params(database, migrations, lock_timeout="60s"), check_mode=False)

    run.start()
    try:
        name = gated_run_application_name(database)
    finally:
        gate.release()
    result = run.outcome()

    assert name is not None and name.startswith(DEFAULT_APPLICATION_NAME), name
    assert [entry["version"] for entry in result["applied"]] == ["1"]


def test_application_name_names_awx_job(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, gate: Gate
) -> None:
    migrations = write_migrations(tmp_path / "sql", {"V1__kept.sql": GATED_V1})
    task = {
        "name": "Apply migrations as AWX job 4242",
        "dbops.migrations.postgresql_migrate": {"path": str(migrations), "lock_timeout": "60s"},
    }
    playbook = write_playbook(tmp_path / "awx_job.yml", task)
    runs: list[subprocess.CompletedProcess[str]] = []
    playbook_thread = threading.Thread(
        target=lambda: runs.append(run_playbook(playbook, "-e", "awx_job_id=4242")), daemon=True
    )

    playbook_thread.start()
    try:
        name = gated_run_application_name(database)
    finally:
        gate.release()
    playbook_thread.join(120)

    assert runs, "ansible-playbook did not finish within 120 s"
    assert runs[0].returncode == 0, output_of(runs[0])
    assert name == f"{DEFAULT_APPLICATION_NAME} awx job 4242", name
