# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Steps shared by applying and verifying: run context, statements, history rows, reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .blockers import BlockerWatch
from .errors import ExecutionError, MigrationError
from .execution import LazyText, PreparedMigration, run_statements, session_reset, timeouts
from .history import (
    TYPE_REPEATABLE,
    TYPE_SQL,
    TYPE_SQL_NO_TRANSACTION,
    TYPE_UNDO,
    HistoryTable,
    insert_parameters,
)
from .sources import REPEATABLE, UNDO, Migration
from .views import run_repeatable

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

CHECK_EXECUTE = "execute"
CHECK_PLAN = "plan"
RESOLVE_RETRY = "retry"
RESOLVE_MARK_APPLIED = "mark_applied"


@dataclass
class RunOptions:
    """Options of one run.

    ``lock_timeout`` and ``statement_timeout`` are PostgreSQL interval strings; the other
    durations are seconds.
    """

    history_schema: str = "public"
    history_table: str = "schema_migrations"
    target: str | None = None
    lock_timeout: str = "5s"
    statement_timeout: str = "0"
    lock_wait_seconds: float = 300.0
    lock_retries: int = 3
    lock_retry_delay_seconds: float = 2.0
    check_mode: bool = False
    check_strategy: str = CHECK_EXECUTE
    session_role: str | None = None
    resolve_failed: str | None = None
    baseline_version: str | None = None
    baseline_verify: bool = False
    allow_out_of_order: bool = False
    ignore_missing_files: bool = False
    accept_checksums: list[str] = field(default_factory=list)
    schema_diff: bool = False
    safety_lint: str = "warn"
    large_table_rows: int = 100_000


@dataclass
class RunContext:
    """State of one run that every step needs."""

    connection: Any
    history: HistoryTable
    options: RunOptions
    backend_pid: int
    watch: BlockerWatch
    warnings: list[str] = field(default_factory=list)
    sleep: Callable[[float], None] | None = None
    schema_changes: str | None = None


def migration_settings(context: RunContext, local: bool) -> sql.Composable:
    """Return the SQL that prepares the session for one migration.

    It resets what an earlier migration left in the session, sets the two timeouts
    (transaction-local, or for the session in a no-transaction migration) and, on
    PostgreSQL 14 and later, makes the server notice within a second when the client is
    gone, so a killed run does not keep its migration running and its lock held.
    """
    options = context.options
    parts = [
        session_reset(options.session_role),
        timeouts(options.lock_timeout, options.statement_timeout, local=local),
    ]
    if context.connection.server_version >= 140000:
        scope = "SET LOCAL" if local else "SET"
        parts.append(sql.SQL(f"{scope} client_connection_check_interval = '1s'"))
    return sql.SQL("; ").join(parts)


def run_migration_sql(cursor: Any, item: PreparedMigration, stays: str | LazyText) -> int:
    """Run a migration's statements inside the open transaction; return milliseconds."""
    if item.migration.kind == REPEATABLE:
        return run_repeatable(cursor, item, stays)
    return run_statements(cursor, item, stays)


def check_backend(context: RunContext, pid: int) -> None:
    """Stop when the server process changed, as it does behind a transaction-pooling proxy."""
    if pid != context.backend_pid:
        raise MigrationError(
            f"The server process changed from pid {context.backend_pid} to pid {pid} during "
            "the run, so the migration lock no longer protects it. A transaction-pooling proxy "
            "(such as PgBouncer in transaction mode) hands each transaction to another server "
            "process: migrations need a direct or session-pooled connection."
        )


def record_statement(
    history: HistoryTable,
    item: PreparedMigration,
    elapsed: int,
    options: RunOptions,
    *,
    commit: bool,
    success: bool = True,
) -> tuple[sql.Composable, tuple[Any, ...]]:
    """Return the SQL and parameters that write a migration's history row.

    The row is written as the session's own role, whatever role the migration switched to.
    """
    migration = item.migration
    if migration.kind == REPEATABLE:
        row_type = TYPE_REPEATABLE
    elif migration.kind == UNDO:
        row_type = TYPE_UNDO
    else:
        row_type = TYPE_SQL_NO_TRANSACTION if item.no_transaction else TYPE_SQL
    parts: list[sql.Composable] = [sql.SQL("RESET SESSION AUTHORIZATION; RESET ROLE")]
    if options.session_role:
        parts.append(sql.SQL("SET ROLE {}").format(sql.Identifier(options.session_role)))
    parts.append(history.insert_statement())
    if commit:
        parts.append(sql.SQL("COMMIT"))
    parameters = insert_parameters(
        migration.version,
        migration.description,
        row_type,
        migration.script,
        migration.checksum,
        elapsed,
        success,
    )
    return sql.SQL("; ").join(parts), parameters


def rollback(connection: Any) -> None:
    """Roll back the open transaction; a connection that is already gone has none."""
    import psycopg2

    if connection.closed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        return


def describe(migration: Migration) -> dict[str, Any]:
    """Return one entry of the result's ``pending`` list."""
    return {
        "version": migration.version,
        "description": migration.description,
        "type": migration.kind,
        "script": migration.script,
        "checksum": migration.checksum,
    }


def report(migration: Migration, elapsed: int, *, verified: bool) -> dict[str, Any]:
    """Return one entry of the result's ``applied`` list."""
    return {**describe(migration), "execution_time_ms": elapsed, "verified": verified}


def label(entry: dict[str, Any]) -> str:
    """Name a reported migration as messages do: ``V2``, ``U2`` or ``R__views``."""
    if entry["type"] == UNDO:
        return f"U{entry['version']}"
    if entry["version"] is not None:
        return f"V{entry['version']}"
    return f"R__{entry['description']}"


def with_note(error: ExecutionError, note: str) -> ExecutionError:
    """Return a copy of ``error`` with a sentence added to its message."""
    return ExecutionError(
        f"{error} {note}",
        version=error.version,
        script=error.script,
        line=error.line,
        sqlstate=error.sqlstate,
    )
