# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare migration sources with the history table and decide what is pending."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import PlanError
from .history import TYPE_UNDO, HistoryRow
from .sources import REPEATABLE, UNDO, VERSIONED, Migration, format_version, version_key


@dataclass
class DriftPolicy:
    """Differences between files and history that a run accepts. Each is off by default."""

    allow_out_of_order: bool = False
    ignore_missing_files: bool = False
    accept_checksums: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Plan of a run: the pending migrations in the order they run."""

    pending: list[Migration]
    applied_versions: list[str]
    current_version: str | None
    notes: list[str] = field(default_factory=list)
    accepted: list[tuple[HistoryRow, Migration]] = field(default_factory=list)
    undo: bool = False


def make_plan(
    sources: list[Migration],
    history: list[HistoryRow],
    target: str | None,
    policy: DriftPolicy | None = None,
) -> Plan:
    """Return the pending migrations, or raise PlanError before anything runs.

    Raises on a failed migration left in the history, an applied migration whose file is
    gone or whose checksum changed, a pending migration older than the newest applied one,
    and a target below the current version, unless ``policy`` accepts that difference;
    each accepted difference is described in ``Plan.notes``, and so is each undo script
    whose version has neither a versioned file nor an applied migration.
    """
    policy = policy or DriftPolicy()
    _reject_failed(history)
    applied = effective_applied(history)
    notes: list[str] = []
    accepted = _check_applied_sources(sources, applied, policy, notes)
    applied_keys = {version_key(row.version) for row in applied if row.version}
    _note_unmatched_undo(sources, applied_keys, notes)
    newest = max(applied_keys, default=None)
    current_version = _version_of(applied, newest)
    versions = [row.version for row in sorted(applied, key=lambda r: version_key(r.version or "0"))]
    if target is not None and newest is not None:
        target_key = option_version_key(target, "target")
        if target_key < newest:
            undo = _undo_steps(sources, applied, target_key, format_version(target))
            return Plan(undo, [v for v in versions if v], current_version, notes, accepted, True)
    pending_versioned = [m for m in sources if m.kind == VERSIONED and m.key not in applied_keys]
    if policy.allow_out_of_order:
        _note_out_of_order(pending_versioned, newest, current_version, notes)
    else:
        _reject_out_of_order(pending_versioned, newest, current_version)
    held_back = bool(target) and len(_apply_target(pending_versioned, target)) < len(
        pending_versioned
    )
    pending_versioned = _apply_target(pending_versioned, target)
    # Repeatable migrations run after every versioned one; while a target keeps versioned
    # migrations back, the repeatable ones wait for the run that applies them.
    repeatables = [] if held_back else _pending_repeatables(sources, history)
    pending = pending_versioned + repeatables
    return Plan(
        pending=pending,
        applied_versions=[v for v in versions if v is not None],
        current_version=current_version,
        notes=notes,
        accepted=accepted,
    )


def effective_applied(history: list[HistoryRow]) -> list[HistoryRow]:
    """Return the row that applied each version still applied, replaying undo rows."""
    applied: dict[tuple[int, ...], HistoryRow] = {}
    for row in history:
        if not row.success or row.version is None:
            continue
        key = version_key(row.version)
        if row.type == TYPE_UNDO:
            applied.pop(key, None)
        else:
            applied[key] = row
    return sorted(applied.values(), key=lambda row: row.installed_rank)


def _undo_steps(
    sources: list[Migration], applied: list[HistoryRow], target_key: tuple[int, ...], target: str
) -> list[Migration]:
    """Return the undo scripts that take the database down to ``target``, newest first.

    Raises PlanError naming every version above the target that has no undo script.
    """
    undo_scripts = {m.key: m for m in sources if m.kind == UNDO}
    above = sorted(
        (row for row in applied if row.version and version_key(row.version) > target_key),
        key=lambda row: version_key(row.version or "0"),
        reverse=True,
    )
    missing = [row.version for row in above if version_key(row.version or "0") not in undo_scripts]
    if missing:
        names = ", ".join(f"V{version}" for version in missing)
        raise PlanError(
            f"Cannot undo to version {target}: no undo script for {names}. Add a "
            "U<version>__<description>.sql file for each, or choose a higher target."
        )
    return [undo_scripts[version_key(row.version or "0")] for row in above]


def _note_unmatched_undo(
    sources: list[Migration], applied_keys: set[tuple[int, ...]], notes: list[str]
) -> None:
    """Add a note for each undo script that no run can use, because neither a versioned file
    nor an applied migration has its version."""
    usable = {m.key for m in sources if m.kind == VERSIONED} | applied_keys
    for migration in sources:
        if migration.kind != UNDO or migration.key in usable:
            continue
        notes.append(
            f"Undo script U{migration.version} ({migration.script}) has no versioned migration "
            f"V{migration.version} to undo, so it is ignored. Check its version, or add the "
            f"V{migration.version} file it undoes."
        )


def _reject_failed(history: list[HistoryRow]) -> None:
    failed = [row for row in history if not row.success]
    if not failed:
        return
    row = failed[-1]
    if row.version is None:
        label = f"R__{row.description}"
    else:
        label = f"U{row.version}" if row.type == TYPE_UNDO else f"V{row.version}"
    raise PlanError(
        f"Migration {label} ({row.script}) is recorded as failed in an earlier run, so the "
        "database may hold part of it. Repair the database, then run again with "
        "resolve_failed=retry to run it again, or resolve_failed=mark_applied to record it "
        "as applied without running it."
    )


def _check_applied_sources(
    sources: list[Migration], applied: list[HistoryRow], policy: DriftPolicy, notes: list[str]
) -> list[tuple[HistoryRow, Migration]]:
    by_key = {m.key: m for m in sources if m.kind == VERSIONED}
    accept = {
        option_version_key(version, "accept_checksums") for version in policy.accept_checksums
    }
    accepted: list[tuple[HistoryRow, Migration]] = []
    problems = []
    changed: list[str] = []
    for row in applied:
        key = version_key(row.version or "0")
        source = by_key.get(key)
        if source is None and policy.ignore_missing_files:
            notes.append(
                f"Applied migration V{row.version} ({row.script}) has no file any more; "
                "ignored because ignore_missing_files is set."
            )
        elif source is None:
            problems.append(f"applied migration V{row.version} ({row.script}) has no file any more")
        elif source.checksum != row.checksum and key in accept:
            accepted.append((row, source))
        elif source.checksum != row.checksum:
            changed.append(str(source.version))
            problems.append(
                f"applied migration V{row.version} ({source.script}) was changed after it "
                f"was applied: checksum {row.checksum} in the history, {source.checksum} now"
            )
    if problems:
        raise PlanError(
            "Migration files do not match the history table: " + "; ".join(problems) + ". "
            "Restore the applied files as they were, and put changes in a new migration."
            + _accept_checksums_hint(changed)
        )
    return accepted


def _accept_checksums_hint(changed: list[str]) -> str:
    """Return the accept_checksums advice for the ``changed`` versions, or "" if none."""
    if not changed:
        return ""
    listed = ", ".join(repr(version) for version in changed)
    return (
        " If an edit changes nothing that the migration does, such as a comment, set "
        f"accept_checksums to [{listed}] to record the new checksum without running any SQL."
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


def _note_out_of_order(
    pending: list[Migration],
    newest: tuple[int, ...] | None,
    current_version: str | None,
    notes: list[str],
) -> None:
    for migration in pending:
        if newest is not None and migration.key < newest:
            notes.append(
                f"Pending migration V{migration.version} ({migration.script}) is older than "
                f"the current version {current_version}; applied anyway because "
                "allow_out_of_order is set."
            )


def _apply_target(pending: list[Migration], target: str | None) -> list[Migration]:
    if target is None:
        return pending
    target_key = option_version_key(target, "target")
    return [m for m in pending if m.key <= target_key]


def _pending_repeatables(sources: list[Migration], history: list[HistoryRow]) -> list[Migration]:
    latest = repeatable_checksums(history)
    return [m for m in sources if m.kind == REPEATABLE and latest.get(m.description) != m.checksum]


def repeatable_checksums(history: list[HistoryRow]) -> dict[str, str]:
    """Return the checksum each repeatable migration was last applied with, by description.

    A repeatable applied before the latest undo script counts as not applied, because the
    undo may have dropped its objects, as DROP ... CASCADE drops the views on a table. It
    then runs again after the next versioned migrations.
    """
    last_undo = max(
        (row.installed_rank for row in history if row.type == TYPE_UNDO and row.success),
        default=0,
    )
    latest: dict[str, str] = {}
    for row in history:
        if row.version is None and row.success and row.installed_rank > last_undo:
            latest[row.description] = row.checksum
    return latest


def option_version_key(version: str, option: str) -> tuple[int, ...]:
    """Return the sort key of a version given in an option; raise PlanError when invalid."""
    try:
        return version_key(version)
    except ValueError:
        raise PlanError(
            f"Invalid {option} {version!r}: expected a version such as 3 or 1.2."
        ) from None


def _version_of(applied: list[HistoryRow], key: tuple[int, ...] | None) -> str | None:
    if key is None:
        return None
    for row in applied:
        if row.version and version_key(row.version) == key:
            return row.version
    return None
