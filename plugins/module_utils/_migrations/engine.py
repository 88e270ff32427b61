# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run migrations: lock, read the history, plan, then apply or verify the pending ones."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ExecutionError, MigrationError
from .execution import (
    NO_TRANSACTION_DIRECTIVE,
    PreparedMigration,
    prepare,
    run_statements,
    server_message,
    session_reset,
    timeouts,
)
from .history import (
    TYPE_REPEATABLE,
    TYPE_SQL,
    TYPE_SQL_NO_TRANSACTION,
    HistoryRow,
    HistoryTable,
    insert_parameters,
)
from .lock import migration_lock
from .planner import Plan, make_plan
from .sources import REPEATABLE, VERSIONED, Migration, version_key
from .views import run_repeatable

CHECK_EXECUTE = "execute"
CHECK_PLAN = "plan"
RESOLVE_RETRY = "retry"
RESOLVE_MARK_APPLIED = "mark_applied"


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
    resolve_failed: str | None = None


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
        warnings: list[str] = []
        if options.resolve_failed:
            rows = _resolve_failed(connection, history, rows, sources, options, warnings)
        plan = make_plan(sources, rows, options.target)
        scs = _standard_conforming_strings(connection)
        prepared = [prepare(m, connection.server_version, scs) for m in plan.pending]
        if options.check_mode:
            applied = _verify(connection, prepared, options, warnings)
        else:
            applied = _apply(connection, history, prepared, plan, options)
    return _result(sources, plan, applied, history, created, warnings)


def _standard_conforming_strings(connection: Any) -> bool:
    """Return the session's default, which RESET ALL restores before each migration."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.current_setting('standard_conforming_strings')")
        return cursor.fetchone()[0] == "on"


def _resolve_failed(
    connection: Any,
    history: HistoryTable,
    rows: list[HistoryRow],
    sources: list[Migration],
    options: RunOptions,
    warnings: list[str],
) -> list[HistoryRow]:
    """Apply the user's decision on migrations recorded as failed; return the history to plan on.

    ``retry`` deletes the failed rows so the migrations run again; ``mark_applied`` records
    them as applied with the current file's checksum, running no SQL. Check mode changes
    only the rows it plans on.
    """
    failed = [row for row in rows if not row.success]
    if not failed:
        return rows
    checksums = {m.script: m.checksum for m in sources}
    ranks = [row.installed_rank for row in failed]
    labels = ", ".join(f"V{row.version}" if row.version else row.script for row in failed)
    if not options.check_mode:
        with connection.cursor() as cursor:
            history.resolve_failed(cursor, ranks, options.resolve_failed, checksums)
    if options.resolve_failed == RESOLVE_RETRY:
        warnings.append(
            f"{labels} was recorded as failed; resolve_failed=retry removed that record, so it "
            "runs again."
        )
        return [row for row in rows if row.success]
    warnings.append(
        f"{labels} was recorded as failed; resolve_failed=mark_applied recorded it as applied. "
        "No SQL of it ran in this run."
    )
    return [
        replace(row, success=True, checksum=checksums.get(row.script, row.checksum))
        if not row.success
        else row
        for row in rows
    ]


def _read_history(connection: Any, history: HistoryTable, check_mode: bool) -> tuple[bool, list]:
    """Return whether the history table is (or in check mode would be) created, and its rows."""
    import psycopg2

    try:
        with connection.cursor() as cursor:
            if history.exists(cursor):
                return False, history.rows(cursor)
            if not check_mode:
                history.create(cursor)
    except psycopg2.Error as error:
        raise MigrationError(
            f"Cannot read or create the history table {history.qualified_name}: "
            f"{server_message(error)}"
        ) from None
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
            elapsed = _run(cursor, item, stays)
            _record(cursor, history, item, elapsed, options, commit=True)
        except BaseException:
            _rollback(connection)
            raise
    return elapsed


def _run(cursor: Any, item: PreparedMigration, stays: str) -> int:
    """Run a migration's statements inside the open transaction."""
    if item.migration.kind == REPEATABLE:
        return run_repeatable(cursor, item, stays)
    return run_statements(cursor, item, stays)


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
        invalid_before = _invalid_indexes(cursor)
        label = item.migration.label
        stays = (
            f"Statements of {label} before that line stay committed, and {label} is recorded as "
            "failed: repair the database, then run again with resolve_failed set to retry or "
            "mark_applied."
        )
        try:
            elapsed = run_statements(cursor, item, stays)
        except ExecutionError as error:
            _record(cursor, history, item, 0, options, commit=False, success=False)
            left = _invalid_indexes(cursor) - invalid_before
            if left:
                error.args = (f"{error} {_invalid_index_note(left)}",)
            raise
        left = _invalid_indexes(cursor) - invalid_before
        if left:
            _record(cursor, history, item, elapsed, options, commit=False, success=False)
            raise ExecutionError(
                f"Migration {label} ({item.migration.script}) finished, but "
                f"{_invalid_index_note(left)} {label} is recorded as failed.",
                version=item.migration.version,
                script=item.migration.script,
                line=None,
                sqlstate=None,
            )
        _record(cursor, history, item, elapsed, options, commit=False)
    return elapsed


def _invalid_indexes(cursor: Any) -> set[str]:
    """Return the invalid indexes of the database, as left by a failed concurrent build."""
    cursor.execute(
        "SELECT i.indexrelid::pg_catalog.regclass::text FROM pg_catalog.pg_index i"
        " WHERE NOT i.indisvalid"
    )
    return {row[0] for row in cursor.fetchall()}


def _invalid_index_note(names: set[str]) -> str:
    listed = ", ".join(sorted(names))
    return (
        f"The concurrent index build left invalid index {listed} (pg_index.indisvalid is "
        "false): drop it with DROP INDEX CONCURRENTLY before running again."
    )


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
    parts = [sql.SQL("RESET SESSION AUTHORIZATION; RESET ROLE")]
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
    """Roll back the open transaction; a connection that is already gone has none."""
    import psycopg2

    if connection.closed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        return


def _verify(
    connection: Any, prepared: list[PreparedMigration], options: RunOptions, warnings: list[str]
) -> list[dict[str, Any]]:
    """Run the pending migrations in one transaction that is always rolled back."""
    if options.check_strategy == CHECK_PLAN:
        return [_report(p.migration, 0, verified=False) for p in prepared]
    reports: list[dict[str, Any]] = []
    skipped: list[str] = []
    with connection.cursor() as cursor:
        try:
            cursor.execute("BEGIN")
            for item in prepared:
                reports.append(_verify_one(cursor, item, skipped, warnings, options))
        finally:
            _rollback(connection)
    return reports


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
        elapsed = _run(cursor, item, stays)
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
        verb = "stays" if len(applied) == 1 else "stay"
        return f"{head} {labels}, applied in this run, {verb} applied."
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
