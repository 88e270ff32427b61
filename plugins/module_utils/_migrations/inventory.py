# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only reports for postgresql_migration_info: migration status and schema objects.

Every query reads the system catalogs through ``pg_catalog``-qualified names and takes schema
names as parameters, so no identifier is ever built into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .history import HistoryRow, HistoryTable
from .planner import effective_applied, repeatable_checksums
from .sources import REPEATABLE, VERSIONED, Migration, version_key

# Values of a ``drifted`` entry's ``problem`` key.
DRIFT_CHECKSUM_CHANGED = "checksum_changed"
DRIFT_FILE_MISSING = "file_missing"

OBJECT_KINDS = ("tables", "views", "materialized_views", "types", "indexes", "foreign_keys")

_SCHEMA_OID = "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s"

_RELATIONS = """
SELECT c.relname::text, c.relkind::text, c.relispopulated
FROM pg_catalog.pg_class c
WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY c.relname
"""

_ENUM_TYPES = """
SELECT t.typname::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_catalog.pg_type t
WHERE t.typnamespace = %s AND t.typtype = 'e'
ORDER BY t.typname
"""

_INDEXES = """
SELECT ic.relname::text, tc.relname::text, i.indisunique, i.indisvalid, i.indisprimary
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
WHERE ic.relnamespace = %s
ORDER BY ic.relname
"""

# Column names follow the order of conkey and confkey, so that columns[i] references
# referenced_columns[i].
_FOREIGN_KEYS = """
SELECT con.conname::text, tc.relname::text, rn.nspname::text, rc.relname::text,
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_catalog.pg_attribute a
               ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.position),
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, position)
             JOIN pg_catalog.pg_attribute a
               ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.position)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class tc ON tc.oid = con.conrelid
JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.connamespace = %s AND con.contype = 'f'
ORDER BY con.conname, tc.relname
"""


@dataclass
class MigrationStatus:
    """The history table compared with the migration files, when files were given."""

    history_table_exists: bool
    applied: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    drifted: list[dict[str, Any]] = field(default_factory=list)
    current_version: str | None = None


def migration_status(
    cursor: Any, history: HistoryTable, sources: list[Migration] | None
) -> MigrationStatus:
    """Read the history table and, when ``sources`` is given, compare the files with it.

    A missing history table is reported as such, with every migration file pending. Unlike
    planning a run, drift raises nothing here and is listed in ``drifted``.
    """
    exists = history.exists(cursor)
    rows = history.rows(cursor) if exists else []
    applied = still_applied(rows)
    status = MigrationStatus(
        history_table_exists=exists,
        applied=[history_entry(row) for row in applied],
        failed=[history_entry(row) for row in rows if not row.success],
        current_version=current_version(applied),
    )
    if sources is not None:
        status.pending = pending_migrations(sources, applied, repeatable_checksums(rows))
        status.drifted = drifted_migrations(sources, applied)
    return status


def still_applied(rows: list[HistoryRow]) -> list[HistoryRow]:
    """Return the successful rows whose migration is still applied, in installed_rank order.

    A versioned migration that an undo script reverted later is left out, and so are the
    undo rows themselves, as when a run plans.
    """
    repeatable = [row for row in rows if row.success and row.version is None]
    versioned = effective_applied(rows)
    return sorted(repeatable + versioned, key=lambda row: row.installed_rank)


def history_entry(row: HistoryRow) -> dict[str, Any]:
    """Return a history row as a result entry, with ``installed_at`` in ISO 8601."""
    return {
        "installed_rank": row.installed_rank,
        "version": row.version,
        "description": row.description,
        "type": row.type,
        "script": row.script,
        "checksum": row.checksum,
        "installed_by": row.installed_by,
        "installed_at": row.installed_at.isoformat(),
        "execution_time_ms": row.execution_time_ms,
    }


def current_version(applied: list[HistoryRow]) -> str | None:
    """Return the highest version among applied rows, compared by numeric parts."""
    versioned = [row for row in applied if row.version is not None]
    if not versioned:
        return None
    return max(versioned, key=lambda row: version_key(row.version or "0")).version


def pending_migrations(
    sources: list[Migration], applied: list[HistoryRow], repeatables: dict[str, str]
) -> list[dict[str, Any]]:
    """Return the files a run without a target would apply if nothing stopped it, in the order
    it applies them.

    A versioned file is pending when its version is not applied, including one whose earlier
    attempt is recorded as failed or that an undo script reverted. A repeatable file is
    pending when its checksum differs from ``repeatables``, the checksums from
    planner.repeatable_checksums. Undo scripts are never pending, because they run only for
    a lower target.
    """
    applied_keys = {version_key(row.version) for row in applied if row.version is not None}
    pending = []
    for migration in sources:
        if migration.kind == VERSIONED:
            is_pending = migration.key not in applied_keys
        elif migration.kind == REPEATABLE:
            is_pending = repeatables.get(migration.description) != migration.checksum
        else:
            is_pending = False
        if not is_pending:
            continue
        pending.append(
            {
                "version": migration.version,
                "description": migration.description,
                "type": migration.kind,
                "script": migration.script,
                "checksum": migration.checksum,
            }
        )
    return pending


def drifted_migrations(sources: list[Migration], applied: list[HistoryRow]) -> list[dict[str, Any]]:
    """Return applied versioned migrations whose file changed or is gone, by version."""
    by_key = {m.key: m for m in sources if m.kind == VERSIONED}
    drifted = []
    rows = [row for row in applied if row.version is not None]
    for row in sorted(rows, key=lambda r: version_key(r.version or "0")):
        source = by_key.get(version_key(row.version or "0"))
        if source is None:
            drifted.append(_drift(row, DRIFT_FILE_MISSING, row.script, None))
        elif source.checksum != row.checksum:
            drifted.append(_drift(row, DRIFT_CHECKSUM_CHANGED, source.script, source.checksum))
    return drifted


def _drift(row: HistoryRow, problem: str, script: str, file_checksum: str | None) -> dict[str, Any]:
    return {
        "version": row.version,
        "script": script,
        "problem": problem,
        "history_checksum": row.checksum,
        "file_checksum": file_checksum,
    }


def schema_objects(cursor: Any, schema: str) -> dict[str, Any]:
    """Return the tables, views, materialized views, enum types, indexes and foreign keys of
    ``schema``, each list sorted by name, with a count per kind.

    A schema that does not exist is reported with ``exists`` false and empty lists.
    """
    cursor.execute(_SCHEMA_OID, (schema,))
    row = cursor.fetchone()
    objects: dict[str, Any] = {"exists": row is not None}
    objects.update({kind: [] for kind in OBJECT_KINDS})
    if row is not None:
        namespace = row[0]
        objects.update(_relations(cursor, namespace))
        objects["types"] = _enum_types(cursor, namespace)
        objects["indexes"] = _indexes(cursor, namespace)
        objects["foreign_keys"] = _foreign_keys(cursor, namespace)
    objects["counts"] = {kind: len(objects[kind]) for kind in OBJECT_KINDS}
    return objects


def _relations(cursor: Any, namespace: int) -> dict[str, list[Any]]:
    cursor.execute(_RELATIONS, (namespace,))
    relations: dict[str, list[Any]] = {"tables": [], "views": [], "materialized_views": []}
    for name, kind, populated in cursor.fetchall():
        if kind in ("r", "p"):
            relations["tables"].append(name)
        elif kind == "v":
            relations["views"].append(name)
        else:
            relations["materialized_views"].append({"name": name, "populated": populated})
    return relations


def _enum_types(cursor: Any, namespace: int) -> list[dict[str, Any]]:
    cursor.execute(_ENUM_TYPES, (namespace,))
    return [{"name": name, "labels": list(labels)} for name, labels in cursor.fetchall()]


def _indexes(cursor: Any, namespace: int) -> list[dict[str, Any]]:
    cursor.execute(_INDEXES, (namespace,))
    return [
        {"name": name, "table": table, "unique": unique, "valid": valid, "primary": primary}
        for name, table, unique, valid, primary in cursor.fetchall()
    ]


def _foreign_keys(cursor: Any, namespace: int) -> list[dict[str, Any]]:
    cursor.execute(_FOREIGN_KEYS, (namespace,))
    return [
        {
            "name": name,
            "table": table,
            "referenced_schema": referenced_schema,
            "referenced_table": referenced_table,
            "columns": list(columns),
            "referenced_columns": list(referenced_columns),
        }
        for name, table, referenced_schema, referenced_table, columns, referenced_columns in (
            cursor.fetchall()
        )
    ]
