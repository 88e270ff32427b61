"""The timed runs: psql, the engine in-process, ansible-playbook with each collection.

Each function returns the wall-clock seconds of one run, measured with time.perf_counter
around the whole run: process start, connection, SQL and exit. Before returning, it checks
that the run did what it was measured for, and raises BenchError otherwise, so a failing run
never passes for a fast one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.connection import (
    ConnectionSettings,
    connect,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.engine import (
    RunOptions,
    run,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    load_sources,
    read_directories,
)
from pgcluster import PgCluster
from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, parse_play_recap, playbook_environment

from .playbooks import Playbooks, fanout_host, write_fanout_inventory
from .workloads import Workload

PLAYBOOK_TIMEOUT_SECONDS = 1800
PSQL_TIMEOUT_SECONDS = 600
OUTPUT_TAIL_CHARACTERS = 3000
APPLICATION_NAME = "dbops.migrations bench"
CREATE_CONNECTIONS = 4


class BenchError(RuntimeError):
    """A measured run failed or did something other than what it was measured for."""


@dataclass
class Tools:
    """Programs and files that the runs use."""

    cluster: PgCluster
    scratch: Path
    playbooks: Playbooks
    psql: Path
    community_playbook: Path | None


def find_psql(cluster: PgCluster) -> Path:
    """Return the psql next to the server binaries, else the one on PATH."""
    beside_server = cluster.bindir / "psql"
    if os.access(beside_server, os.X_OK):
        return beside_server
    on_path = shutil.which("psql")
    if on_path is None:
        raise BenchError(
            f"psql not found in {cluster.bindir} or on PATH: install the PostgreSQL client "
            "(apt-get install postgresql-client on Debian and Ubuntu)."
        )
    return Path(on_path)


def _tail(text: str) -> str:
    return text[-OUTPUT_TAIL_CHARACTERS:]


def _first_failures(stdout: str) -> str:
    """Return the first task failures of ansible-playbook output, which its tail may lack."""
    failures = [line for line in stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
    if not failures:
        return ""
    return (
        "first failures:\n"
        + "\n".join(line[:OUTPUT_TAIL_CHARACTERS] for line in failures[:3])
        + "\n"
    )


def _timed_process(
    command: list[str], env: dict[str, str], timeout: float
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise BenchError(
            f"{Path(command[0]).name} exited with {completed.returncode}: {' '.join(command)}\n"
            f"{_first_failures(completed.stdout)}"
            f"stdout ends:\n{_tail(completed.stdout)}\nstderr ends:\n{_tail(completed.stderr)}"
        )
    return elapsed, completed


# ---------------------------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------------------------


def _create_each(cluster: PgCluster, names: list[str]) -> None:
    connection = cluster.connect("postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def create_databases(cluster: PgCluster, names: list[str]) -> None:
    """Create empty databases, on up to CREATE_CONNECTIONS connections at once.

    CREATE DATABASE copies the template database, which took 0.3 to 0.6 s per database on
    the 2-core machine of docs/benchmarks.md, and the fan-out needs a set of fresh databases
    for every measurement.
    """
    batches = [names[start::CREATE_CONNECTIONS] for start in range(CREATE_CONNECTIONS)]
    batches = [batch for batch in batches if batch]
    if len(batches) == 1:
        _create_each(cluster, batches[0])
        return
    with ThreadPoolExecutor(max_workers=len(batches)) as executor:
        for future in [executor.submit(_create_each, cluster, batch) for batch in batches]:
            future.result()


def drop_databases(cluster: PgCluster, names: list[str]) -> None:
    """Drop databases on one connection, ending any session still connected to them."""
    connection = cluster.connect("postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for name in names:
                query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
                cursor.execute(query)
    finally:
        connection.close()


class DatabaseNames:
    """Hand out database names that are unique within one benchmark run."""

    def __init__(self, prefix: str = "bench") -> None:
        self._prefix = prefix
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}_{self._count:05d}"


@contextmanager
def fresh_database(cluster: PgCluster, names: DatabaseNames) -> Iterator[str]:
    """Create an empty database for one measurement and drop it afterwards, both untimed."""
    name = names.next()
    create_databases(cluster, [name])
    try:
        yield name
    finally:
        drop_databases(cluster, [name])


# ---------------------------------------------------------------------------------------------
# The floor: psql
# ---------------------------------------------------------------------------------------------


def write_psql_script(tools: Tools, workload: Workload) -> Path:
    """Write a psql script that runs each migration file in a transaction of its own."""
    lines = []
    for path in workload.paths:
        # psql reads backslash escapes in a quoted argument, and a doubled quote as one quote.
        quoted = "'" + str(path).replace("\\", "\\\\").replace("'", "''") + "'"
        lines += ["BEGIN;", f"\\i {quoted}", "COMMIT;"]
    script = tools.scratch / f"floor_{workload.name.replace('=', '_')}.psql"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return script


def time_psql(tools: Tools, script: Path, database: str) -> float:
    """Run ``script`` with one psql connection that stops at the first error."""
    command = [str(tools.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)]
    env = {**os.environ, **tools.cluster.env(database)}
    elapsed, _output = _timed_process(command, env, PSQL_TIMEOUT_SECONDS)
    return elapsed


# ---------------------------------------------------------------------------------------------
# The engine in this process
# ---------------------------------------------------------------------------------------------


def engine_settings(cluster: PgCluster, database: str) -> ConnectionSettings:
    return ConnectionSettings(
        login_host=cluster.host,
        login_port=cluster.port,
        login_user=cluster.superuser,
        login_password=cluster.password,
        login_db=database,
        application_name=APPLICATION_NAME,
    )


def time_engine(
    tools: Tools, workload: Workload, database: str, check_mode: bool, expected: int
) -> float:
    """Time what the module does after Ansible hands it its parameters.

    The run connects, reads and checksums the files, and calls engine.run with the module's
    defaults and a second connection for the lock-blocker watch, as api.migrate does.
    ``expected`` is the number of migrations the run must apply (or verify in check mode).
    """
    settings = engine_settings(tools.cluster, database)
    options = RunOptions(check_mode=check_mode)
    started = time.perf_counter()
    connection = connect(settings)
    try:
        migrations = load_sources(read_directories([str(workload.directory)]))
        result = run(connection, migrations, options, lambda: connect(settings))
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    if len(result.applied) != expected:
        raise BenchError(
            f"engine run on {workload.name} (check_mode={check_mode}) applied "
            f"{len(result.applied)} migrations, expected {expected}"
        )
    return elapsed


# ---------------------------------------------------------------------------------------------
# ansible-playbook
# ---------------------------------------------------------------------------------------------


def _check_recap(output: str, hosts: list[str], changed: bool, run_name: str) -> None:
    """Raise BenchError unless every host succeeded and reported ``changed`` as expected."""
    recaps = parse_play_recap(output)
    for host in hosts:
        counts = recaps.get(host)
        if counts is None:
            raise BenchError(f"{run_name}: host {host} missing from PLAY RECAP")
        if counts.get("failed", 0) or counts.get("unreachable", 0):
            raise BenchError(f"{run_name}: host {host} failed: {counts}")
        if bool(counts.get("changed", 0)) != changed:
            raise BenchError(
                f"{run_name}: host {host} reported changed={counts.get('changed')}, "
                f"expected {'changed' if changed else 'no change'}"
            )


def time_playbook(
    tools: Tools, workload: Workload, database: str, check_mode: bool, changed: bool
) -> float:
    """Run the postgresql_migrate playbook on ``workload`` with the repository's venv."""
    command = [
        str(ANSIBLE_PLAYBOOK),
        str(tools.playbooks.migrate),
        "-e",
        f"bench_migrations_path={workload.directory}",
    ]
    if check_mode:
        command.append("--check")
    env = playbook_environment(tools.cluster.env(database))
    elapsed, completed = _timed_process(command, env, PLAYBOOK_TIMEOUT_SECONDS)
    _check_recap(completed.stdout, ["localhost"], changed, f"postgresql_migrate {workload.name}")
    return elapsed


def write_community_vars(tools: Tools, workload: Workload) -> Path:
    """Write the extra-vars file that lists the workload's files in run order."""
    path = tools.scratch / f"community_{workload.name.replace('=', '_')}.json"
    files = [str(file) for file in workload.paths]
    path.write_text(json.dumps({"bench_migration_files": files}), encoding="utf-8")
    return path


def time_community(tools: Tools, workload: Workload, variables: Path, database: str) -> float:
    """Run postgresql_script once per file, with the separate venv's ansible-playbook."""
    if tools.community_playbook is None:
        raise BenchError("no venv with community.postgresql was given: pass --community-venv")
    command = [str(tools.community_playbook), str(tools.playbooks.community), "-e", f"@{variables}"]
    env = playbook_environment(tools.cluster.env(database))
    elapsed, completed = _timed_process(command, env, PLAYBOOK_TIMEOUT_SECONDS)
    _check_recap(completed.stdout, ["localhost"], True, f"postgresql_script {workload.name}")
    return elapsed


def time_ping(tools: Tools) -> float:
    """Run the one-task ansible.builtin.ping playbook with the repository's venv."""
    command = [str(ANSIBLE_PLAYBOOK), str(tools.playbooks.ping)]
    env = playbook_environment(tools.cluster.env("postgres"))
    elapsed, completed = _timed_process(command, env, PLAYBOOK_TIMEOUT_SECONDS)
    _check_recap(completed.stdout, ["localhost"], False, "ping")
    return elapsed


def time_fanout(
    tools: Tools, workload: Workload, databases: list[str], forks: int, python: str
) -> float:
    """Apply ``workload`` to every database, one inventory host per database, with ``forks``."""
    inventory = tools.scratch / "fanout_inventory.json"
    write_fanout_inventory(inventory, databases, python)
    command = [
        str(ANSIBLE_PLAYBOOK),
        str(tools.playbooks.fanout),
        "-i",
        str(inventory),
        "-f",
        str(forks),
        "-e",
        f"bench_migrations_path={workload.directory}",
    ]
    env = playbook_environment(tools.cluster.env("postgres"))
    elapsed, completed = _timed_process(command, env, PLAYBOOK_TIMEOUT_SECONDS)
    hosts = [fanout_host(index) for index in range(1, len(databases) + 1)]
    _check_recap(completed.stdout, hosts, True, f"fan-out with forks {forks}")
    return elapsed
