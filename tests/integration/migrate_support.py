"""Helpers for the migration tests: module parameters, migration files and catalog queries."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.plugins.modules.postgresql_migrate import (
    argument_spec,
)
from pgcluster import Database
from playbook_run import REPO_ROOT

SHIPPED_SQL = REPO_ROOT / "files" / "sql"
ORIGINAL_SQL = REPO_ROOT / "tests" / "fixtures" / "original_sql"

SHIPPED_SCRIPTS = (
    "schema/V1__initial_schema.sql",
    "views/V2__analytics_views.sql",
    "matviews/V3__materialized_views.sql",
)

# Schema public after V1..V3 of files/sql, not counting the history table.
SHIPPED_TABLES = {
    "Tenant",
    "Funnel",
    "Click",
    "Identity",
    "DedupeRegistry",
    "DispatchAttempt",
    "SetupSession",
    "Pageview",
    "Checkout",
    "WebhookRaw",
    "Conversion",
    "MatchLog",
    "materialized_view_refresh",
}
SHIPPED_MATERIALIZED_VIEWS = {"v_dispatch_summary", "v_match_rate_by_tenant"}
SHIPPED_VIEWS = {"v_match_rate_by_tenant_aggregated"}

# Columns of the history table that the tests compare. installed_at and execution_time_ms
# differ from run to run, so they are left out.
HISTORY_COLUMNS = (
    "installed_rank",
    "version",
    "description",
    "type",
    "script",
    "checksum",
    "installed_by",
    "success",
)

# pg_class.relkind of the relations that relations_by_kind reports.
RELATION_KINDS = {
    "r": "table",
    "p": "table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "f": "foreign table",
}


def module_spec_params(
    argument_spec: Callable[[], dict[str, Any]], database: Database, **overrides: Any
) -> dict[str, Any]:
    """Return a module's parameters as AnsibleModule would pass them.

    Options start at the argument-spec defaults. The connection options come from the
    database's libpq environment, and ``overrides`` replace any option.
    """
    params = {name: spec.get("default") for name, spec in argument_spec().items()}
    env = database.env
    params.update(
        login_host=env["PGHOST"],
        login_port=int(env["PGPORT"]),
        login_user=env["PGUSER"],
        login_password=env["PGPASSWORD"],
        login_db=env["PGDATABASE"],
    )
    params.update(overrides)
    return params


def migrate_params(database: Database, *paths: Path, **overrides: Any) -> dict[str, Any]:
    """Return the parameters postgresql_migrate passes to the engine for ``paths``."""
    return module_spec_params(
        argument_spec, database, **{"path": [str(path) for path in paths], **overrides}
    )


def migrate(params: Mapping[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """Apply the pending migrations as the module does outside check mode; return the result.

    Warnings are appended to ``warnings`` when it is given.
    """
    sink = warnings if warnings is not None else []
    return api.migrate(dict(params), check_mode=False, diff=False, warn=sink.append)


def write_migrations(directory: Path, files: Mapping[str, str]) -> Path:
    """Write each script, a path relative to ``directory``, with its text. Return ``directory``."""
    for script, text in files.items():
        target = directory / script
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return directory


def file_sha256(path: Path) -> str:
    """Return the sha256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def text_sha256(text: str) -> str:
    """Return the sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def history_rows(
    database: Database, schema: str = "public", table: str = "schema_migrations"
) -> list[dict[str, Any]]:
    """Return every row of a history table as a dict of HISTORY_COLUMNS, by installed_rank.

    A history table that does not exist has no rows.
    """
    exists = database.query(
        "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = %s",
        (schema, table),
    )
    if not exists:
        return []
    query = sql.SQL("SELECT {columns} FROM {table} ORDER BY installed_rank").format(
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in HISTORY_COLUMNS),
        table=sql.Identifier(schema, table),
    )
    return [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in database.query(query)]


def history_versions(database: Database) -> list[str | None]:
    """Return the version column of the default history table, in installed_rank order."""
    return [row["version"] for row in history_rows(database)]


def relations_by_kind(database: Database, schema: str = "public") -> dict[str, set[str]]:
    """Return the names of the tables, views, materialized views and sequences in ``schema``.

    Keys are the values of RELATION_KINDS; kinds with no relation are left out. Indexes and
    TOAST tables are not listed.
    """
    rows = database.query(
        "SELECT c.relkind::text, c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = ANY(%s)",
        [schema, list(RELATION_KINDS)],
    )
    kinds: dict[str, set[str]] = {}
    for relkind, name in rows:
        kinds.setdefault(RELATION_KINDS[relkind], set()).add(name)
    return kinds


def user_relations(database: Database) -> set[tuple[str, str]]:
    """Return (schema, name) of every RELATION_KINDS relation outside the system schemas."""
    rows = database.query(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'"
        " AND c.relkind = ANY(%s)",
        [list(RELATION_KINDS)],
    )
    return set(rows)


def user_enum_types(database: Database) -> set[str]:
    """Return the names of the enum types outside the system schemas."""
    rows = database.query(
        "SELECT t.typname FROM pg_catalog.pg_type t"
        " JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
        " WHERE t.typtype = 'e' AND n.nspname NOT LIKE 'pg\\_%'"
    )
    return {name for (name,) in rows}
