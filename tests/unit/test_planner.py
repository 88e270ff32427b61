"""Unit tests of make_plan: history rows built by hand against migrations from parse_source."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    PlanError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.history import (
    TYPE_REPEATABLE,
    TYPE_SQL,
    TYPE_SQL_NO_TRANSACTION,
    HistoryRow,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.planner import (
    DriftPolicy,
    make_plan,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    REPEATABLE,
    Migration,
    parse_source,
)

V1 = parse_source("schema/V1__create_customers.sql", "CREATE TABLE customers (id bigint);\n")
V2 = parse_source("schema/V2__create_invoices.sql", "CREATE TABLE invoices (id bigint);\n")
V3 = parse_source("schema/V3__add_invoice_total.sql", "ALTER TABLE invoices ADD total numeric;\n")
V4 = parse_source("schema/V4__index_invoices.sql", "CREATE INDEX ON invoices (total);\n")
R_TOTALS = parse_source(
    "views/R__invoice_totals.sql", "CREATE OR REPLACE VIEW totals AS SELECT 1;\n"
)
R_ACCOUNTS = parse_source("views/R__accounts.sql", "CREATE OR REPLACE VIEW accounts AS SELECT 1;\n")

INSTALLED_AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def history_row(
    rank: int,
    migration: Migration,
    *,
    checksum: str | None = None,
    success: bool = True,
    row_type: str | None = None,
) -> HistoryRow:
    """Build the history row that applying ``migration`` would have written."""
    if row_type is None:
        row_type = TYPE_REPEATABLE if migration.kind == REPEATABLE else TYPE_SQL
    return HistoryRow(
        installed_rank=rank,
        version=migration.version,
        description=migration.description,
        type=row_type,
        script=migration.script,
        checksum=checksum if checksum is not None else migration.checksum,
        installed_by="deploy",
        installed_at=INSTALLED_AT,
        execution_time_ms=12,
        success=success,
    )


def scripts(migrations: list[Migration]) -> list[str]:
    return [migration.script for migration in migrations]


def plan_error(sources: list[Migration], history: list[HistoryRow], target: str | None) -> str:
    with pytest.raises(PlanError) as excinfo:
        make_plan(sources, history, target)
    return str(excinfo.value)


def test_plan_empty_history_pending() -> None:
    plan = make_plan([V1, V2, V3], [], None)
    assert scripts(plan.pending) == scripts([V1, V2, V3])


def test_plan_empty_history_versions() -> None:
    plan = make_plan([V1, V2, V3], [], None)
    assert plan.applied_versions == []
    assert plan.current_version is None


def test_plan_partially_applied_pending() -> None:
    history = [history_row(1, V1), history_row(2, V2)]
    plan = make_plan([V1, V2, V3, V4], history, None)
    assert scripts(plan.pending) == scripts([V3, V4])


def test_plan_partially_applied_versions() -> None:
    history = [history_row(1, V1), history_row(2, V2)]
    plan = make_plan([V1, V2, V3, V4], history, None)
    assert plan.applied_versions == ["1", "2"]
    assert plan.current_version == "2"


def test_plan_fully_applied() -> None:
    history = [history_row(1, V1), history_row(2, V2)]
    assert make_plan([V1, V2], history, None).pending == []


def test_plan_history_version_with_trailing_zero() -> None:
    applied = parse_source("schema/V1.0__create_customers.sql", V1.text)
    plan = make_plan([V1, V2], [history_row(1, applied)], None)
    assert scripts(plan.pending) == scripts([V2])


def test_plan_no_transaction_row_applied() -> None:
    history = [history_row(1, V1, row_type=TYPE_SQL_NO_TRANSACTION)]
    assert scripts(make_plan([V1, V2], history, None).pending) == scripts([V2])


@pytest.mark.parametrize(
    ("history", "target", "expected"),
    [
        pytest.param([], "2", [V1, V2], id="empty-history"),
        pytest.param([], "2.5", [V1, V2], id="between-versions"),
        pytest.param([], "9", [V1, V2, V3, V4], id="above-all"),
        pytest.param([history_row(1, V1)], "3", [V2, V3], id="partly-applied"),
        pytest.param([history_row(1, V1), history_row(2, V2)], "2", [], id="at-current"),
    ],
)
def test_plan_target(history: list[HistoryRow], target: str, expected: list[Migration]) -> None:
    plan = make_plan([V1, V2, V3, V4], history, target)
    assert scripts(plan.pending) == scripts(expected)


def test_plan_target_below_current_without_undo() -> None:
    history = [history_row(1, V1), history_row(2, V2), history_row(3, V3)]
    assert plan_error([V1, V2, V3, V4], history, "1.0") == (
        "Cannot undo to version 1.0: no undo script for V3, V2. Add a "
        "U<version>__<description>.sql file for each, or choose a higher target."
    )


@pytest.mark.parametrize("target", ["V3", "", "three", "1..2"])
def test_plan_target_invalid(target: str) -> None:
    message = f"Invalid target {target!r}: expected a version such as 3 or 1.2."
    with pytest.raises(PlanError, match=re.escape(message)):
        make_plan([V1, V2], [], target)


def test_plan_checksum_changed() -> None:
    old_checksum = "0" * 64
    history = [history_row(1, V1), history_row(2, V2, checksum=old_checksum)]
    assert plan_error([V1, V2, V3], history, None) == (
        "Migration files do not match the history table: applied migration V2 "
        "(schema/V2__create_invoices.sql) was changed after it was applied: checksum "
        f"{old_checksum} in the history, {V2.checksum} now. Restore the applied files as "
        "they were, and put changes in a new migration. If an edit changes nothing that the "
        "migration does, such as a comment, set accept_checksums to ['2'] to record the new "
        "checksum without running any SQL."
    )


def test_plan_applied_file_missing() -> None:
    history = [history_row(1, V1), history_row(2, V2)]
    assert plan_error([V1, V3], history, None) == (
        "Migration files do not match the history table: applied migration V2 "
        "(schema/V2__create_invoices.sql) has no file any more. Restore the applied files as "
        "they were, and put changes in a new migration."
    )


def test_plan_missing_and_changed_together() -> None:
    old_checksum = "f" * 64
    history = [history_row(1, V1, checksum=old_checksum), history_row(2, V2)]
    assert plan_error([V1], history, None) == (
        "Migration files do not match the history table: applied migration V1 "
        "(schema/V1__create_customers.sql) was changed after it was applied: checksum "
        f"{old_checksum} in the history, {V1.checksum} now; applied migration V2 "
        "(schema/V2__create_invoices.sql) has no file any more. Restore the applied files as "
        "they were, and put changes in a new migration. If an edit changes nothing that the "
        "migration does, such as a comment, set accept_checksums to ['1'] to record the new "
        "checksum without running any SQL."
    )


def test_plan_checksums_changed_lists_versions() -> None:
    history = [history_row(1, V1, checksum="1" * 64), history_row(2, V2, checksum="2" * 64)]
    message = plan_error([V1, V2], history, None)
    assert message.endswith(
        "set accept_checksums to ['1', '2'] to record the new checksum without running any SQL."
    )


def test_plan_checksum_mismatch_accepted() -> None:
    history = [history_row(1, V1), history_row(2, V2, checksum="0" * 64)]
    plan = make_plan([V1, V2, V3], history, None, DriftPolicy(accept_checksums=["2"]))
    assert scripts(plan.pending) == [V3.script]
    assert [source.script for _row, source in plan.accepted] == [V2.script]


U2 = parse_source("schema/U2__drop_invoices.sql", "DROP TABLE invoices;\n")
U5 = parse_source("schema/U5__drop_archive.sql", "DROP TABLE archive;\n")

UNMATCHED_U5 = (
    "Undo script U5 (schema/U5__drop_archive.sql) has no versioned migration V5 to undo, so "
    "it is ignored. Check its version, or add the V5 file it undoes."
)


def test_plan_undo_without_versioned_noted() -> None:
    plan = make_plan([V1, V2, U5, U2], [history_row(1, V1)], None)
    assert scripts(plan.pending) == [V2.script]
    assert plan.notes == [UNMATCHED_U5]


def test_plan_undo_with_versioned_silent() -> None:
    plan = make_plan([V1, V2, U2], [history_row(1, V1), history_row(2, V2)], None)
    assert plan.notes == []


def test_plan_undo_of_fileless_applied_silent() -> None:
    policy = DriftPolicy(ignore_missing_files=True)
    history = [history_row(1, V1), history_row(2, V2)]
    plan = make_plan([V1, U2], history, "1", policy)
    assert scripts(plan.pending) == [U2.script]
    assert plan.notes == [
        "Applied migration V2 (schema/V2__create_invoices.sql) has no file any more; ignored "
        "because ignore_missing_files is set."
    ]


def test_plan_undo_target_notes_unmatched() -> None:
    history = [history_row(1, V1), history_row(2, V2)]
    plan = make_plan([V1, V2, U5, U2], history, "1")
    assert plan.undo is True
    assert plan.notes == [UNMATCHED_U5]


def test_plan_pending_older_than_applied() -> None:
    backfill = parse_source(
        "schema/V1.5__backfill_customers.sql", "UPDATE customers SET id = id;\n"
    )
    history = [history_row(1, V1), history_row(2, V2)]
    assert plan_error([V1, backfill, V2, V3], history, None) == (
        "Pending migration V1.5 (schema/V1.5__backfill_customers.sql) is older than the "
        "current version 2. Give it a version above the current one."
    )


@pytest.mark.parametrize(
    ("failed", "label"),
    [
        pytest.param(V2, "V2 (schema/V2__create_invoices.sql)", id="versioned"),
        pytest.param(R_TOTALS, "R__invoice totals (views/R__invoice_totals.sql)", id="repeatable"),
    ],
)
def test_plan_failed_row(failed: Migration, label: str) -> None:
    history = [history_row(1, V1), history_row(2, failed, success=False)]
    assert plan_error([V1, V2, R_TOTALS], history, None) == (
        f"Migration {label} is recorded as failed in an earlier run, so the database may hold "
        "part of it. Repair the database, then run again with resolve_failed=retry to run it "
        "again, or resolve_failed=mark_applied to record it as applied without running it."
    )


def test_plan_repeatable_new() -> None:
    plan = make_plan([V1, R_TOTALS], [history_row(1, V1)], None)
    assert scripts(plan.pending) == scripts([R_TOTALS])


def test_plan_repeatable_changed() -> None:
    history = [history_row(1, V1), history_row(2, R_TOTALS, checksum="1" * 64)]
    plan = make_plan([V1, R_TOTALS], history, None)
    assert scripts(plan.pending) == scripts([R_TOTALS])


def test_plan_repeatable_unchanged() -> None:
    history = [history_row(1, V1), history_row(2, R_TOTALS)]
    assert make_plan([V1, R_TOTALS], history, None).pending == []


def test_plan_repeatable_latest_row_counts() -> None:
    history = [
        history_row(1, R_TOTALS, checksum="1" * 64),
        history_row(2, R_TOTALS),
    ]
    assert make_plan([R_TOTALS], history, None).pending == []


def test_plan_repeatables_after_versioned() -> None:
    history = [history_row(1, V1)]
    plan = make_plan([V1, V2, V3, R_ACCOUNTS, R_TOTALS], history, None)
    assert scripts(plan.pending) == scripts([V2, V3, R_ACCOUNTS, R_TOTALS])


def test_plan_repeatables_wait_for_target() -> None:
    plan = make_plan([V1, V2, V3, R_TOTALS], [history_row(1, V1)], "2")
    assert scripts(plan.pending) == scripts([V2])


def test_plan_repeatables_run_when_target_reached() -> None:
    plan = make_plan([V1, V2, V3, R_TOTALS], [history_row(1, V1)], "3")
    assert scripts(plan.pending) == scripts([V2, V3, R_TOTALS])
