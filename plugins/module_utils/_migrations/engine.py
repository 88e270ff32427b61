# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run migrations: lock, read the history, plan, then apply or verify the pending ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .execution import (
    NO_TRANSACTION_DIRECTIVE,
    PreparedMigration,
    prepare,
    run_statements,
    session_reset,
    timeouts,
)
from .history import (
    TYPE_REPEATABLE,
    TYPE_SQL,
    TYPE_SQL_NO_TRANSACTION,
    HistoryTable,
    insert_parameters,
)
from .lock import migration_lock
from .planner import Plan, make_plan
from .errors import ExecutionError
from .sources import REPEATABLE, VERSIONED, Migration, version_key

CHECK_EXECUTE = "execute"
CHECK_PLAN = "plan"


@dataclass
class RunOptions:
    """How one run behaves; durations are PostgreSQL interval strings unless named seconds."""

    history_schema: str = "public"
    history_table: str = "schema_migrations"
    target: str | None = None
    lock_timeout: str = "5s"
    statement_timeout: str = "0"
    lock_wait_seconds: float = 300.0
    check_mode: bool = False
    check_strategy: str = CHECK_EXECUTE
    session_role: str | None = None


@dataclass
class RunResult:
    """What a run did, or in check mode would do."""

    applied: list[dict[str, Any]]
    pending: list[dict[str, Any]]
    current_version: str | None
    versions_before: list[str]
    history_table: str
    history_table_created: bool
    migrations: list[Migration] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def run(connection: Any, sources: list[Migration], options: RunOptions) -> RunResult:
    """Apply (or in check mode verify) every pending migration under the migration lock."""
    history = HistoryTable(options.history_schema, options.history_table)
    key = history.lock_key()
    with migration_lock(connection, key, options.lock_wait_seconds, history.qualified_name):
        created, rows = _read_history(connection, history, options.check_mode)
        plan = make_plan(sources, rows, options.target)
        prepared = [prepare(m, connection.server_version) for m in plan.pending]
        if options.check_mode:
            applied, warnings = _verify(connection, prepared, plan, options)
        else:
            applied, warnings = _apply(connection, history, prepared, plan, options), []
    return _result(sources, plan, applied, history, created, warnings)


def _read_history(connection: Any, history: HistoryTable, check_mode: bool) -> tuple[bool, list]:
    with connection.cursor() as cursor:
        if history.exists(cursor):
            return False, history.rows(cursor)
        if not check_mode:
            history.create(cursor)
    return True, []


def _apply(
    connection: Any,
    history: HistoryTable,
    prepared: list[PreparedMigration],
    plan: Plan,
    options: RunOptions,
) -> list[dict[str, Any]]:
    applied: list[dict[str, Any]] = []
    for item in prepared:
        stays = _stays_message(item.migration, applied, plan.current_version)
        if item.no_transaction:
            elapsed = _apply_without_transaction(connection, history, item, options, stays)
        else:
            elapsed = _apply_in_transaction(connection, history, item, options, stays)
        applied.append(_report(item.migration, elapsed, verified=True))
    return applied


def _apply_in_transaction(
    connection: Any,
    history: HistoryTable,
    item: PreparedMigration,
    options: RunOptions,
    stays: str,
) -> int:
    """Run one migration and its history row in one transaction; commit or roll back both."""
    from psycopg2 import sql

    with connection.cursor() as cursor:
        begin = sql.SQL("BEGIN; {reset}; {timeouts}").format(
            reset=session_reset(options.session_role),
            timeouts=timeouts(options.lock_timeout, options.statement_timeout, local=True),
        )
        try:
            cursor.execute(begin)
            elapsed = run_statements(cursor, item, stays)
            _record(cursor, history, item, elapsed, options, commit=True)
        except BaseException:
            _rollback(connection)
            raise
    return elapsed


def _apply_without_transaction(
    connection: Any,
    history: HistoryTable,
    item: PreparedMigration,
    options: RunOptions,
    stays: str,
) -> int:
    """Run each statement in autocommit, then write the history row.

    A failure part-way leaves the statements before it committed, so the migration is
    recorded as failed and later runs stop until someone repairs the database.
    """
    from psycopg2 import sql

    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("{reset}; {timeouts}").format(
                reset=session_reset(options.session_role),
                timeouts=timeouts(options.lock_timeout, options.statement_timeout, local=False),
            )
        )
        partial = f"Statements of {item.migration.label} before the failing one stay committed"
        try:
            elapsed = run_statements(cursor, item, f"{partial}; the migration is recorded as failed.")
        except ExecutionError:
            _record(cursor, history, item, 0, options, commit=False, success=False)
            raise
        _record(cursor, history, item, elapsed, options, commit=False)
    return elapsed


def _record(
    cursor: Any,
    history: HistoryTable,
    item: PreparedMigration,
    elapsed: int,
    options: RunOptions,
    *,
    commit: bool,
    success: bool = True,
) -> None:
    from psycopg2 import sql

    migration = item.migration
    if migration.kind == REPEATABLE:
        row_type = TYPE_REPEATABLE
    else:
        row_type = TYPE_SQL_NO_TRANSACTION if item.no_transaction else TYPE_SQL
    parts = [sql.SQL("RESET ROLE")]
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
    cursor.execute(sql.SQL("; ").join(parts), parameters)


def _rollback(connection: Any) -> None:
    if connection.closed:
        return
    with connection.cursor() as cursor:
        cursor.execute("ROLLBACK")


def _verify(
    connection: Any, prepared: list[PreparedMigration], plan: Plan, options: RunOptions
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the pending migrations in one transaction that is always rolled back."""
    if options.check_strategy == CHECK_PLAN:
        reports = [_report(p.migration, 0, verified=False) for p in prepared]
        return reports, []
    reports: list[dict[str, Any]] = []
    warnings: list[str] = []
    skipped: list[str] = []
    with connection.cursor() as cursor:
        try:
            cursor.execute("BEGIN")
            for item in prepared:
                reports.append(_verify_one(cursor, item, skipped, warnings, options))
        finally:
            _rollback(connection)
    return reports, warnings


def _verify_one(
    cursor: Any,
    item: PreparedMigration,
    skipped: list[str],
    warnings: list[str],
    options: RunOptions,
) -> dict[str, Any]:
    from psycopg2 import sql

    label = item.migration.label
    if item.no_transaction:
        skipped.append(label)
        warnings.append(
            f"{label} ({item.migration.script}) is marked {NO_TRANSACTION_DIRECTIVE} and "
            "cannot run inside the check transaction, so check mode did not execute it."
        )
        return _report(item.migration, 0, verified=False)
    cursor.execute(
        sql.SQL("{reset}; {timeouts}; SAVEPOINT dbops_check").format(
            reset=session_reset(options.session_role),
            timeouts=timeouts(options.lock_timeout, options.statement_timeout, local=True),
        )
    )
    stays = "Check mode: nothing was written, and the database is unchanged."
    try:
        elapsed = run_statements(cursor, item, stays)
    except ExecutionError as error:
        if not skipped:
            raise
        cursor.execute("ROLLBACK TO SAVEPOINT dbops_check")
        warnings.append(
            f"{label} could not be verified, possibly because it depends on "
            f"{', '.join(skipped)}, which check mode did not execute: {error}"
        )
        return _report(item.migration, 0, verified=False)
    return _report(item.migration, elapsed, verified=True)


def _stays_message(migration: Migration, applied: list[dict[str, Any]], current: str | None) -> str:
    head = f"Nothing from {migration.label} was committed;"
    if applied:
        labels = ", ".join(_label(entry) for entry in applied)
        return f"{head} {labels} applied in this run stay applied."
    if current is not None:
        return f"{head} the database stays at version {current}."
    return f"{head} no migration has been applied to this database."


def _label(entry: dict[str, Any]) -> str:
    if entry["version"] is not None:
        return f"V{entry['version']}"
    return f"R__{entry['description']}"


def _report(migration: Migration, elapsed: int, *, verified: bool) -> dict[str, Any]:
    return {
        "version": migration.version,
        "description": migration.description,
        "type": migration.kind,
        "script": migration.script,
        "checksum": migration.checksum,
        "execution_time_ms": elapsed,
        "verified": verified,
    }


def _result(
    sources: list[Migration],
    plan: Plan,
    applied: list[dict[str, Any]],
    history: HistoryTable,
    created: bool,
    warnings: list[str],
) -> RunResult:
    planned = {m.script for m in plan.pending}
    applied_keys = {version_key(v) for v in plan.applied_versions}
    remaining = [
        _pending_entry(m)
        for m in sources
        if m.kind == VERSIONED and m.script not in planned and m.key not in applied_keys
    ]
    versions = [entry["version"] for entry in applied if entry["version"] is not None]
    current = versions[-1] if versions else plan.current_version
    return RunResult(
        applied=applied,
        pending=remaining,
        current_version=current,
        versions_before=plan.applied_versions,
        history_table=history.qualified_name,
        history_table_created=created,
        migrations=plan.pending,
        warnings=warnings,
    )


def _pending_entry(migration: Migration) -> dict[str, Any]:
    return {
        "version": migration.version,
        "description": migration.description,
        "type": migration.kind,
        "script": migration.script,
        "checksum": migration.checksum,
    }
