# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry point for the postgresql_matview_refresh module: module parameters in, task result out.

Plain dictionaries only, so the module file stays a thin wrapper and this code can be tested
without Ansible.
"""

from __future__ import annotations

from typing import Any

from .api import application_name, connection_settings
from .connection import connect
from .errors import MigrationError
from .execution import server_message
from .refresh import (
    MaterializedView,
    RefreshError,
    RefreshOptions,
    RefreshResult,
    dependency_order,
    refresh,
    resolve_names,
    views_in_schema,
)

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    import psycopg2
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass


def refresh_materialized_views(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Refresh the materialized views the parameters select and return the task result.

    Raises MigrationError subclasses for every expected failure.
    """
    options = RefreshOptions(
        concurrently=params["concurrently"],
        tracking_table=params.get("tracking_table"),
        only_due=bool(params.get("only_due")),
        lock_timeout=params["lock_timeout"],
        check_mode=check_mode,
    )
    settings = connection_settings(params, application_name(params, "postgresql_matview_refresh"))
    connection = connect(settings)
    try:
        with connection.cursor() as cursor:
            views = _select_views(cursor, params)
            ordered = dependency_order(cursor, views)
        outcome = refresh(connection, ordered, options)
    except psycopg2.Error as error:
        raise MigrationError(f"PostgreSQL error: {server_message(error)}") from None
    finally:
        connection.close()
    return task_result(outcome, check_mode)


def _select_views(cursor: Any, params: dict[str, Any]) -> list[MaterializedView]:
    names = params.get("names")
    if names is None:
        return views_in_schema(cursor, params["schema"])
    if not names:
        raise RefreshError("names is an empty list: name materialized views, or set schema.")
    return resolve_names(cursor, list(names))


def task_result(outcome: RefreshResult, check_mode: bool) -> dict[str, Any]:
    """Return the result keys, identical in check mode and in a real run."""
    return {
        "changed": outcome.changed,
        "msg": summary(outcome, check_mode),
        "refreshed": outcome.refreshed,
        "not_refreshed": outcome.not_refreshed,
    }


def summary(outcome: RefreshResult, check_mode: bool) -> str:
    """Return one line naming the views refreshed (or that would be) and the count not due."""
    names = ", ".join(
        entry["name"] + (" (concurrently)" if entry["concurrently"] else "")
        for entry in outcome.refreshed
    )
    not_due = len(outcome.not_refreshed)
    not_due_note = f"; {not_due} not due" if not_due else ""
    if not outcome.refreshed and not not_due:
        return "No materialized view to refresh."
    if not outcome.refreshed:
        return f"No materialized view refreshed{not_due_note}."
    if check_mode:
        return f"Check mode: would refresh {names}{not_due_note}; nothing was refreshed."
    return f"Refreshed {names}{not_due_note}."
