# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply pending migrations: one transaction each, or statement by statement when marked."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

from .errors import ExecutionError, MigrationError
from .execution import (
    LOCK_NOT_AVAILABLE,
    LazyText,
    PreparedMigration,
    run_statements,
    server_message,
)
from .sources import UNDO, Migration
from .steps import (
    RunContext,
    check_backend,
    label,
    migration_settings,
    record_statement,
    report,
    rollback,
    run_migration_sql,
    with_note,
)

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

QUERY_CANCELED = "57014"


def apply_all(
    context: RunContext, prepared: list[PreparedMigration], current_version: str | None
) -> list[dict[str, Any]]:
    """Apply each prepared migration in order; return the reports of those applied."""
    applied: list[dict[str, Any]] = []
    try:
        for item in prepared:
            # Built only on failure: a message for each migration would cost quadratic time.
            stays = LazyText(
                functools.partial(
                    stays_message, item.migration, applied, current_version, len(applied)
                )
            )
            if item.no_transaction:
                elapsed = _apply_without_transaction(context, item)
            else:
                elapsed = with_lock_retries(
                    context,
                    item,
                    functools.partial(_apply_in_transaction, context, item, stays),
                )
            applied.append(report(item.migration, elapsed, verified=True))
    except MigrationError as error:
        # The migrations before the failing one are committed: the task changed the database.
        error.result = {"changed": bool(applied), "applied": applied}
        raise
    return applied


def with_lock_retries(
    context: RunContext, item: PreparedMigration, attempt: Callable[[], int]
) -> int:
    """Call ``attempt``, retrying with backoff while it fails on lock_timeout (55P03).

    Each retry is a warning, and the final failure names the sessions that held the lock.
    """
    options = context.options
    delay = options.lock_retry_delay_seconds
    retries = max(0, options.lock_retries)
    for number in range(1, retries + 2):
        context.watch.reset()
        try:
            return attempt()
        except ExecutionError as error:
            if error.sqlstate == QUERY_CANCELED:
                raise _explain_cancel(error, context) from None
            if error.sqlstate != LOCK_NOT_AVAILABLE:
                raise
            blockers = context.watch.describe()
            if number > retries:
                raise with_note(
                    error,
                    f"The wait exceeded lock_timeout {options.lock_timeout} (the lock_timeout "
                    f"option) and was {blockers}; gave up after {retries} retries.",
                ) from None
            context.warnings.append(
                f"{item.migration.label} ({item.migration.script}) waited longer than "
                f"lock_timeout {options.lock_timeout} for a lock, {blockers}; retry {number} "
                f"of {retries} in {delay:g} s."
            )
            (context.sleep or time.sleep)(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _explain_cancel(error: ExecutionError, context: RunContext) -> ExecutionError:
    if "statement timeout" not in str(error):
        return error
    value = str(context.options.statement_timeout).strip()
    # PostgreSQL reads a number without a unit as milliseconds.
    with_unit = f"{value} ms" if value.isdigit() else value
    return with_note(
        error,
        f"statement_timeout was {with_unit}, set for each migration by the module's "
        "statement_timeout option, which overrides the role's and the database's setting. "
        "A number without a unit counts as milliseconds: write 30s or 5min for longer.",
    )


def _apply_in_transaction(context: RunContext, item: PreparedMigration, stays: LazyText) -> int:
    """Run one migration and its history row in one transaction; commit or roll back both."""
    begin = sql.SQL("BEGIN; {settings}; SELECT pg_catalog.pg_backend_pid()").format(
        settings=migration_settings(context, local=True)
    )
    with context.connection.cursor() as cursor:
        try:
            cursor.execute(begin)
            check_backend(context, cursor.fetchone()[0])
            elapsed = run_migration_sql(cursor, item, stays)
        except BaseException:
            rollback(context.connection)
            raise
        _commit_with_record(context, cursor, item, elapsed)
    return elapsed


def _commit_with_record(
    context: RunContext, cursor: Any, item: PreparedMigration, elapsed: int
) -> None:
    """Write the history row and commit, in one round trip."""
    import psycopg2

    migration = item.migration
    try:
        cursor.execute(
            *record_statement(context.history, item, elapsed, context.options, commit=True)
        )
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
        raise ExecutionError(
            f"The connection failed while committing migration {migration.label} "
            f"({migration.script}): {server_message(error)} Whether {migration.label} was "
            f"committed is unknown: look for it in {context.history.qualified_name} before "
            "running again.",
            version=migration.version,
            script=migration.script,
            line=None,
            sqlstate=None,
        ) from None
    except BaseException:
        rollback(context.connection)
        raise


def _apply_without_transaction(context: RunContext, item: PreparedMigration) -> int:
    """Run each statement in autocommit, then write the history row.

    A failure part-way leaves the statements before it committed, so the migration is
    recorded as failed and later runs stop until ``resolve_failed`` settles it. A statement
    that times out waiting for a lock is retried on its own.
    """
    options = context.options
    migration = item.migration
    setup = sql.SQL("{settings}; SELECT pg_catalog.pg_backend_pid()").format(
        settings=migration_settings(context, local=False)
    )
    stays = (
        f"Statements of {migration.label} before that line stay committed, and "
        f"{migration.label} is recorded as failed: repair the database, then run again with "
        "resolve_failed set to retry or mark_applied."
    )
    with context.connection.cursor() as cursor:
        cursor.execute(setup)
        check_backend(context, cursor.fetchone()[0])
        invalid_before = _invalid_indexes(cursor)
        elapsed = 0
        try:
            for statement in item.statements:
                single = PreparedMigration(migration, [statement], no_transaction=True)
                elapsed += with_lock_retries(
                    context, item, functools.partial(run_statements, cursor, single, stays)
                )
        except ExecutionError as error:
            cursor.execute(
                *record_statement(context.history, item, 0, options, commit=False, success=False)
            )
            left = _invalid_after(cursor, invalid_before, set())
            raise with_note(error, _invalid_index_note(left)) if left else error from None
        left = _invalid_after(cursor, invalid_before, _created_index_names(item))
        success = not left
        cursor.execute(
            *record_statement(
                context.history, item, elapsed, options, commit=False, success=success
            )
        )
    if left:
        raise ExecutionError(
            f"Migration {migration.label} ({migration.script}) finished, but "
            f"{_invalid_index_note(left)} {migration.label} is recorded as failed.",
            version=migration.version,
            script=migration.script,
            line=None,
            sqlstate=None,
        )
    return elapsed


def _invalid_indexes(cursor: Any) -> dict[str, str]:
    """Return the invalid indexes of the database, as left by a failed concurrent build: the
    name as regclass prints it, mapped to the bare name."""
    cursor.execute(
        "SELECT i.indexrelid::pg_catalog.regclass::text, c.relname::text"
        " FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
        " WHERE NOT i.indisvalid"
    )
    return {row[0]: row[1] for row in cursor.fetchall()}


def _invalid_after(cursor: Any, before: dict[str, str], named: set[str]) -> set[str]:
    """Return the invalid indexes that are new since ``before``, or that the migration names.

    A rerun of CREATE INDEX CONCURRENTLY IF NOT EXISTS skips an index that a failed build
    left invalid, so an invalid index the migration names counts even when it is not new.
    """
    return {
        printed
        for printed, bare in _invalid_indexes(cursor).items()
        if printed not in before or bare in named
    }


# The name in CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name, quoted or not.
_CREATED_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    r'(?!ON\b)("(?:[^"]|"")+"|[A-Za-z_][A-Za-z_0-9$]*)',
    re.IGNORECASE,
)


def _created_index_names(item: PreparedMigration) -> set[str]:
    """Return the names of the indexes that the migration's CREATE INDEX statements name."""
    names = set()
    for statement in item.statements:
        found = _CREATED_INDEX.match(statement.text)
        if found is None:
            continue
        name = found.group(1)
        names.add(name[1:-1].replace('""', '"') if name.startswith('"') else name.lower())
    return names


def _invalid_index_note(names: set[str]) -> str:
    listed = ", ".join(sorted(names))
    return (
        f"The concurrent index build left invalid index {listed} (pg_index.indisvalid is "
        "false): drop it with DROP INDEX CONCURRENTLY before running again."
    )


def stays_message(
    migration: Migration,
    applied: list[dict[str, Any]],
    current: str | None,
    count: int | None = None,
) -> str:
    """Say what stays applied when ``migration`` fails and rolls back: the first ``count``
    entries of ``applied``, or all of them."""
    applied = applied[:count]
    head = f"Nothing from {migration.label} was committed;"
    done = [entry for entry in applied if entry["type"] != UNDO]
    undone = [entry for entry in applied if entry["type"] == UNDO]
    parts = []
    if done:
        verb = "stays" if len(done) == 1 else "stay"
        parts.append(f"{_labels(done)}, applied in this run, {verb} applied")
    if undone:
        versions = ", ".join(f"V{entry['version']}" for entry in undone)
        verb = "stays" if len(undone) == 1 else "stay"
        parts.append(f"{versions}, undone in this run by {_labels(undone)}, {verb} undone")
    if parts:
        return f"{head} {'; '.join(parts)}."
    if current is not None:
        return f"{head} the database stays at version {current}."
    return f"{head} no migration has been applied to this database."


def _labels(entries: list[dict[str, Any]]) -> str:
    return ", ".join(label(entry) for entry in entries)
