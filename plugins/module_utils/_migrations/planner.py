# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare migration sources with the history table and decide what is pending."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PlanError
from .history import HistoryRow
from .sources import REPEATABLE, VERSIONED, Migration, format_version, version_key


@dataclass
class Plan:
    """What a run would do: the pending migrations in the order they run."""

    pending: list[Migration]
    applied_versions: list[str]
    current_version: str | None


def make_plan(sources: list[Migration], history: list[HistoryRow], target: str | None) -> Plan:
    """Return the pending migrations, or raise PlanError before anything runs.

    Raises on a failed migration left in the history, an applied migration whose file is
    gone or whose checksum changed, a pending migration older than the newest applied one,
    and a target below the current version.
    """
    _reject_failed(history)
    applied = [row for row in history if row.success and row.version is not None]
    _check_applied_sources(sources, applied)
    applied_keys = {version_key(row.version) for row in applied if row.version}
    newest = max(applied_keys, default=None)
    current_version = _version_of(applied, newest)
    pending_versioned = [m for m in sources if m.kind == VERSIONED and m.key not in applied_keys]
    _reject_out_of_order(pending_versioned, newest, current_version)
    pending_versioned = _apply_target(pending_versioned, target, newest, current_version)
    pending = pending_versioned + _pending_repeatables(sources, history)
    versions = [row.version for row in sorted(applied, key=lambda r: version_key(r.version or "0"))]
    return Plan(
        pending=pending,
        applied_versions=[v for v in versions if v is not None],
        current_version=current_version,
    )


def _reject_failed(history: list[HistoryRow]) -> None:
    failed = [row for row in history if not row.success]
    if not failed:
        return
    row = failed[-1]
    label = f"V{row.version}" if row.version else f"R__{row.description}"
    raise PlanError(
        f"Migration {label} ({row.script}) is recorded as failed in an earlier run, so the "
        "database may hold part of it. Repair the database, then run again with "
        "resolve_failed=retry to run it again, or resolve_failed=mark_applied to record it "
        "as applied without running it."
    )


def _check_applied_sources(sources: list[Migration], applied: list[HistoryRow]) -> None:
    by_key = {m.key: m for m in sources if m.kind == VERSIONED}
    problems = []
    for row in applied:
        source = by_key.get(version_key(row.version or "0"))
        if source is None:
            problems.append(f"applied migration V{row.version} ({row.script}) has no file any more")
        elif source.checksum != row.checksum:
            problems.append(
                f"applied migration V{row.version} ({source.script}) was changed after it "
                f"was applied: checksum {row.checksum} in the history, {source.checksum} now"
            )
    if problems:
        raise PlanError(
            "Migration files do not match the history table: " + "; ".join(problems) + ". "
            "Restore the applied files as they were, and put changes in a new migration."
        )


def _reject_out_of_order(
    pending: list[Migration], newest: tuple[int, ...] | None, current_version: str | None
) -> None:
    if newest is None:
        return
    older = [m for m in pending if m.key < newest]
    if older:
        names = ", ".join(f"V{m.version} ({m.script})" for m in older)
        raise PlanError(
            f"Pending migration {names} is older than the current version {current_version}. "
            "Give it a version above the current one."
        )


def _apply_target(
    pending: list[Migration],
    target: str | None,
    newest: tuple[int, ...] | None,
    current_version: str | None,
) -> list[Migration]:
    if target is None:
        return pending
    try:
        target_key = version_key(target)
    except ValueError:
        raise PlanError(
            f"Invalid target {target!r}: expected a version such as 3 or 1.2."
        ) from None
    if newest is not None and target_key < newest:
        raise PlanError(
            f"Target {format_version(target)} is below the current version {current_version}; "
            "this run only applies migrations forward."
        )
    return [m for m in pending if m.key <= target_key]


def _pending_repeatables(sources: list[Migration], history: list[HistoryRow]) -> list[Migration]:
    latest: dict[str, str] = {}
    for row in history:
        if row.version is None and row.success:
            latest[row.description] = row.checksum
    return [m for m in sources if m.kind == REPEATABLE and latest.get(m.description) != m.checksum]


def _version_of(applied: list[HistoryRow], key: tuple[int, ...] | None) -> str | None:
    if key is None:
        return None
    for row in applied:
        if row.version and version_key(row.version) == key:
            return row.version
    return None
