# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry point for the postgresql_migration_info module: module parameters in, task result out.

The module only reads: the session is read-only, and every query runs in one REPEATABLE READ
transaction, so the history and the object inventory come from the same snapshot.
"""

from __future__ import annotations

from typing import Any

from .api import application_name, collect_sources, connection_settings
from .connection import connect
from .errors import MigrationError
from .execution import server_message
from .history import HistoryTable
from .inventory import MigrationStatus, migration_status, schema_objects

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass


def migration_info(params: dict[str, Any]) -> dict[str, Any]:
    """Return the migration status and the objects of the requested schemas.

    Raises MigrationError for every expected failure: unreadable files, a failed connection,
    or a history table that cannot be read.
    """
    sources = None
    if params.get("path") or params.get("sources") is not None:
        sources = collect_sources(params)
    history = HistoryTable(params["history_schema"], params["history_table"])
    settings = connection_settings(params, application_name(params, "postgresql_migration_info"))
    connection = connect(settings)
    try:
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
        with connection.cursor() as cursor:
            status = _read_status(cursor, history, sources)
            objects = {schema: schema_objects(cursor, schema) for schema in params["schemas"]}
        connection.rollback()
    except psycopg2.Error as error:
        raise MigrationError(f"PostgreSQL error: {server_message(error)}") from None
    finally:
        connection.close()
    return task_result(status, history, objects, compared=sources is not None)


def _read_status(cursor: Any, history: HistoryTable, sources: list[Any] | None) -> MigrationStatus:
    try:
        return migration_status(cursor, history, sources)
    except psycopg2.Error as error:
        raise MigrationError(
            f"Cannot read the history table {history.qualified_name}: {server_message(error)} "
            "Check that history_schema and history_table name a table that postgresql_migrate "
            "created."
        ) from None


def task_result(
    status: MigrationStatus,
    history: HistoryTable,
    objects: dict[str, Any],
    compared: bool,
) -> dict[str, Any]:
    """Return the result keys. ``changed`` is always false because nothing is written."""
    return {
        "changed": False,
        "msg": summary(status, history, compared),
        "applied": status.applied,
        "pending": status.pending,
        "failed_migrations": status.failed,
        "drifted": status.drifted,
        "current_version": status.current_version,
        "history_table": history.qualified_name,
        "history_table_exists": status.history_table_exists,
        "objects": objects,
    }


def summary(status: MigrationStatus, history: HistoryTable, compared: bool) -> str:
    """Return one line: the version, then the counts of each list."""
    if not status.history_table_exists:
        head = f"No history table {history.qualified_name}, so no migration has been applied"
    elif status.current_version is None:
        head = "The database has no versioned migration applied"
    else:
        head = f"The database is at version {status.current_version}"
    counts = [f"{len(status.applied)} applied", f"{len(status.failed)} failed"]
    if compared:
        counts += [f"{len(status.pending)} pending", f"{len(status.drifted)} drifted"]
    else:
        counts.append("pending and drift not computed because path is not set")
    return f"{head}: {', '.join(counts)}."
