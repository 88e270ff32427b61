# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refresh materialized views in dependency order, concurrently where PostgreSQL allows it.

``REFRESH MATERIALIZED VIEW CONCURRENTLY`` fails with SQLSTATE 0A000 on a view that is not
populated, and with 55000 on a view without a usable unique index. PostgreSQL's own test
(``is_usable_unique_index`` in src/backend/commands/matview.c) accepts a valid, immediate,
btree unique index whose key and INCLUDE columns are all plain columns, with no WHERE
clause. ``usable_unique_index`` repeats that test in SQL, so ``auto`` picks the concurrent
refresh only where it will work.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import MigrationError
from .execution import server_message

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

CONCURRENTLY_AUTO = "auto"
CONCURRENTLY_ALWAYS = "always"
CONCURRENTLY_NEVER = "never"

TRACKING_COLUMNS = ("view_name", "last_refreshed_at", "refresh_interval_minutes")

# Recursion limit for views read through other views. It is far above the nesting of real
# schemas and only guarantees that the query ends.
_MAX_VIEW_DEPTH = 64

_MATVIEW_COLUMNS = """
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relispopulated,
       (SELECT ic.relname::text
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_catalog.pg_am am ON am.oid = ic.relam
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indimmediate
          AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree'
          AND 0 < ALL (i.indkey::pg_catalog.int2[])
        ORDER BY ic.relname LIMIT 1)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
"""

_BY_OID = _MATVIEW_COLUMNS + "WHERE c.oid = pg_catalog.to_regclass(%s)"

_IN_SCHEMA = _MATVIEW_COLUMNS + "WHERE n.nspname = %s AND c.relkind = 'm' ORDER BY c.relname"

# Pairs (reader, source): materialized view ``reader`` reads materialized view ``source``,
# directly or through plain views. Each view's rewrite rule depends (in pg_depend) on every
# relation its query reads.
_READS = f"""
WITH RECURSIVE reads(reader, relation, depth) AS (
    SELECT r.ev_class, d.refobjid, 1
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_depend d
      ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
    WHERE r.ev_class = ANY(%(oids)s)
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid <> r.ev_class
  UNION
    SELECT reads.reader, d.refobjid, reads.depth + 1
    FROM reads
    JOIN pg_catalog.pg_class c ON c.oid = reads.relation AND c.relkind = 'v'
    JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid
    JOIN pg_catalog.pg_depend d
      ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
    WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid <> r.ev_class AND reads.depth < {_MAX_VIEW_DEPTH}
)
SELECT DISTINCT reads.reader, reads.relation
FROM reads JOIN pg_catalog.pg_class c ON c.oid = reads.relation
WHERE c.relkind = 'm' AND reads.relation <> reads.reader
"""

_TRACKING_TABLE = """
SELECT c.oid, n.nspname::text, c.relname::text,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = pg_catalog.to_regclass(%s) AND c.relkind IN ('r', 'p')
"""


class RefreshError(MigrationError):
    """A materialized view could not be found, chosen or refreshed."""


@dataclass(frozen=True)
class MaterializedView:
    """A materialized view, whether it is populated, and its first usable unique index."""

    oid: int
    schema: str
    name: str
    populated: bool
    unique_index: str | None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass
class RefreshOptions:
    """Options of one refresh run. ``lock_timeout`` is a PostgreSQL interval string."""

    concurrently: str = CONCURRENTLY_AUTO
    tracking_table: str | None = None
    only_due: bool = False
    lock_timeout: str = "5s"
    check_mode: bool = False


@dataclass
class RefreshResult:
    """Views refreshed (in check mode, that would be) in the order they ran, and views left
    alone because they are not due."""

    refreshed: list[dict[str, Any]] = field(default_factory=list)
    not_refreshed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.refreshed)


@dataclass(frozen=True)
class Schedule:
    """A view's row in the tracking table."""

    view_name: str
    last_refreshed_at: datetime | None
    interval_minutes: int | None
    due: bool
    next_due_at: datetime | None


def resolve_names(cursor: Any, names: list[str]) -> list[MaterializedView]:
    """Return the materialized views ``names`` denote, read as SQL names.

    Unquoted names fold to lower case and unqualified names follow the search_path, as in
    SQL. Raises RefreshError naming every name that is not found or is not a materialized
    view.
    """
    views: list[MaterializedView] = []
    missing: list[str] = []
    wrong_kind: list[str] = []
    for name in dict.fromkeys(names):
        row = _lookup(cursor, name)
        if row is None:
            missing.append(name)
        elif row[3] != "m":
            wrong_kind.append(f"{name!r} ({_KIND_NAMES.get(row[3], 'a relation')})")
        elif row[0] not in {view.oid for view in views}:
            views.append(_view(row))
    problems = []
    if missing:
        problems.append("not found: " + ", ".join(repr(name) for name in missing))
    if wrong_kind:
        problems.append("not materialized views: " + ", ".join(wrong_kind))
    if problems:
        raise RefreshError(
            f"Invalid materialized view names, {'; '.join(problems)}. Check the spelling and the "
            'schema, and quote mixed-case names as in SQL, for example \'"Sales"."Daily"\'.'
        )
    return views


_KIND_NAMES = {
    "r": "a table",
    "p": "a partitioned table",
    "v": "a view",
    "i": "an index",
    "S": "a sequence",
    "f": "a foreign table",
    "c": "a composite type",
}


def _lookup(cursor: Any, name: str) -> tuple[Any, ...] | None:
    """Return the catalog row of relation ``name``, or None when it does not exist or the name
    is not valid SQL (too many dots, unbalanced quotes)."""
    try:
        cursor.execute(_BY_OID, (name,))
    except psycopg2.Error:
        return None
    row: tuple[Any, ...] | None = cursor.fetchone()
    return row


def views_in_schema(cursor: Any, schema: str) -> list[MaterializedView]:
    """Return every materialized view in ``schema``. Raises RefreshError if it does not exist."""
    cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,))
    if cursor.fetchone() is None:
        raise RefreshError(f"Schema {schema!r} not found.")
    cursor.execute(_IN_SCHEMA, (schema,))
    return [_view(row) for row in cursor.fetchall()]


def _view(row: tuple[Any, ...]) -> MaterializedView:
    oid, schema, name, _kind, populated, unique_index = row
    return MaterializedView(oid, schema, name, populated, unique_index)


def dependency_order(cursor: Any, views: list[MaterializedView]) -> list[MaterializedView]:
    """Return ``views`` so that each comes after the selected views it reads.

    Views that do not depend on each other keep alphabetical order by qualified name.
    Dependencies on materialized views outside the selection do not change the order.
    """
    if not views:
        return []
    by_oid = {view.oid: view for view in views}
    cursor.execute(_READS, {"oids": list(by_oid)})
    sources: dict[int, set[int]] = {oid: set() for oid in by_oid}
    readers: dict[int, set[int]] = {oid: set() for oid in by_oid}
    for reader, source in cursor.fetchall():
        if source in by_oid:
            sources[reader].add(source)
            readers[source].add(reader)
    ready = [(by_oid[oid].qualified_name, oid) for oid, deps in sources.items() if not deps]
    heapq.heapify(ready)
    ordered: list[MaterializedView] = []
    while ready:
        _name, oid = heapq.heappop(ready)
        ordered.append(by_oid[oid])
        for reader in readers[oid]:
            sources[reader].discard(oid)
            if not sources[reader]:
                heapq.heappush(ready, (by_oid[reader].qualified_name, reader))
    return ordered


def choose_method(view: MaterializedView, mode: str) -> tuple[bool, str]:
    """Return whether to refresh ``view`` concurrently under ``mode``, and why."""
    if mode == CONCURRENTLY_NEVER:
        return False, "plain refresh because concurrently is never"
    problem = concurrent_refresh_problem(view)
    if mode == CONCURRENTLY_ALWAYS:
        return True, "concurrent refresh because concurrently is always"
    if problem is not None:
        return False, f"plain refresh because the view {problem}"
    return True, f"concurrent refresh: populated, with usable unique index {view.unique_index}"


def concurrent_refresh_problem(view: MaterializedView) -> str | None:
    """Return why PostgreSQL would reject a concurrent refresh of ``view``, or None."""
    if not view.populated:
        return "is not populated (created or last refreshed WITH NO DATA)"
    if view.unique_index is None:
        return (
            "has no usable unique index: CONCURRENTLY needs a valid unique index on plain "
            "columns, without a WHERE clause or expressions"
        )
    return None


def check_always(views: list[MaterializedView]) -> None:
    """Raise RefreshError listing every view that cannot be refreshed concurrently."""
    problems = [
        f"{view.qualified_name} {problem}"
        for view in views
        if (problem := concurrent_refresh_problem(view)) is not None
    ]
    if problems:
        raise RefreshError(
            "concurrently is always, but these views cannot be refreshed CONCURRENTLY: "
            + "; ".join(problems)
            + ". Nothing was refreshed. Set concurrently to auto to refresh them without "
            "CONCURRENTLY."
        )


class TrackingTable:
    """The table recording when each view was last refreshed and how often it is due."""

    def __init__(self, oid: int, schema: str, table: str) -> None:
        self.oid = oid
        self.schema = schema
        self.table = table
        self.identifier = sql.Identifier(schema, table)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    @classmethod
    def find(cls, cursor: Any, name: str) -> TrackingTable:
        """Look up table ``name``, read as an SQL name.

        Raises RefreshError if it is missing or lacks a column of TRACKING_COLUMNS.
        """
        row = _lookup_tracking(cursor, name)
        if row is None:
            raise RefreshError(
                f"Tracking table {name!r} not found. Create it (see "
                "files/sql/matviews/V3__materialized_views.sql) or leave tracking_table unset "
                "(schema_refresh_tracking_table: null in the role dbops.migrations.schema)."
            )
        oid, schema, table, columns = row
        missing = [column for column in TRACKING_COLUMNS if column not in columns]
        if missing:
            raise RefreshError(
                f"Tracking table {schema}.{table} has no column {', '.join(missing)}: it needs "
                f"{', '.join(TRACKING_COLUMNS)}."
            )
        return cls(oid, schema, table)

    def schedules(self, cursor: Any, views: list[MaterializedView]) -> dict[int, Schedule]:
        """Return the row of each view that has one, keyed by view oid.

        A row matches a view by its schema-qualified name, else by its bare name. A row with
        no last_refreshed_at or no interval is due.
        """
        cursor.execute(
            sql.SQL(
                "SELECT view_name::text, last_refreshed_at, refresh_interval_minutes,"
                " last_refreshed_at IS NULL OR refresh_interval_minutes IS NULL"
                " OR last_refreshed_at + pg_catalog.make_interval("
                "mins => refresh_interval_minutes) <= pg_catalog.now(),"
                " last_refreshed_at + pg_catalog.make_interval("
                "mins => refresh_interval_minutes)"
                " FROM {table}"
            ).format(table=self.identifier)
        )
        rows = {row[0]: Schedule(*row) for row in cursor.fetchall()}
        matched: dict[int, Schedule] = {}
        for view in views:
            schedule = rows.get(view.qualified_name) or rows.get(view.name)
            if schedule is not None:
                matched[view.oid] = schedule
        return matched

    def update_statement(self) -> sql.Composed:
        """Return the UPDATE that records a refresh. Its one parameter is the view_name."""
        return sql.SQL(
            "UPDATE {table} SET last_refreshed_at = pg_catalog.now() WHERE view_name = %s"
        ).format(table=self.identifier)


def _lookup_tracking(cursor: Any, name: str) -> tuple[Any, ...] | None:
    try:
        cursor.execute(_TRACKING_TABLE, (name,))
    except psycopg2.Error:
        return None
    row: tuple[Any, ...] | None = cursor.fetchone()
    return row


def not_due_reason(schedule: Schedule) -> str:
    """Return why a view is not refreshed when only due views are."""
    return (
        f"not due: last refreshed at {_iso(schedule.last_refreshed_at)}, every "
        f"{schedule.interval_minutes} minutes, next due at {_iso(schedule.next_due_at)}"
    )


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "never"


def refresh(
    connection: Any, views: list[MaterializedView], options: RefreshOptions
) -> RefreshResult:
    """Refresh ``views`` (already in dependency order), each in its own transaction.

    With a tracking table, the view's last_refreshed_at is set in the same transaction as its
    refresh. The tracking table is read only when ``views`` is not empty. In check mode
    nothing is refreshed or written, and the result lists what would be. Raises RefreshError
    when a refresh fails. Views refreshed before it stay refreshed, and the error's ``result``
    lists them as a successful run would.
    """
    with connection.cursor() as cursor:
        _check_lock_timeout(cursor, options.lock_timeout)
        tracking = None
        schedules: dict[int, Schedule] = {}
        # A schema without materialized views needs no tracking table: a database migrated
        # to a version before the one that creates both has neither.
        if options.tracking_table and views:
            tracking = TrackingTable.find(cursor, options.tracking_table)
            schedules = tracking.schedules(cursor, views)
    result = RefreshResult()
    planned = _plan(views, schedules, options, result)
    try:
        for view, concurrently, reason in planned:
            elapsed = 0
            if not options.check_mode:
                schedule = schedules.get(view.oid)
                view_name = schedule.view_name if schedule else None
                elapsed = _refresh_one(
                    connection, view, concurrently, options, tracking, view_name, result
                )
            result.refreshed.append(
                {
                    "name": view.qualified_name,
                    "concurrently": concurrently,
                    "reason": reason,
                    "duration_ms": elapsed,
                }
            )
    except RefreshError as error:
        # The views refreshed before the failing one are committed, so the task changed them.
        error.result = {
            "changed": result.changed,
            "refreshed": result.refreshed,
            "not_refreshed": result.not_refreshed,
        }
        raise
    return result


def _plan(
    views: list[MaterializedView],
    schedules: dict[int, Schedule],
    options: RefreshOptions,
    result: RefreshResult,
) -> list[tuple[MaterializedView, bool, str]]:
    """Return (view, concurrently, reason) for each view to refresh.

    Views that are not due go to ``result.not_refreshed`` instead.
    """
    planned = []
    for view in views:
        schedule = schedules.get(view.oid)
        if options.only_due and schedule is not None and not schedule.due:
            result.not_refreshed.append(
                {"name": view.qualified_name, "reason": not_due_reason(schedule)}
            )
            continue
        concurrently, reason = choose_method(view, options.concurrently)
        planned.append((view, concurrently, reason))
    if options.concurrently == CONCURRENTLY_ALWAYS:
        check_always([view for view, _concurrently, _reason in planned])
    return planned


def _check_lock_timeout(cursor: Any, lock_timeout: str) -> None:
    try:
        cursor.execute("SELECT pg_catalog.set_config('lock_timeout', %s, false)", (lock_timeout,))
    except psycopg2.Error as error:
        raise RefreshError(
            f"Invalid lock_timeout {lock_timeout!r}: {server_message(error)} Use an interval "
            "such as 5s or 500ms."
        ) from None
    cursor.execute("RESET lock_timeout")


def _refresh_one(
    connection: Any,
    view: MaterializedView,
    concurrently: bool,
    options: RefreshOptions,
    tracking: TrackingTable | None,
    view_name: str | None,
    result: RefreshResult,
) -> int:
    """Refresh one view and record it in the tracking table, in one transaction.

    Returns the duration of the REFRESH statement in milliseconds.
    """
    statement = sql.SQL("REFRESH MATERIALIZED VIEW {keyword}{name}").format(
        keyword=sql.SQL("CONCURRENTLY " if concurrently else ""), name=view.identifier
    )
    with connection.cursor() as cursor:
        try:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, true)", (options.lock_timeout,)
            )
            started = time.monotonic()
            cursor.execute(statement)
            elapsed = int((time.monotonic() - started) * 1000)
            if tracking is not None and view_name is not None:
                cursor.execute(tracking.update_statement(), (view_name,))
            cursor.execute("COMMIT")
        except psycopg2.Error as error:
            _rollback(connection)
            raise RefreshError(
                _failure_message(view, concurrently, error, options, result)
            ) from None
        except BaseException:
            _rollback(connection)
            raise
    return elapsed


def _failure_message(
    view: MaterializedView,
    concurrently: bool,
    error: Any,
    options: RefreshOptions,
    result: RefreshResult,
) -> str:
    keyword = " CONCURRENTLY" if concurrently else ""
    message = (
        f"REFRESH MATERIALIZED VIEW{keyword} {view.qualified_name} failed: {server_message(error)}"
    )
    sqlstate = getattr(error, "pgcode", None)
    if sqlstate == "55P03":
        message += (
            f" Another session held a conflicting lock for longer than lock_timeout "
            f"({options.lock_timeout}). Run again when it is done, or raise lock_timeout."
        )
    elif concurrently and sqlstate in ("0A000", "55000"):
        message += " Set concurrently to auto to refresh it without CONCURRENTLY."
    if result.refreshed:
        names = ", ".join(entry["name"] for entry in result.refreshed)
        message += f" Refreshed before it, and still refreshed: {names}."
    else:
        message += " No view was refreshed."
    return message


def _rollback(connection: Any) -> None:
    if connection.closed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        return
