# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""History changes a user asks for: baselines, failed migrations resolved, checksums accepted.

Each one rewrites history rows without running migration SQL, is reported as a warning,
and in check mode changes only the rows the run plans on.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from .errors import PlanError
from .history import TYPE_BASELINE, TYPE_UNDO, HistoryRow, insert_parameters
from .planner import Plan, option_version_key
from .scanner import scan
from .sources import VERSIONED, Migration, format_version, version_key
from .steps import RESOLVE_RETRY, RunContext

_CREATED_OBJECT = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNLOGGED\s+)?(?:UNIQUE\s+)?"
    r"(?P<kind>TABLE|MATERIALIZED\s+VIEW|VIEW|INDEX|TYPE|SEQUENCE|SCHEMA)\s+"
    r"(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    r'(?P<name>(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?)',
    re.IGNORECASE,
)


def resolve_failed(
    context: RunContext, rows: list[HistoryRow], sources: list[Migration]
) -> list[HistoryRow]:
    """Settle migrations recorded as failed as ``resolve_failed`` says; return rows to plan on.

    ``retry`` deletes the failed rows so the migrations run again; ``mark_applied`` records
    them as applied with the current file's checksum, running no SQL.
    """
    failed = [row for row in rows if not row.success]
    decision = context.options.resolve_failed
    if not failed or not decision:
        return rows
    checksums = {m.script: m.checksum for m in sources}
    labels = ", ".join(_failed_label(row) for row in failed)
    if decision == RESOLVE_RETRY:
        _check_undo_retry_target(failed, context.options.target)
    check = context.options.check_mode
    if not check:
        with context.connection.cursor() as cursor:
            context.history.resolve_failed(
                cursor, [r.installed_rank for r in failed], decision, checksums
            )
    if decision == RESOLVE_RETRY:
        done = "would remove" if check else "removed"
        context.warnings.append(
            f"{labels} was recorded as failed; resolve_failed=retry {done} that record, so it "
            "runs again from its first statement."
        )
        return [row for row in rows if row.success]
    done = "would record" if check else "recorded"
    context.warnings.append(
        f"{labels} was recorded as failed; resolve_failed=mark_applied {done} it as applied. "
        "No SQL of it ran."
    )
    return [
        row
        if row.success
        else replace(row, success=True, checksum=checksums.get(row.script, row.checksum))
        for row in rows
    ]


def _failed_label(row: HistoryRow) -> str:
    if row.version is None:
        return row.script
    return f"U{row.version}" if row.type == TYPE_UNDO else f"V{row.version}"


def _check_undo_retry_target(failed: list[HistoryRow], target: str | None) -> None:
    """Raise PlanError when a failed undo would be retried without a target below it.

    Removing the failed record leaves the version applied. Only a target below the version
    runs the undo script again. Without one, the retry would run nothing, and the history
    would say the version is applied although the undo may have dropped part of it.
    """
    undos = [row for row in failed if row.type == TYPE_UNDO and row.version is not None]
    if not undos:
        return
    lowest = min(undos, key=lambda row: version_key(row.version or "0"))
    if target is not None and option_version_key(target, "target") < version_key(
        lowest.version or "0"
    ):
        return
    raise PlanError(
        f"U{lowest.version} ({lowest.script}) was recorded as failed. To run it again, set "
        f"resolve_failed to retry together with a target below {lowest.version}, the target "
        "of the undo run; or repair the database and set resolve_failed to mark_applied to "
        "record the undo as done."
    )


def accept_checksums(context: RunContext, plan: Plan) -> list[str]:
    """Record the current checksum of each applied migration the plan accepted; return versions."""
    if plan.accepted and not context.options.check_mode:
        with context.connection.cursor() as cursor:
            for row, source in plan.accepted:
                context.history.update_checksum(cursor, row.installed_rank, source.checksum)
    context.warnings.extend(plan.notes)
    done = "would record" if context.options.check_mode else "records"
    for row, source in plan.accepted:
        context.warnings.append(
            f"Applied migration V{row.version} ({source.script}) changed after it was applied; "
            f"accept_checksums {done} checksum {source.checksum} in place of {row.checksum}. "
            f"No SQL of V{row.version} ran."
        )
    return [source.version for _row, source in plan.accepted if source.version]


def baseline(
    context: RunContext, rows: list[HistoryRow], sources: list[Migration]
) -> tuple[list[HistoryRow], list[Migration]]:
    """Mark every migration up to ``baseline_version`` as applied without running it.

    Applies only to a history with no versioned migration yet. With ``baseline_verify``,
    every table, view, index, type, sequence and schema that the baselined files create must
    exist first, so a half-migrated database is refused. Returns the rows to plan on and the
    migrations to record with ``record_baseline``.
    """
    options = context.options
    target = option_version_key(options.baseline_version or "0", "baseline_version")
    versioned = [row for row in rows if row.version is not None and row.success]
    covered = [m for m in sources if m.kind == VERSIONED and m.key <= target]
    if versioned:
        recorded = {version_key(row.version or "0") for row in versioned}
        if all(m.key in recorded for m in covered):
            return rows, []
        raise PlanError(
            f"baseline_version {format_version(options.baseline_version or '0')} applies only to "
            "a database whose history has no versioned migration, and "
            f"{context.history.qualified_name} already records some. Remove baseline_version."
        )
    if not covered:
        raise PlanError(
            f"baseline_version {format_version(options.baseline_version or '0')} matches no "
            "migration file: no versioned file has that version or a lower one."
        )
    _reject_above_newest(options.baseline_version or "0", target, sources)
    if options.baseline_verify:
        _verify_objects(context, covered)
    versions = [m.version for m in covered if m.version]
    listed = ", ".join("V" + v for v in versions)
    if options.check_mode:
        context.warnings.append(
            f"Would baseline {listed}: a real run would record them as applied without running "
            "their SQL, as baseline_version asks."
        )
    else:
        context.warnings.append(
            f"Baselined {listed}: recorded as applied without running their SQL, as "
            "baseline_version asks."
        )
    now = datetime.now(UTC)
    baselined = [
        HistoryRow(
            0, m.version, m.description, TYPE_BASELINE, m.script, m.checksum, "", now, 0, True
        )
        for m in covered
    ]
    return rows + baselined, covered


def _reject_above_newest(
    baseline_version: str, target: tuple[int, ...], sources: list[Migration]
) -> None:
    """Raise PlanError when ``baseline_version`` is above the newest versioned file.

    A file added later with a version up to ``baseline_version`` would be neither baselined
    nor allowed to run, so every run that keeps the option would fail.
    """
    newest = max((m for m in sources if m.kind == VERSIONED), key=lambda m: m.key)
    if target <= newest.key:
        return
    version = format_version(baseline_version)
    raise PlanError(
        f"Invalid baseline_version {version}: it is above V{newest.version} ({newest.script}), "
        f"the newest versioned migration file, so every run would fail once a migration up to "
        f"version {version} is added. Set baseline_version to the version the database is at, "
        "which must have a migration file, and add any missing files first. Nothing was "
        "recorded."
    )


def _verify_objects(context: RunContext, covered: list[Migration]) -> None:
    missing: list[str] = []
    with context.connection.cursor() as cursor:
        for migration in covered:
            for kind, name in _created_objects(migration):
                if not _exists(cursor, kind, name):
                    missing.append(f"V{migration.version} {kind.lower()} {name}")
    if missing:
        raise PlanError(
            "baseline_verify found objects missing that the baselined migrations create: "
            + ", ".join(missing)
            + ". The database looks partly migrated; finish or repair it before baselining."
        )


def _created_objects(migration: Migration) -> list[tuple[str, str]]:
    objects = []
    for statement in scan(migration.text).statements:
        match = _CREATED_OBJECT.match(statement.text)
        if match:
            kind = " ".join(match.group("kind").upper().split())
            objects.append((kind, match.group("name")))
    return objects


def _exists(cursor: Any, kind: str, name: str) -> bool:
    if kind == "SCHEMA":
        cursor.execute(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s",
            (name.strip('"').replace('""', '"'),),
        )
        return cursor.fetchone() is not None
    if kind == "TYPE":
        cursor.execute("SELECT pg_catalog.to_regtype(%s) IS NOT NULL", (name,))
    else:
        cursor.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (name,))
    return bool(cursor.fetchone()[0])


def record_baseline(context: RunContext, covered: list[Migration]) -> None:
    """Write a BASELINE history row for each migration, in one transaction."""
    if not covered:
        return
    statement = context.history.insert_statement()
    with context.connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            for m in covered:
                cursor.execute(
                    statement,
                    insert_parameters(
                        m.version, m.description, TYPE_BASELINE, m.script, m.checksum, 0, True
                    ),
                )
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
