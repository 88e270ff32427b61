"""Helpers for the check-mode tests: module parameters, migration files and database state."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.history import (
    HistoryTable,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    migrate_params,
)
from pgcluster import Database
from playbook_run import REPO_ROOT

SHIPPED_SQL = REPO_ROOT / "files" / "sql"
ORIGINAL_SQL = REPO_ROOT / "tests" / "fixtures" / "original_sql"

V1_SCRIPT = "schema/V1__initial_schema.sql"
V2_SCRIPT = "views/V2__analytics_views.sql"
V3_SCRIPT = "matviews/V3__materialized_views.sql"

HISTORY = HistoryTable("public", "schema_migrations")

# The suffix of every execution error raised in check mode.
CHECK_NOTHING_WRITTEN = "Check mode: nothing was written, and the database is unchanged."

# Relations and standalone types (enums, domains, base types) outside the system schemas.
# Row types of tables and array types are left out because they come with another object.
_OBJECTS_QUERY = """
SELECT c.relkind::text, n.nspname, c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 'type ' || t.typtype::text, n.nspname, t.typname
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  AND t.typrelid = 0 AND t.typcategory <> 'A'
ORDER BY 1, 2, 3
"""


def module_params(database: Database, path: Path | list[Path], **overrides: Any) -> dict[str, Any]:
    """Return the parameters postgresql_migrate receives: spec defaults, then the connection.

    ``path`` is one migration directory or a list of them. ``overrides`` replace any option.
    """
    paths = path if isinstance(path, list) else [path]
    return migrate_params(database, *paths, **overrides)


def check(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run the engine in check mode with diff, and return the task result and the warnings."""
    warnings: list[str] = []
    result = api.migrate(dict(params), check_mode=True, diff=True, warn=warnings.append)
    return result, warnings


def apply(params: Mapping[str, Any]) -> dict[str, Any]:
    """Run the engine for real with diff and return the task result."""
    return api.migrate(dict(params), check_mode=False, diff=True, warn=lambda _: None)


def write_migrations(directory: Path, files: Mapping[str, str]) -> Path:
    """Write each script, a path relative to ``directory``, and return ``directory``."""
    for script, text in files.items():
        target = directory / script
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return directory


def copy_migration(source: Path, directory: Path, script: str) -> None:
    """Copy the migration ``source`` into ``directory`` under the relative name ``script``."""
    target = directory / script
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def schema_objects(database: Database) -> list[tuple[str, str, str]]:
    """Return (kind, schema, name) of every user relation and standalone type, sorted.

    ``kind`` is pg_class.relkind (r table, v view, m materialized view, i index, S sequence)
    or ``type`` and pg_type.typtype (``type e`` for an enum).
    """
    return [tuple(row) for row in database.query(_OBJECTS_QUERY)]


def relation_counts(database: Database, schema: str = "public") -> dict[str, int]:
    """Return the number of relations of each pg_class.relkind in ``schema``."""
    rows = database.query(
        "SELECT c.relkind::text, count(*) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s GROUP BY 1",
        [schema],
    )
    return dict(rows)


def history_versions(database: Database) -> list[str] | None:
    """Return the versions recorded in the default history table, or None if it is missing."""
    exists = database.query("SELECT pg_catalog.to_regclass('public.schema_migrations')")
    if exists[0][0] is None:
        return None
    rows = database.query("SELECT version FROM public.schema_migrations ORDER BY installed_rank")
    return [row[0] for row in rows]


def history_checksums(database: Database) -> dict[str, str]:
    """Return the checksum recorded for each version in the default history table."""
    rows = database.query("SELECT version, checksum FROM public.schema_migrations")
    return dict(rows)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` every 20 ms, and raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(0.02)


class EngineThread(threading.Thread):
    """Run ``api.migrate`` in a thread and keep its result or its exception."""

    def __init__(self, params: Mapping[str, Any], check_mode: bool) -> None:
        super().__init__(daemon=True)
        self.params = dict(params)
        self.check_mode = check_mode
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.warnings: list[str] = []

    def run(self) -> None:
        try:
            self.result = api.migrate(
                self.params, check_mode=self.check_mode, diff=True, warn=self.warnings.append
            )
        except BaseException as error:  # re-raised in the test's thread by outcome()
            self.error = error

    def outcome(self, timeout: float = 60.0) -> dict[str, Any]:
        """Join the thread and return the result, or re-raise the engine's exception."""
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"the engine run did not finish within {timeout:g} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
