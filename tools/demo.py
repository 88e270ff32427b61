"""Deploy the shipped schema to a throwaway PostgreSQL server twice and show the result.

The demo starts a server, creates the database ``tracking_hub`` and runs
``ansible-playbook playbooks/deploy_schema.yml`` with PGHOST, PGPORT, PGUSER, PGPASSWORD and
PGDATABASE pointing at it. It runs the playbook again and requires ``changed=0`` for every host
in the second PLAY RECAP. Then it prints the history table ``public.schema_migrations`` and the
number of tables, views and materialized views in schema ``public``. The server is stopped on
every exit path, failures included.

ANSIBLE_COLLECTIONS_PATH and ANSIBLE_CONFIG are removed from the environment, so the
ansible.cfg at the repository root decides where the collection is found. Run it with the
project's virtualenv (``make demo``), which provides ansible-playbook and psycopg2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg2

from pgcluster import Database, PgCluster, PgClusterError
from playbook_run import ANSIBLE_PLAYBOOK, REPO_ROOT, parse_play_recap, playbook_environment

DEFAULT_PLAYBOOK = "playbooks/deploy_schema.yml"
DATABASE_NAME = "tracking_hub"
HISTORY_COLUMNS = (
    "installed_rank",
    "version",
    "description",
    "script",
    "checksum",
    "success",
    "execution_time_ms",
)
# Labels for pg_class.relkind codes. Plain (r) and partitioned (p) tables share one label.
RELATION_LABELS = {
    "r": "tables (including the history table)",
    "p": "tables (including the history table)",
    "v": "views",
    "m": "materialized views",
}


class DemoFailed(Exception):
    """A step of the demo failed. The message names the step and the cause."""


def run_playbook(playbook: Path, database: Database, label: str) -> str:
    """Run ansible-playbook, echo its output as it arrives, and return the stdout text.

    Raises DemoFailed when ansible-playbook exits non-zero.
    """
    print(f"\n=== {label}: ansible-playbook {playbook}", flush=True)
    command = [str(ANSIBLE_PLAYBOOK), str(playbook)]
    output_lines = []
    with subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=playbook_environment(database.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            output_lines.append(line)
    if process.returncode != 0:
        raise DemoFailed(f"{label}: ansible-playbook exited with status {process.returncode}")
    return "".join(output_lines)


def require_no_changes(output: str, label: str) -> None:
    """Raise DemoFailed unless every host in the PLAY RECAP reports changed=0."""
    try:
        recaps = parse_play_recap(output)
    except ValueError as error:
        raise DemoFailed(f"{label}: {error}") from error
    if not recaps:
        raise DemoFailed(f"{label}: the PLAY RECAP lists no hosts")
    changed = {host: counts.get("changed") for host, counts in recaps.items()}
    not_idempotent = {host: count for host, count in changed.items() if count != 0}
    if not_idempotent:
        raise DemoFailed(
            f"{label} is not idempotent: the PLAY RECAP reports changed tasks {not_idempotent}, "
            "expected changed=0 for every host"
        )


def print_history(database: Database) -> None:
    query = f"SELECT {', '.join(HISTORY_COLUMNS)} FROM public.schema_migrations ORDER BY 1"
    try:
        rows = database.query(query)
    except psycopg2.Error as error:
        raise DemoFailed(f"reading public.schema_migrations failed: {error}") from error
    print(f"\n=== Applied migrations in {database.name}.public.schema_migrations")
    table = [HISTORY_COLUMNS]
    for row in rows:
        table.append(tuple("" if value is None else str(value) for value in row))
    widths = [max(len(row[column]) for row in table) for column in range(len(HISTORY_COLUMNS))]
    for row in table:
        cells = [value.ljust(width) for value, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


def print_object_counts(database: Database) -> None:
    rows = database.query(
        "SELECT c.relkind::text, count(*) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind::text = ANY(%s)"
        " GROUP BY c.relkind",
        [list(RELATION_LABELS)],
    )
    counts = dict.fromkeys(RELATION_LABELS.values(), 0)
    for kind, count in rows:
        counts[RELATION_LABELS[kind]] += count
    print(f"\n=== Objects in schema public of {database.name}")
    for label, count in counts.items():
        print(f"{label}: {count}")


def run_demo(playbook: Path) -> None:
    with PgCluster() as cluster:
        print(f"PostgreSQL {cluster.version} on {cluster.host}:{cluster.port}")
        database = cluster.create_database(DATABASE_NAME)
        run_playbook(playbook, database, "First run")
        second_output = run_playbook(playbook, database, "Second run")
        require_no_changes(second_output, "Second run")
        print("\nSecond run changed nothing: the deployment is idempotent.")
        print_history(database)
        print_object_counts(database)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--playbook",
        type=Path,
        default=Path(DEFAULT_PLAYBOOK),
        help=f"playbook to run, relative to the repository root (default: {DEFAULT_PLAYBOOK})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    playbook = REPO_ROOT / args.playbook
    if not playbook.is_file():
        print(f"demo: error: playbook {playbook} not found", file=sys.stderr)
        return 2
    try:
        run_demo(playbook)
    except (DemoFailed, PgClusterError) as error:
        print(f"\ndemo: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
