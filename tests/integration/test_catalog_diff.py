"""Catalog snapshots, their diff and its rendered text, against a real PostgreSQL.

Each test works as check mode does: it runs SQL in one transaction with plain psycopg2
statements, takes snapshots inside that transaction, and rolls the transaction back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import extensions

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import (
    catalog,
    scanner,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.history import (
    HistoryTable,
)
from pgcluster import Database
from playbook_run import REPO_ROOT

pytestmark = pytest.mark.matrix

SHIPPED_SQL = REPO_ROOT / "files" / "sql"
V1_SCRIPT = "schema/V1__initial_schema.sql"
V2_SCRIPT = "views/V2__analytics_views.sql"
V3_SCRIPT = "matviews/V3__materialized_views.sql"

HISTORY = HistoryTable("public", "schema_migrations")

ITEMS_TABLE = (
    "CREATE TABLE items (id integer PRIMARY KEY, name text, price integer DEFAULT 0, note text)"
)

# Lines that the diff of V1..V3 on an empty database must contain.
SHIPPED_LINES = [
    '+ type public."TenantStatus" enum (provisioning, active, suspended, retired)',
    '+ table public."Tenant" (6 columns)',
    '+ column public."Conversion"."sentToCAPI" boolean NOT NULL DEFAULT false',
    '+ column public."Tenant".status public."TenantStatus" NOT NULL'
    " DEFAULT 'provisioning'::public.\"TenantStatus\"",
    '+ primary key public."Tenant"."Tenant_pkey" (id)',
    '+ foreign key public."Conversion"."Conversion_webhookRawId_fkey" ("webhookRawId")'
    ' REFERENCES public."WebhookRaw"(id) ON UPDATE CASCADE ON DELETE CASCADE',
    '+ unique index public."Tenant_slug_key" on public."Tenant" USING btree (slug)',
    '+ index public.idx_matches_tenant_created on public."MatchLog"'
    ' USING btree ("conversionId" DESC) WHERE ("conversionId" IS NOT NULL)',
    "+ table public.materialized_view_refresh (3 columns)",
    "+ view public.v_match_rate_by_tenant_aggregated",
    "+ materialized view public.v_dispatch_summary",
    "+ unique index public.idx_v_dispatch_summary on public.v_dispatch_summary"
    " USING btree (tenant_id, status, gateway)",
]


@pytest.fixture
def cursor(database: Database) -> Iterator[Any]:
    """Return a cursor whose transaction is rolled back after the test."""
    connection = database.connect()
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.rollback()
        connection.close()


def apply_shipped(cursor: Any, *scripts: str) -> None:
    """Run shipped migration files statement by statement, split as the engine splits them."""
    for script in scripts:
        text = (SHIPPED_SQL / script).read_text(encoding="utf-8")
        for statement in scanner.scan(text).statements:
            cursor.execute(statement.text)


def diff_around(cursor: Any, statements: str, **options: Any) -> catalog.SchemaDiff:
    """Run ``statements`` between two snapshots taken with ``options`` and diff them."""
    before = catalog.snapshot(cursor, **options)
    cursor.execute(statements)
    after = catalog.snapshot(cursor, **options)
    return catalog.diff(before, after)


def rendered_lines(schema_diff: catalog.SchemaDiff) -> list[str]:
    return catalog.render(schema_diff).splitlines()


def nonzero_counts(schema_diff: catalog.SchemaDiff) -> dict[str, dict[str, int]]:
    counts = catalog.summary(schema_diff)
    return {kind: actions for kind, actions in counts.items() if any(actions.values())}


def shipped_diff(cursor: Any) -> catalog.SchemaDiff:
    before = catalog.snapshot(cursor)
    apply_shipped(cursor, V1_SCRIPT, V2_SCRIPT, V3_SCRIPT)
    return catalog.diff(before, catalog.snapshot(cursor))


def test_shipped_sql_counts_on_empty_database(cursor: Any) -> None:
    schema_diff = shipped_diff(cursor)

    assert nonzero_counts(schema_diff) == {
        "type": {"created": 4, "altered": 0, "dropped": 0},
        "table": {"created": 13, "altered": 0, "dropped": 0},
        "column": {"created": 135, "altered": 0, "dropped": 0},
        "primary_key": {"created": 13, "altered": 0, "dropped": 0},
        "foreign_key": {"created": 13, "altered": 0, "dropped": 0},
        "index": {"created": 30, "altered": 0, "dropped": 0},
        "view": {"created": 1, "altered": 0, "dropped": 0},
        "materialized_view": {"created": 2, "altered": 0, "dropped": 0},
    }
    types = [item for item in schema_diff.created if item.kind == "type"]
    assert [item.variety for item in types] == ["enum"] * 4
    assert len(rendered_lines(schema_diff)) == 211


def test_shipped_sql_rendered_lines(cursor: Any) -> None:
    lines = rendered_lines(shipped_diff(cursor))

    for line in SHIPPED_LINES:
        assert line in lines, f"{line!r} missing"


def test_shipped_sql_groups_members_after_table(cursor: Any) -> None:
    lines = rendered_lines(shipped_diff(cursor))
    start = lines.index('+ table public."Tenant" (6 columns)')

    assert lines[start + 1 : start + 10] == [
        '+ column public."Tenant".id text NOT NULL',
        '+ column public."Tenant".slug text NOT NULL',
        '+ column public."Tenant".name text NOT NULL',
        '+ column public."Tenant".status public."TenantStatus" NOT NULL'
        " DEFAULT 'provisioning'::public.\"TenantStatus\"",
        '+ column public."Tenant"."createdAt" timestamp(3) without time zone NOT NULL'
        " DEFAULT CURRENT_TIMESTAMP",
        '+ column public."Tenant"."updatedAt" timestamp(3) without time zone NOT NULL',
        '+ primary key public."Tenant"."Tenant_pkey" (id)',
        '+ unique index public."Tenant_slug_key" on public."Tenant" USING btree (slug)',
        '+ table public."WebhookRaw" (7 columns)',
    ]


def test_v3_replaces_views_with_materialized_views(cursor: Any) -> None:
    apply_shipped(cursor, V1_SCRIPT, V2_SCRIPT)
    before = catalog.snapshot(cursor)
    apply_shipped(cursor, V3_SCRIPT)
    schema_diff = catalog.diff(before, catalog.snapshot(cursor))
    lines = rendered_lines(schema_diff)

    for view in ("public.v_dispatch_summary", "public.v_match_rate_by_tenant"):
        dropped = lines.index(f"- view {view}")
        assert lines[dropped + 1] == f"+ materialized view {view}", lines
    assert (
        "~ view public.v_match_rate_by_tenant_aggregated: dropped and recreated, definition changed"
        in lines
    )
    counts = nonzero_counts(schema_diff)
    assert counts["view"] == {"created": 0, "altered": 1, "dropped": 2}
    assert counts["materialized_view"] == {"created": 2, "altered": 0, "dropped": 0}
    assert counts["table"] == {"created": 1, "altered": 0, "dropped": 0}
    assert counts["index"] == {"created": 5, "altered": 0, "dropped": 0}


def test_column_alterations(cursor: Any) -> None:
    cursor.execute(ITEMS_TABLE)
    schema_diff = diff_around(
        cursor,
        "ALTER TABLE items ALTER COLUMN price TYPE numeric(10,2),"
        " ALTER COLUMN name SET NOT NULL, ALTER COLUMN price SET DEFAULT 1,"
        " ADD COLUMN sku text NOT NULL DEFAULT '', DROP COLUMN note",
    )

    assert rendered_lines(schema_diff) == [
        "~ column public.items.name: NOT NULL added",
        "~ column public.items.price: type integer -> numeric(10,2), default 0 -> 1",
        "- column public.items.note text",
        "+ column public.items.sku text NOT NULL DEFAULT ''::text",
    ]
    assert nonzero_counts(schema_diff) == {
        "column": {"created": 1, "altered": 2, "dropped": 1},
    }


def test_column_not_null_and_default_removed(cursor: Any) -> None:
    cursor.execute(ITEMS_TABLE + "; ALTER TABLE items ALTER COLUMN name SET NOT NULL")
    schema_diff = diff_around(
        cursor,
        "ALTER TABLE items ALTER COLUMN name DROP NOT NULL, ALTER COLUMN price DROP DEFAULT",
    )

    assert rendered_lines(schema_diff) == [
        "~ column public.items.name: NOT NULL removed",
        "~ column public.items.price: default 0 -> none",
    ]


def test_enum_labels_added(cursor: Any) -> None:
    cursor.execute("CREATE TYPE status AS ENUM ('new', 'done')")
    schema_diff = diff_around(
        cursor,
        "ALTER TYPE status ADD VALUE 'archived'; ALTER TYPE status ADD VALUE 'open' BEFORE 'done'",
    )

    assert rendered_lines(schema_diff) == ["~ type public.status: labels added: open, archived"]


def test_enum_label_renamed(cursor: Any) -> None:
    cursor.execute("CREATE TYPE status AS ENUM ('new', 'done', 'it''s, odd')")
    schema_diff = diff_around(cursor, "ALTER TYPE status RENAME VALUE 'done' TO 'closed'")

    assert rendered_lines(schema_diff) == [
        "~ type public.status: labels (new, done, 'it''s, odd') -> (new, closed, 'it''s, odd')"
    ]


def test_constraint_and_index_changes(cursor: Any) -> None:
    cursor.execute(
        ITEMS_TABLE + "; CREATE TABLE orders (id integer PRIMARY KEY,"
        " item_id integer CONSTRAINT orders_item_fkey REFERENCES items (id));"
        " CREATE INDEX orders_item_idx ON orders (item_id)"
    )
    schema_diff = diff_around(
        cursor,
        "ALTER TABLE orders DROP CONSTRAINT orders_item_fkey;"
        " ALTER TABLE items ADD CONSTRAINT items_price_check CHECK (price >= 0);"
        " DROP INDEX orders_item_idx; CREATE UNIQUE INDEX orders_item_idx ON orders (item_id, id)",
    )

    assert rendered_lines(schema_diff) == [
        "+ check constraint public.items.items_price_check ((price >= 0))",
        "- foreign key public.orders.orders_item_fkey (item_id) REFERENCES public.items(id)",
        "~ index public.orders_item_idx: index on public.orders USING btree (item_id)"
        " -> unique index on public.orders USING btree (item_id, id)",
    ]


def test_table_recreated_with_same_columns(cursor: Any) -> None:
    cursor.execute(ITEMS_TABLE)
    schema_diff = diff_around(cursor, "DROP TABLE items; " + ITEMS_TABLE)

    assert rendered_lines(schema_diff) == ["~ table public.items: dropped and recreated"]


def test_routine_definition_changed(cursor: Any) -> None:
    create = (
        "CREATE OR REPLACE FUNCTION add_one(value integer) RETURNS integer"
        " LANGUAGE sql IMMUTABLE AS 'SELECT value + {}'"
    )
    cursor.execute(create.format(1))
    schema_diff = diff_around(cursor, create.format(2))

    assert rendered_lines(schema_diff) == [
        "~ function public.add_one(value integer): definition changed"
    ]


def test_other_object_kinds_rendered(cursor: Any) -> None:
    schema_diff = diff_around(
        cursor,
        """
        CREATE SCHEMA app;
        CREATE TABLE app."user" ("select" integer);
        CREATE SEQUENCE counter START 10 INCREMENT 5;
        CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            serial_no serial,
            a integer,
            b integer GENERATED ALWAYS AS (a * 2) STORED,
            label text COLLATE "C"
        ) PARTITION BY RANGE (id);
        CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (1) TO (1000);
        CREATE UNLOGGED TABLE scratch (v text);
        CREATE DOMAIN positive_int AS integer NOT NULL DEFAULT 1
            CONSTRAINT positive CHECK (VALUE > 0);
        CREATE TYPE pair AS (left_value integer, right_value text);
        CREATE TYPE float_range AS RANGE (subtype = float8);
        CREATE PROCEDURE reset_counter() LANGUAGE sql AS 'SELECT 1';
        CREATE AGGREGATE total(integer) (sfunc = int4pl, stype = integer, initcond = '0');
        """,
    )
    lines = rendered_lines(schema_diff)

    expected = [
        "+ schema app",
        '+ table app."user" (1 column)',
        '+ column app."user"."select" integer',
        "+ sequence public.counter AS bigint START 10 INCREMENT 5 MINVALUE 1"
        " MAXVALUE 9223372036854775807 CACHE 1 NO CYCLE",
        "+ sequence public.events_serial_no_seq AS integer START 1 INCREMENT 1 MINVALUE 1"
        " MAXVALUE 2147483647 CACHE 1 NO CYCLE OWNED BY public.events.serial_no",
        "+ table public.events (5 columns, PARTITION BY RANGE (id))",
        "+ column public.events.id bigint NOT NULL GENERATED ALWAYS AS IDENTITY",
        "+ column public.events.b integer GENERATED ALWAYS AS ((a * 2)) STORED",
        '+ column public.events.label text COLLATE pg_catalog."C"',
        "+ table public.events_1 (5 columns, PARTITION OF public.events"
        " FOR VALUES FROM ('1') TO ('1000'))",
        "+ table public.scratch (1 column, UNLOGGED)",
        "+ type public.positive_int domain over integer NOT NULL DEFAULT 1"
        " CONSTRAINT positive CHECK ((VALUE > 0))",
        "+ type public.pair composite (left_value integer, right_value text)",
        "+ type public.float_range range over double precision",
        "+ procedure public.reset_counter()",
        "+ aggregate public.total(integer) returns integer",
    ]
    for line in expected:
        assert line in lines, f"{line!r} missing"
    sequences = [line for line in lines if line.startswith("+ sequence ")]
    assert len(sequences) == 2, "the identity column's sequence is shown"
    functions = [line for line in lines if line.startswith("+ function ")]
    assert functions == [], "the range type's constructors are shown"


def test_sequence_options_changed(cursor: Any) -> None:
    cursor.execute("CREATE SEQUENCE counter")
    schema_diff = diff_around(cursor, "ALTER SEQUENCE counter INCREMENT 2 CYCLE")

    assert rendered_lines(schema_diff) == [
        "~ sequence public.counter: INCREMENT 1 -> INCREMENT 2, NO CYCLE -> CYCLE"
    ]


def test_extension_members_left_out(cursor: Any) -> None:
    cursor.execute("SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'citext'")
    if cursor.fetchone() is None:
        pytest.skip("the server has no citext extension (PostgreSQL contrib)")
    schema_diff = diff_around(cursor, "CREATE EXTENSION citext")
    lines = rendered_lines(schema_diff)

    assert len(lines) == 1, lines
    assert lines[0].startswith("+ extension citext version ")
    assert lines[0].endswith(" in schema public")


def test_history_table_excluded(cursor: Any) -> None:
    exclude = {(HISTORY.schema, HISTORY.table)}
    before = catalog.snapshot(cursor, exclude=exclude)
    HISTORY.create(cursor)
    cursor.execute(
        "CREATE INDEX history_script_idx ON public.schema_migrations (script);"
        " CREATE TABLE kept (id integer PRIMARY KEY)"
    )
    after = catalog.snapshot(cursor, exclude=exclude)
    unfiltered = catalog.snapshot(cursor)

    assert rendered_lines(catalog.diff(before, after)) == [
        "+ table public.kept (1 column)",
        "+ column public.kept.id integer NOT NULL",
        "+ primary key public.kept.kept_pkey (id)",
    ]
    history_keys = [key for key in unfiltered.objects if HISTORY.table in key]
    assert len(history_keys) == 13, "table, 10 columns, primary key and index expected"


def test_schemas_argument_limits_snapshot(cursor: Any) -> None:
    cursor.execute(
        "CREATE SCHEMA app; CREATE TABLE app.accounts (id integer);"
        " CREATE TABLE public.items (id integer); CREATE TEMPORARY TABLE scratch (id integer)"
    )
    only_app = catalog.snapshot(cursor, schemas=["app", "missing"])
    every_schema = catalog.snapshot(cursor)

    assert only_app.schemas == ("app",)
    assert [item.label for item in only_app.of_kind("table")] == ["app.accounts"]
    assert every_schema.schemas == ("app", "public")
    assert [item.label for item in every_schema.of_kind("table")] == [
        "app.accounts",
        "public.items",
    ]


def test_snapshots_of_same_state_are_equal(cursor: Any) -> None:
    apply_shipped(cursor, V1_SCRIPT, V2_SCRIPT, V3_SCRIPT)
    first = catalog.snapshot(cursor)
    cursor.execute("SET LOCAL search_path = app_schema")
    second = catalog.snapshot(cursor)
    schema_diff = catalog.diff(first, second)

    assert first == second
    assert list(first.objects) == sorted(first.objects)
    assert schema_diff.empty
    assert catalog.render(schema_diff) == ""


def test_snapshot_restores_search_path(database: Database) -> None:
    connection = database.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN; SET LOCAL search_path = app_schema, public")
            catalog.snapshot(cursor)
            cursor.execute("SHOW search_path")
            search_path = cursor.fetchone()[0]
            status = connection.info.transaction_status
    finally:
        connection.close()

    assert search_path == "app_schema, public"
    assert status == extensions.TRANSACTION_STATUS_INTRANS


class FailingTypesCursor(extensions.cursor):
    """A cursor that turns the snapshot's query of types into a division by zero."""

    def execute(self, query: Any, params: Any = None) -> Any:
        if isinstance(query, str) and "pg_catalog.pg_enum" in query:
            query, params = "SELECT 1 / 0", None
        return super().execute(query, params)


def test_failed_snapshot_leaves_transaction_usable(database: Database) -> None:
    connection = database.connect()
    try:
        with connection.cursor(cursor_factory=FailingTypesCursor) as cursor:
            cursor.execute("SET LOCAL search_path = app_schema, public")
            with pytest.raises(catalog.CatalogError) as raised:
                catalog.snapshot(cursor)
            cursor.execute("SHOW search_path")
            search_path = cursor.fetchone()[0]
            status = connection.info.transaction_status
    finally:
        connection.rollback()
        connection.close()

    assert str(raised.value) == (
        "Cannot read the schema catalog: division by zero (SQLSTATE 22012)."
    )
    assert search_path == "app_schema, public"
    assert status == extensions.TRANSACTION_STATUS_INTRANS


def test_snapshot_in_aborted_transaction(cursor: Any) -> None:
    with pytest.raises(psycopg2.errors.UndefinedTable):
        cursor.execute("SELECT * FROM no_such_table")

    with pytest.raises(catalog.CatalogError) as raised:
        catalog.snapshot(cursor)
    assert str(raised.value) == (
        "Cannot read the schema catalog: the transaction is aborted. Roll it back first."
    )


def test_snapshot_on_autocommit_connection(database: Database) -> None:
    database.query(ITEMS_TABLE)
    connection = database.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            taken = catalog.snapshot(cursor)
            status = connection.info.transaction_status
    finally:
        connection.close()

    assert [item.label for item in taken.of_kind("table")] == ["public.items"]
    assert status == extensions.TRANSACTION_STATUS_IDLE
