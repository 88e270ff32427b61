"""Helpers for the lock and crash tests: worker processes, server restarts, roles, PgBouncer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from pgcluster import Database, PgCluster, as_os_user, free_tcp_port
from playbook_run import REPO_ROOT

WORKER_MODULE = "ansible_collections.dbops.migrations.tests.integration.migrate_worker"

# Generous deadlines for polling the server. They only bound how long a broken test hangs.
DEADLINE_SECONDS = 60.0
POLL_SECONDS = 0.02


def wait_for(
    condition: Callable[[], Any], description: str, timeout: float = DEADLINE_SECONDS
) -> Any:
    """Poll ``condition`` until it returns a true value, and return that value.

    Raises AssertionError with ``description``, the awaited state, after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {description}")
        time.sleep(POLL_SECONDS)


# ---------------------------------------------------------------------------------------------
# Sessions seen by the server
# ---------------------------------------------------------------------------------------------


def backend_pids(database: Database, application_name: str) -> set[int]:
    """Return the pids of the sessions of ``database`` with that application_name."""
    rows = database.query(
        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE datname = %s AND application_name = %s",
        [database.name, application_name],
    )
    return {pid for (pid,) in rows}


def sleeping_backend(database: Database, application_name: str) -> int | None:
    """Return the pid of a session with that application_name that is running pg_sleep."""
    rows = database.query(
        "SELECT pid FROM pg_catalog.pg_stat_activity"
        " WHERE datname = %s AND application_name = %s AND state = 'active'"
        " AND query LIKE '%%pg_sleep%%'",
        [database.name, application_name],
    )
    return rows[0][0] if rows else None


def relation_lock_waiter(database: Database, relation: str) -> int | None:
    """Return the pid of a session waiting for a lock on ``relation`` (a table name)."""
    rows = database.query(
        "SELECT l.pid FROM pg_catalog.pg_locks l"
        " WHERE l.locktype = 'relation' AND NOT l.granted"
        " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = %s)"
        " AND l.relation = pg_catalog.to_regclass(%s)",
        [database.name, relation],
    )
    return rows[0][0] if rows else None


def advisory_lock_waiter(database: Database, key: int) -> int | None:
    """Return the pid of a session waiting for the advisory lock ``key`` (below 2**32)."""
    rows = database.query(
        "SELECT pid FROM pg_catalog.pg_locks"
        " WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = %s"
        " AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = %s)",
        [key, database.name],
    )
    return rows[0][0] if rows else None


def advisory_lock_holders(database: Database, key: int) -> set[int]:
    """Return the pids holding the session-level advisory lock ``key``, a signed 64-bit key.

    PostgreSQL shows a bigint key as classid (high 32 bits) and objid (low 32 bits), with
    objsubid 1.
    """
    rows = database.query(
        "SELECT pid FROM pg_catalog.pg_locks"
        " WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s"
        " AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = %s)",
        [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF, database.name],
    )
    return {pid for (pid,) in rows}


def application_name_of(database: Database, pid: int) -> str | None:
    """Return the application_name of the session ``pid``, or None when it is gone."""
    rows = database.query(
        "SELECT application_name FROM pg_catalog.pg_stat_activity WHERE pid = %s", [pid]
    )
    return rows[0][0] if rows else None


def table_exists(database: Database, name: str) -> bool:
    """Return whether the table ``public.<name>`` exists."""
    rows = database.query("SELECT pg_catalog.to_regclass(%s)", [f"public.{name}"])
    return rows[0][0] is not None


def column_names(database: Database, table: str) -> list[str]:
    """Return the column names of ``public.<table>`` in their order."""
    rows = database.query(
        "SELECT attname FROM pg_catalog.pg_attribute"
        " WHERE attrelid = pg_catalog.to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        [f"public.{table}"],
    )
    return [name for (name,) in rows]


# ---------------------------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------------------------


class Workers:
    """Start migrate_worker processes, each with its own parameters file.

    Use it as a context manager: processes still running at the end are killed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate()

    def start(self, params: Mapping[str, Any]) -> subprocess.Popen[str]:
        """Start one worker with the interpreter running the tests and return it."""
        params_file = self.directory / f"worker_{len(self.started) + 1}.json"
        params_file.write_text(json.dumps(dict(params)), encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE, str(params_file)],
            cwd=REPO_ROOT,
            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / ".collections")),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        return process


@dataclass
class WorkerOutcome:
    """Exit status and parsed JSON output of a finished migrate_worker."""

    returncode: int
    output: dict[str, Any]
    stderr: str


def worker_outcome(process: subprocess.Popen[str]) -> WorkerOutcome:
    """Wait for a worker and return its outcome. Output that is not JSON is kept as text."""
    stdout, stderr = process.communicate(timeout=DEADLINE_SECONDS)
    try:
        output = dict(json.loads(stdout))
    except json.JSONDecodeError:
        output = {"unparsed": stdout}
    return WorkerOutcome(process.returncode, output, stderr)


# ---------------------------------------------------------------------------------------------
# Restarting a server without losing its data
# ---------------------------------------------------------------------------------------------


def _pg_ctl(cluster: PgCluster, *arguments: str) -> None:
    command = [str(cluster.bindir / "pg_ctl"), *arguments, f"--pgdata={cluster.data_dir}"]
    completed = subprocess.run(
        as_os_user(command, cluster.os_user),
        cwd=cluster.data_dir.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=DEADLINE_SECONDS,
    )
    if completed.returncode != 0:
        raise AssertionError(f"pg_ctl {arguments[0]} failed: {completed.stderr.strip()}")


def stop_server(cluster: PgCluster) -> None:
    """Shut the server down in fast mode, which ends every session, and keep its data.

    PgCluster.stop() would also delete the data directory.
    """
    _pg_ctl(cluster, "stop", "--mode=fast", "--wait")


def start_server(cluster: PgCluster) -> None:
    """Start a server stopped by ``stop_server`` on the same port, and wait for connections."""
    _pg_ctl(cluster, "start", "--wait", f"--log={cluster.log_file}")

    def accepts_connections() -> bool:
        try:
            cluster.connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    wait_for(accepts_connections, "the restarted server accepts connections")


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


@contextmanager
def database_owner_role(
    database: Database, name: str, password: str, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Create a login role with per-role ``settings`` that owns ``database``, and yield its name.

    From PostgreSQL 15 on, only the database owner may create tables in schema public. On
    exit the database goes back to the superuser and the role is dropped.
    """
    cluster = database.cluster
    role = sql.Identifier(name)
    cluster.create_role(name, password)
    try:
        for setting, value in (settings or {}).items():
            cluster.execute(
                sql.SQL("ALTER ROLE {} SET {} = %s").format(role, sql.Identifier(setting)),
                [value],
            )
        cluster.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database.name), role)
        )
        yield name
    finally:
        cluster.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database.name), sql.Identifier(cluster.superuser)
            )
        )
        database.query(
            sql.SQL("REASSIGN OWNED BY {} TO {}; DROP OWNED BY {}").format(
                role, sql.Identifier(cluster.superuser), role
            )
        )
        cluster.execute(sql.SQL("DROP ROLE {}").format(role))


# ---------------------------------------------------------------------------------------------
# PgBouncer
# ---------------------------------------------------------------------------------------------


class PgBouncer:
    """A PgBouncer in front of ``cluster`` on 127.0.0.1, with its files in ``directory``.

    Clients log in as the cluster's superuser. The admin console is the database
    ``pgbouncer``. PgBouncer exits when started as root without its ``user`` setting, so as
    root it reads its files and then switches to the cluster's OS user.
    """

    def __init__(self, cluster: PgCluster, directory: Path, pool_mode: str, pool_size: int) -> None:
        self.cluster = cluster
        self.directory = directory
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = 0
        self.log_file = directory / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PgBouncer:
        self.port = free_tcp_port()
        config = self._write_files()
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [shutil.which("pgbouncer") or "pgbouncer", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self._accepts_connections, "PgBouncer accepts connections")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=DEADLINE_SECONDS)

    def _write_files(self) -> Path:
        auth_file = self.directory / "userlist.txt"
        auth_file.write_text(
            f'"{self.cluster.superuser}" "{self.cluster.password}"\n', encoding="utf-8"
        )
        auth_file.chmod(0o600)
        lines = [
            "[databases]",
            f"* = host={self.cluster.host} port={self.cluster.port}",
            "[pgbouncer]",
            f"listen_addr = {self.cluster.host}",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            f"auth_file = {auth_file}",
            f"admin_users = {self.cluster.superuser}",
            f"pool_mode = {self.pool_mode}",
            f"default_pool_size = {self.pool_size}",
        ]
        if self.cluster.os_user is not None:
            lines.append(f"user = {self.cluster.os_user}")
        config = self.directory / "pgbouncer.ini"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return config

    def _accepts_connections(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = self.log_file.read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"PgBouncer exited with {self.process.returncode}:\n{log}")
        try:
            self.connect("pgbouncer").close()
        except psycopg2.OperationalError:
            return False
        return True

    def connect(self, dbname: str, application_name: str = "pgbouncer test") -> Any:
        """Open a connection through PgBouncer as the cluster's superuser."""
        return psycopg2.connect(
            host=self.cluster.host,
            port=self.port,
            user=self.cluster.superuser,
            password=self.cluster.password,
            dbname=dbname,
            application_name=application_name,
            connect_timeout=10,
        )

    def client_state(self, application_name: str) -> str | None:
        """Return the state (active, waiting...) of the client with that application_name."""
        connection = self.connect("pgbouncer")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SHOW CLIENTS")
                columns = [column.name for column in cursor.description]
                rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()
        states = [row["state"] for row in rows if row["application_name"] == application_name]
        return states[0] if states else None
