# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode: run the pending migrations in one transaction that is always rolled back."""

from __future__ import annotations

import re
from typing import Any

from . import catalog
from .errors import ExecutionError
from .execution import LOCK_NOT_AVAILABLE, NO_TRANSACTION_DIRECTIVE, PreparedMigration
from .steps import (
    CHECK_PLAN,
    RunContext,
    check_backend,
    migration_settings,
    report,
    rollback,
    run_migration_sql,
    with_note,
)

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

NOTHING_WRITTEN = "Check mode: nothing was written, and the database is unchanged."

# Errors that a migration can raise because an earlier, unexecuted no-transaction migration
# would have created an object or changed data it relies on: undefined objects (42P01,
# 42703, 42704, 42883, 3F000), integrity violations (class 23) and object states (class 55).
_MAY_DEPEND_ON_SKIPPED = ("42P01", "42703", "42704", "42883", "3F000", "23", "55")

# Errors a real run does not raise, because it commits each migration before the next:
# a new enum value used in the transaction that added it (55P04), and ALTER TABLE on a
# table with pending deferred trigger events (55006).
_SHARED_TRANSACTION_ONLY = ("55P04", "55006")

# The sequence name of a setval() call whose first argument is a quoted literal.
_SETVAL_NAME = re.compile(r"\bsetval\s*\(\s*'((?:[^']|'')*)'", re.IGNORECASE)


def verify_all(context: RunContext, prepared: list[PreparedMigration]) -> list[dict[str, Any]]:
    """Verify each prepared migration; return reports marked verified or not."""
    if context.options.check_strategy == CHECK_PLAN:
        return [report(p.migration, 0, verified=False) for p in prepared]
    reports: list[dict[str, Any]] = []
    skipped: list[str] = []
    with context.connection.cursor() as cursor:
        try:
            cursor.execute("BEGIN; SELECT pg_catalog.pg_backend_pid()")
            check_backend(context, cursor.fetchone()[0])
            before = _snapshot(context, cursor)
            sequences = _sequence_oids(cursor)
            for item in prepared:
                reports.append(
                    _verify_one(context, cursor, item, skipped, bool(reports), sequences)
                )
            if before is not None:
                changes = catalog.diff(before, _catalog_snapshot(context, cursor))
                context.schema_changes = catalog.render(changes)
        finally:
            rollback(context.connection)
    return reports


def _snapshot(context: RunContext, cursor: Any) -> catalog.Snapshot | None:
    """Take a catalog snapshot for the schema diff, when the run asked for one."""
    if not context.options.schema_diff:
        return None
    return _catalog_snapshot(context, cursor)


def _catalog_snapshot(context: RunContext, cursor: Any) -> catalog.Snapshot:
    """Take a catalog snapshot for the schema diff, leaving out the history table."""
    history = context.history
    return catalog.snapshot(cursor, exclude={(history.schema, history.table)})


def _verify_one(
    context: RunContext,
    cursor: Any,
    item: PreparedMigration,
    skipped: list[str],
    after_others: bool,
    existing_sequences: set[int],
) -> dict[str, Any]:
    label = item.migration.label
    if item.no_transaction:
        skipped.append(label)
        context.warnings.append(
            f"{label} ({item.migration.script}) is marked {NO_TRANSACTION_DIRECTIVE} and "
            "cannot run inside the check transaction, so check mode did not execute it."
        )
        return report(item.migration, 0, verified=False)
    if _may_move_existing_sequence(cursor, item, existing_sequences):
        skipped.append(label)
        context.warnings.append(
            f"{label} ({item.migration.script}) calls setval(), which changes a sequence "
            "outside the transaction, so a rollback would not undo it: check mode did not "
            "execute it."
        )
        return report(item.migration, 0, verified=False)
    cursor.execute(
        sql.SQL("{settings}; SAVEPOINT dbops_check").format(
            settings=migration_settings(context, local=True)
        )
    )
    context.watch.reset()
    try:
        elapsed = run_migration_sql(cursor, item, NOTHING_WRITTEN)
    except ExecutionError as error:
        if error.sqlstate == LOCK_NOT_AVAILABLE:
            raise with_note(
                error,
                f"The wait exceeded lock_timeout {context.options.lock_timeout} and was "
                f"{context.watch.describe()}. Check mode does not retry, because the pending "
                "migrations share one transaction: run it again when the lock is free.",
            ) from None
        reason = _unverifiable_reason(error, skipped, after_others)
        if reason is None:
            raise
        cursor.execute("ROLLBACK TO SAVEPOINT dbops_check")
        skipped.append(label)
        context.warnings.append(f"{label} could not be verified, {reason}: {error}")
        return report(item.migration, 0, verified=False)
    return report(item.migration, elapsed, verified=True)


def _sequence_oids(cursor: Any) -> set[int]:
    cursor.execute("SELECT oid FROM pg_catalog.pg_class WHERE relkind = 'S'")
    return {row[0] for row in cursor.fetchall()}


def _may_move_existing_sequence(cursor: Any, item: PreparedMigration, existing: set[int]) -> bool:
    """Tell whether the migration calls setval() on a sequence that existed before the check.

    setval() is not transactional, so the rollback would not undo it. A call on a sequence
    that the checked migrations create is harmless, because the rollback drops the sequence,
    as in files from pg_dump. A call whose sequence is not a quoted name counts as a risk.
    """
    for statement in item.statements:
        calls = statement.words.count("SETVAL")
        if not calls:
            continue
        names = _SETVAL_NAME.findall(statement.text)
        if len(names) < calls:
            return True
        for name in names:
            oid = _sequence_oid(cursor, name.replace("''", "'"))
            if oid is None or oid in existing:
                return True
    return False


def _sequence_oid(cursor: Any, name: str) -> int | None:
    """Return the oid that ``name`` resolves to, 0 when nothing has that name, or None when
    the name is invalid. A savepoint keeps an invalid name from aborting the check."""
    cursor.execute("SAVEPOINT dbops_sequence_name")
    try:
        cursor.execute("SELECT pg_catalog.to_regclass(%s)::oid", (name,))
        found = cursor.fetchone()[0]
    except psycopg2.Error:
        cursor.execute("ROLLBACK TO SAVEPOINT dbops_sequence_name")
        return None
    cursor.execute("RELEASE SAVEPOINT dbops_sequence_name")
    return found or 0


def _unverifiable_reason(
    error: ExecutionError, skipped: list[str], after_others: bool
) -> str | None:
    """Return why a check failure may not predict the real run, or None when it does."""
    sqlstate = error.sqlstate or ""
    if after_others and sqlstate in _SHARED_TRANSACTION_ONLY:
        return (
            "because check mode runs the pending migrations in one transaction, while a real "
            "run commits each migration before the next"
        )
    if skipped and sqlstate.startswith(_MAY_DEPEND_ON_SKIPPED):
        return (
            f"possibly because it depends on {', '.join(skipped)}, which check mode did not execute"
        )
    return None
