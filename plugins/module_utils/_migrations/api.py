# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry point for the postgresql_migrate module: module parameters in, task result out.

Plain dictionaries only, so the module file stays a thin wrapper and this code can be
tested without Ansible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .application_name import application_name as run_application_name
from .connection import ConnectionSettings, connect
from .engine import RunOptions, RunResult, run
from .errors import MigrationError, SourceError
from .execution import server_message
from .sources import TEMPLATE_SUFFIX, Migration, load_sources, read_directories
from .steps import label

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

CONNECTION_OPTIONS = (
    "login_host",
    "login_port",
    "login_user",
    "login_password",
    "login_db",
    "login_unix_socket",
    "ssl_mode",
    "ca_cert",
    "ssl_cert",
    "ssl_key",
    "session_role",
)


def application_name(params: dict[str, Any], module: str) -> str:
    """Return the application_name that identifies this run in pg_stat_activity."""
    return run_application_name(params.get("application_name"), module)


def connection_settings(params: dict[str, Any], application: str) -> ConnectionSettings:
    """Build ConnectionSettings from module parameters."""
    options: dict[str, Any] = {name: params.get(name) for name in CONNECTION_OPTIONS}
    settings = ConnectionSettings(**options)
    settings.connect_params = dict(params.get("connect_params") or {})
    settings.application_name = application
    return settings


def collect_sources(
    params: dict[str, Any], warn: Callable[[str], None] | None = None
) -> list[Migration]:
    """Return the migrations given in ``sources``, or read them from ``path``.

    A directory of ``path`` that contains no migration file is reported to ``warn``.
    """
    passed = params.get("sources")
    if passed is not None:
        files = [(item["script"], item["content"]) for item in passed]
    else:
        files = read_directories(list(params["path"]), warn)
        templates = [script for script, _text in files if script.endswith(TEMPLATE_SUFFIX)]
        if templates:
            raise SourceError(
                f"Template migrations {', '.join(templates)} must be rendered by the "
                "postgresql_migrate action plugin; run the module as a task of a play."
            )
    return load_sources(files)


def migrate(
    params: dict[str, Any], check_mode: bool, diff: bool, warn: Callable[[str], None]
) -> dict[str, Any]:
    """Run the migrations that the parameters describe and return the task result.

    Warnings go to ``warn``. Raises MigrationError subclasses for every expected failure.
    """
    sources = collect_sources(params, warn)
    for name in ("history_schema", "history_table"):
        if not params[name]:
            raise MigrationError(f"{name} must not be empty.")
    options = RunOptions(
        history_schema=params["history_schema"],
        history_table=params["history_table"],
        target=params.get("target"),
        lock_timeout=params["lock_timeout"],
        statement_timeout=params["statement_timeout"],
        lock_wait_seconds=float(params["lock_wait_timeout"]),
        check_mode=check_mode,
        check_strategy=params.get("check_strategy") or "execute",
        session_role=params.get("session_role"),
        resolve_failed=params.get("resolve_failed"),
        lock_retries=int(params.get("lock_retries", 3)),
        lock_retry_delay_seconds=float(params.get("lock_retry_delay", 2)),
        baseline_version=params.get("baseline_version"),
        baseline_verify=bool(params.get("baseline_verify")),
        allow_out_of_order=bool(params.get("allow_out_of_order")),
        ignore_missing_files=bool(params.get("ignore_missing_files")),
        accept_checksums=list(params.get("accept_checksums") or []),
        schema_diff=check_mode and diff,
        safety_lint=params.get("safety_lint") or "warn",
        large_table_rows=int(params.get("lint_large_table_rows") or 100_000),
    )
    settings = connection_settings(params, application_name(params, "postgresql_migrate"))
    connection = connect(settings)
    warnings: list[str] = []
    try:
        outcome = run(connection, sources, options, lambda: connect(settings), warnings)
    except psycopg2.Error as error:
        raise MigrationError(f"PostgreSQL error: {server_message(error)}") from None
    finally:
        connection.close()
        for warning in warnings:
            warn(warning)
    result = task_result(outcome, check_mode, params.get("check_strategy") or "execute")
    if diff:
        result["diff"] = make_diff(outcome, hide_sql=bool(params.get("hide_sql_in_diff")))
    return result


def task_result(outcome: RunResult, check_mode: bool, strategy: str) -> dict[str, Any]:
    """Return the result keys, identical in check mode and in a real run."""
    return {
        "changed": outcome.changed,
        "msg": summary(outcome, check_mode, strategy),
        "applied": outcome.applied,
        "pending": outcome.pending,
        "current_version": outcome.current_version,
        "history_table": outcome.history_table,
        "history_table_created": outcome.history_table_created,
        "baselined": outcome.baselined,
        "accepted_checksums": outcome.accepted_checksums,
        "resolved_failed": outcome.resolved_failed,
        "lint": outcome.lint,
    }


def summary(outcome: RunResult, check_mode: bool, strategy: str) -> str:
    """Return the one-line message of a run, followed by what it recorded in the history
    without running SQL."""
    records = _records_phrase(outcome, check_mode)
    return migrations_summary(outcome, check_mode, strategy) + (f" {records}" if records else "")


def _records_phrase(outcome: RunResult, check_mode: bool) -> str:
    """Name the history rows recorded without running SQL: baselines and accepted checksums.
    Resolved failures have a warning of their own."""
    recorded = [
        (outcome.baselined, "as baseline"),
        (outcome.accepted_checksums, "with the new checksum"),
    ]
    parts = [
        f"{', '.join(f'V{version}' for version in versions)} {how}"
        for versions, how in recorded
        if versions
    ]
    if not parts:
        return ""
    verb = "Would record" if check_mode else "Recorded"
    return f"{verb} {'; '.join(parts)}, without running SQL."


def migrations_summary(outcome: RunResult, check_mode: bool, strategy: str) -> str:
    """Return the sentence about the migrations that ran, or would run."""
    labels = ", ".join(label(entry) for entry in outcome.applied)
    at = _version_phrase(outcome.current_version)
    count = len(outcome.applied)
    noun = "migration" if count == 1 else "migrations"
    undo = any(entry["type"] == "undo" for entry in outcome.applied)
    if not outcome.applied and outcome.pending:
        waiting = ", ".join(label(entry) for entry in outcome.pending)
        verb = "waits" if len(outcome.pending) == 1 else "wait"
        return f"No migration to apply up to the target; {at}, and {waiting} {verb} beyond it."
    if not outcome.applied:
        return f"No migration pending; {at}."
    if not check_mode:
        verb = "Undid" if undo else "Applied"
        return f"{verb} {count} {noun} ({labels}); {at}."
    if strategy == "plan":
        how = "planned only, no SQL executed"
    else:
        verified = sum(1 for entry in outcome.applied if entry["verified"])
        how = f"{verified} of {count} verified in a transaction that was rolled back"
    verb = "undo" if undo else "apply"
    return f"Check mode: would {verb} {count} {noun} ({labels}), {how}; nothing was written."


def _version_phrase(version: str | None) -> str:
    if version is None:
        return "the database has no versioned migration applied"
    return f"the database is at version {version}"


def make_diff(outcome: RunResult, hide_sql: bool) -> list[dict[str, str]]:
    """Return Ansible diffs: applied versions before and after, then each pending file's SQL."""
    after = outcome.versions_after
    diffs = [
        {
            "before_header": f"{outcome.history_table} (applied versions)",
            "after_header": f"{outcome.history_table} (applied versions)",
            "before": "".join(f"{version}\n" for version in outcome.versions_before),
            "after": "".join(f"{version}\n" for version in after),
        }
    ]
    applied_scripts = {entry["script"] for entry in outcome.applied}
    for migration in outcome.migrations:
        if migration.script not in applied_scripts:
            continue
        text = migration.text if not hide_sql else "-- SQL hidden (hide_sql_in_diff is set)\n"
        diffs.append(
            {
                "before_header": "(not applied)",
                "after_header": f"{migration.label} {migration.script}",
                "before": "",
                "after": text if text.endswith("\n") else text + "\n",
            }
        )
    if outcome.schema_changes is not None:
        diffs.append({"prepared": schema_changes_text(outcome.schema_changes)})
    return diffs


def schema_changes_text(rendered: str) -> str:
    """Return the schema diff of a check-mode run as the text Ansible shows."""
    heading = "Schema changes of the pending migrations (verified, then rolled back):\n"
    return heading + (rendered or "(no change to tables, views, indexes, constraints or types)\n")
