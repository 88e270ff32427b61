"""Migration sets to benchmark: N synthetic files, and the SQL the collection ships."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    REPEATABLE,
    VERSIONED,
    load_sources,
    read_directories,
)

from . import REPO_ROOT

SHIPPED_SQL = REPO_ROOT / "files" / "sql"
SHIPPED_NAME = "shipped"


@dataclass(frozen=True)
class Workload:
    """A directory of migration files and the order in which they must run."""

    name: str
    directory: Path
    scripts: tuple[str, ...]
    size: int | None = None

    @property
    def paths(self) -> list[Path]:
        """The migration files in run order."""
        return [self.directory / script for script in self.scripts]


def synthetic_name(count: int) -> str:
    """Return the workload name used in tables and JSON, such as ``N=100``."""
    return f"N={count}"


def synthetic_sql(number: int) -> str:
    """Return migration ``number``: a table of six columns, an index on it and a view over it.

    The table has no primary key or identity column, so the index is its only index and no
    sequence is created: each file makes exactly a table, an index and a view.
    """
    table = f"bench_item_{number}"
    return (
        f"-- Synthetic migration {number}, written by bench/migrate/workloads.py.\n"
        f"CREATE TABLE {table} (\n"
        "    id bigint NOT NULL,\n"
        "    tenant_id integer NOT NULL,\n"
        "    name text NOT NULL,\n"
        "    amount numeric(12, 2) NOT NULL DEFAULT 0,\n"
        "    created_at timestamptz NOT NULL DEFAULT now(),\n"
        "    note text\n"
        ");\n"
        f"CREATE INDEX {table}_tenant_created_idx ON {table} (tenant_id, created_at);\n"
        f"CREATE VIEW {table}_recent AS\n"
        f"    SELECT id, tenant_id, name, amount FROM {table}\n"
        "    WHERE created_at > now() - interval '7 days';\n"
    )


def write_synthetic(parent: Path, count: int) -> Workload:
    """Write ``count`` synthetic migrations, V1 to V<count>, into a new directory."""
    directory = parent / f"synthetic_{count}"
    directory.mkdir(parents=True)
    scripts = []
    for number in range(1, count + 1):
        script = f"V{number}__create_bench_item_{number}.sql"
        (directory / script).write_text(synthetic_sql(number), encoding="utf-8")
        scripts.append(script)
    return Workload(synthetic_name(count), directory, tuple(scripts), size=count)


def shipped(directory: Path = SHIPPED_SQL) -> Workload:
    """Return the shipped migrations that a deploy applies, in the order the engine runs them.

    Other files in the directory, such as undo migrations, are left out: psql and
    postgresql_script would run every file they are given.
    """
    migrations = load_sources(read_directories([str(directory)]))
    forward = (m.script for m in migrations if m.kind in (VERSIONED, REPEATABLE))
    return Workload(SHIPPED_NAME, directory, tuple(forward))
