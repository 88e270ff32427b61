# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run migrations: lock, read the history, plan, then apply or verify the pending ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import adopt, safety
from .apply import apply_all
from .blockers import BlockerWatch
from .errors import MigrationError, PlanError
from .execution import LOCK_NOT_AVAILABLE, PreparedMigration, prepare, server_message
from .history import HistoryRow, HistoryTable
from .lock import migration_lock
from .planner import DriftPolicy, Plan, make_plan
from .sources import UNDO, VERSIONED, Migration, version_key
from .steps import (
    CHECK_EXECUTE,
    CHECK_PLAN,
    RESOLVE_MARK_APPLIED,
    RESOLVE_RETRY,
    RunContext,
    RunOptions,
    describe,
    rollback,
)
from .verify import verify_all

__all__ = [
    "CHECK_EXECUTE",
    "CHECK_PLAN",
    "RESOLVE_MARK_APPLIED",
    "RESOLVE_RETRY",
    "RunOptions",
    "RunResult",
    "run",
]


@dataclass
class RunResult:
    """Outcome of a run, or in check mode of the run it previews."""

    applied: list[dict[str, Any]]
    pending: list[dict[str, Any]]
    current_version: str | None
    versions_before: list[str]
    versions_after: list[str]
    history_table: str
    history_table_created: bool
    migrations: list[Migration] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    baselined: list[str] = field(default_factory=list)
    accepted_checksums: list[str] = field(default_factory=list)
    resolved_failed: list[str] = field(default_factory=list)
    schema_changes: str | None = None
    lint: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Tell whether the run wrote, or in check mode would write, anything."""
        return bool(
            self.applied or self.baselined or self.accepted_checksums or self.resolved_failed
        )


def run(
    connection: Any,
    sources: list[Migration],
    options: RunOptions,
    reconnect: Callable[[], Any] | None = None,
    warnings: list[str] | None = None,
) -> RunResult:
    """Apply (or in check mode verify) every pending migration under the migration lock.

    ``reconnect`` opens a second connection with the same settings; when given, it is used
    to name the sessions that hold a lock a migration waits for. Warnings are appended to
    ``warnings`` as they happen, so a caller still has them when the run raises.
    """
    history = HistoryTable(options.history_schema, options.history_table)
    key = history.lock_key()
    with migration_lock(connection, key, options.lock_wait_seconds, history.qualified_name) as pid:
        context = RunContext(connection, history, options, pid, BlockerWatch(reconnect, pid))
        if warnings is not None:
            context.warnings = warnings
        missing, rows = _read_history(connection, history, options.lock_timeout)
        resolved = (
            [_label_row(row) for row in rows if not row.success] if options.resolve_failed else []
        )
        rows = adopt.resolve_failed(context, rows, sources)
        baseline: list[Migration] = []
        if options.baseline_version:
            rows, baseline = adopt.baseline(context, rows, sources)
        plan = make_plan(sources, rows, options.target, _policy(options))
        accepted = adopt.accept_checksums(context, plan)
        scs = _standard_conforming_strings(connection)
        prepared = [prepare(m, connection.server_version, scs) for m in plan.pending]
        findings = _lint(context, prepared)
        created = missing and bool(prepared or baseline)
        if not options.check_mode:
            if created:
                _create_history(connection, history)
            adopt.record_baseline(context, baseline)
        applied = _execute(context, prepared, plan)
    baselined = [m.version for m in baseline if m.version]
    result = _result(sources, plan, applied, history, created, context.warnings)
    result.schema_changes = context.schema_changes
    result.lint = findings
    result.baselined, result.accepted_checksums, result.resolved_failed = (
        baselined,
        accepted,
        resolved,
    )
    return result


def _execute(
    context: RunContext, prepared: list[PreparedMigration], plan: Plan
) -> list[dict[str, Any]]:
    if not prepared:
        return []
    context.watch.start()
    try:
        if context.options.check_mode:
            return verify_all(context, prepared)
        return apply_all(context, prepared, plan.current_version)
    finally:
        context.watch.stop()


def _lint(context: RunContext, prepared: list[PreparedMigration]) -> list[dict[str, Any]]:
    """Check the pending migrations for statements that lock or rewrite existing tables.

    Findings become warnings, or with ``safety_lint: fail`` a PlanError before anything runs.
    """
    options = context.options
    # Undo scripts drop what their migration created; that is their purpose, not a risk.
    prepared = [item for item in prepared if item.migration.kind != UNDO]
    if options.safety_lint == "off" or not prepared:
        return []
    connection = context.connection
    with connection.cursor() as cursor:
        findings = safety.lint_migrations(
            cursor, prepared, connection.server_version, options.large_table_rows
        )
    described = [
        f"{f.script}, line {f.line}: {f.rule}: {f.why} Instead: {f.instead}" for f in findings
    ]
    if findings and options.safety_lint == "fail":
        raise PlanError(
            f"The safety lint found {len(findings)} problem(s) before anything ran: "
            + " ".join(described)
            + " Change the migrations, silence one finding with a comment line "
            "-- dbops:lint-ignore <rule> <reason> before its statement, or set safety_lint "
            "to warn."
        )
    context.warnings.extend(described)
    return [finding.as_dict() for finding in findings]


def _policy(options: RunOptions) -> DriftPolicy:
    return DriftPolicy(
        allow_out_of_order=options.allow_out_of_order,
        ignore_missing_files=options.ignore_missing_files,
        accept_checksums=list(options.accept_checksums),
    )


def _label_row(row: HistoryRow) -> str:
    return row.version if row.version is not None else row.script


def _standard_conforming_strings(connection: Any) -> bool:
    """Return the session's default, which RESET ALL restores before each migration."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.current_setting('standard_conforming_strings')")
        setting: str = cursor.fetchone()[0]
        return setting == "on"


# SQLSTATE of an invalid value for a setting, such as lock_timeout = 'abc'.
INVALID_PARAMETER_VALUE = "22023"


def _read_history(
    connection: Any, history: HistoryTable, lock_timeout: str
) -> tuple[bool, list[HistoryRow]]:
    """Return whether the history table is missing, and its rows.

    The read waits at most ``lock_timeout`` for a lock on the table, so a session that holds
    one, such as an open LOCK TABLE, fails the run instead of stalling it.
    """
    import psycopg2

    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, true)", (lock_timeout,)
            )
            missing = not history.exists(cursor)
            rows = [] if missing else history.rows(cursor)
            cursor.execute("COMMIT")
            return missing, rows
    except psycopg2.Error as error:
        rollback(connection)
        if getattr(error, "pgcode", None) == INVALID_PARAMETER_VALUE:
            raise MigrationError(
                f"Invalid lock_timeout {lock_timeout!r}: {server_message(error)} Give a "
                "duration such as 5s or 500ms."
            ) from None
        waited = ""
        if getattr(error, "pgcode", None) == LOCK_NOT_AVAILABLE:
            waited = (
                f" Another session held a lock on it for longer than lock_timeout "
                f"{lock_timeout}: find it in pg_locks, or run again when it ends."
            )
        raise MigrationError(
            f"Cannot read the history table {history.qualified_name}: "
            f"{server_message(error)}{waited}"
        ) from None


def _create_history(connection: Any, history: HistoryTable) -> None:
    """Create the history table, once planning found something to write to it.

    Creating it only now means a run that fails before writing leaves nothing behind. The
    migration lock is held, so concurrent first runs do not race on the creation.
    """
    import psycopg2

    try:
        with connection.cursor() as cursor:
            history.create(cursor)
    except psycopg2.Error as error:
        raise MigrationError(
            f"Cannot create the history table {history.qualified_name}: {server_message(error)}"
        ) from None


def _result(
    sources: list[Migration],
    plan: Plan,
    applied: list[dict[str, Any]],
    history: HistoryTable,
    created: bool,
    warnings: list[str],
) -> RunResult:
    after = {version_key(v): v for v in plan.applied_versions}
    for entry in applied:
        if entry["version"] is None:
            continue
        if entry["type"] == UNDO:
            after.pop(version_key(entry["version"]), None)
        else:
            after[version_key(entry["version"])] = entry["version"]
    planned = {m.script for m in plan.pending}
    remaining = [
        describe(m)
        for m in sources
        if m.kind == VERSIONED and m.script not in planned and m.key not in after
    ]
    versions_after = [after[key] for key in sorted(after)]
    return RunResult(
        applied=applied,
        pending=remaining,
        current_version=versions_after[-1] if versions_after else None,
        versions_before=plan.applied_versions,
        versions_after=versions_after,
        history_table=history.qualified_name,
        history_table_created=created,
        migrations=plan.pending,
        warnings=warnings,
    )
