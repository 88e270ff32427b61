"""Integration tests of the safety lint against a real server: rows, reltuples, catalog types.

Each test builds tables in a schema of its own, first in its connection's search_path, then
lints migrations that have not run, through a psycopg2 cursor in autocommit mode as the engine
would pass it. The tests of this file share one database, because creating one per test
costs more than the tests themselves. Thresholds are lowered with ``large_table_rows`` so a
few thousand rows count as large.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.execution import (
    prepare,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.safety import (
    Finding,
    lint_migrations,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    load_sources,
)
from pgcluster import Database, PgCluster

pytestmark = pytest.mark.matrix

SAFETY_SQL = Path(__file__).parent.parent / "unit" / "safety_sql"
LARGE = 1_000
NO_TX = "-- dbops:no-transaction\n"


@pytest.fixture(scope="module")
def shared_database(pg_cluster: PgCluster) -> Iterator[Database]:
    name = f"test_safety_{uuid.uuid4().hex[:12]}"
    created = pg_cluster.create_database(name)
    try:
        yield created
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def schema(request: pytest.FixtureRequest) -> str:
    return "s_" + re.sub(r"\W", "_", request.node.name.removeprefix("test_"))[:50]


@pytest.fixture
def conn(shared_database: Database, schema: str) -> Iterator[psycopg2.extensions.connection]:
    """Open an autocommit connection whose search_path starts with the test's own schema."""
    connection = shared_database.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            cursor.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
        yield connection
    finally:
        connection.close()


def execute(conn: psycopg2.extensions.connection, text: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute(text)


def lint(
    conn: psycopg2.extensions.connection, files: list[tuple[str, str]], **options: int
) -> list[Finding]:
    prepared = [prepare(m, conn.server_version) for m in load_sources(files)]
    with conn.cursor() as cursor:
        return lint_migrations(cursor, prepared, conn.server_version, **options)


def found(findings: list[Finding]) -> list[tuple[str, str, int]]:
    return [(finding.script, finding.rule, finding.line) for finding in findings]


def test_index_on_table_with_rows(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint, customer_id bigint);"
        "INSERT INTO orders VALUES (1, 10), (2, 20);"
        "CREATE TABLE audit_log (created_at timestamptz);",
    )
    files = [
        ("V2__index_orders.sql", "CREATE INDEX ON orders (customer_id);"),
        ("V3__index_audit_log.sql", "CREATE INDEX ON audit_log (created_at);"),
    ]
    assert found(lint(conn, files)) == [
        ("V2__index_orders.sql", "create-index-not-concurrently", 1)
    ]


def test_rows_deleted_table_is_empty(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint);"
        "INSERT INTO orders SELECT generate_series(1, 100);"
        "ANALYZE orders; DELETE FROM orders;",
    )
    assert lint(conn, [("V2__index.sql", "CREATE INDEX ON orders (id);")]) == []


def test_not_null_existing_versus_new_table(conn: psycopg2.extensions.connection) -> None:
    execute(conn, "CREATE TABLE customers (id bigint)")
    files = [
        ("V2__create_refunds.sql", "CREATE TABLE refunds (id bigint);"),
        (
            "V3__required_columns.sql",
            "ALTER TABLE refunds ADD COLUMN reason text NOT NULL;\n"
            "ALTER TABLE customers ADD COLUMN region text NOT NULL;",
        ),
    ]
    assert found(lint(conn, files)) == [
        ("V3__required_columns.sql", "add-column-not-null-without-default", 2)
    ]


def test_large_table_needs_analyze(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE events (id bigint, kind text);"
        "INSERT INTO events SELECT g, 'click' FROM generate_series(1, 2000) g;",
    )
    files = [("V2__kind_not_null.sql", "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;")]
    assert lint(conn, files, large_table_rows=LARGE) == []
    execute(conn, "ANALYZE events")
    findings = lint(conn, files, large_table_rows=LARGE)
    assert found(findings) == [("V2__kind_not_null.sql", "set-not-null-on-large-table", 1)]
    assert "about 2000 rows by pg_class.reltuples" in findings[0].why
    assert lint(conn, files) == [], "2000 rows are below the default large_table_rows"


def test_partitions_count_toward_large(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE events (id bigint, kind text) PARTITION BY RANGE (id);"
        "CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000);"
        "CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (1000) TO (2000);"
        "INSERT INTO events SELECT g, 'click' FROM generate_series(400, 1599) g;"
        "ANALYZE events;",
    )
    files = [("V2__kind_not_null.sql", "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;")]
    findings = lint(conn, files, large_table_rows=LARGE)
    assert found(findings) == [("V2__kind_not_null.sql", "set-not-null-on-large-table", 1)]
    assert "about 1200 rows" in findings[0].why


def test_validated_not_null_check(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE events (id bigint, kind text, source text);"
        "INSERT INTO events SELECT g, 'click', 'web' FROM generate_series(1, 2000) g;"
        "ALTER TABLE events ADD CONSTRAINT events_kind_nn CHECK (kind IS NOT NULL);"
        "ALTER TABLE events ADD CONSTRAINT events_source_nn CHECK (source IS NOT NULL) NOT VALID;"
        "ANALYZE events;",
    )
    files = [
        (
            "V2__not_null.sql",
            "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;\n"
            "ALTER TABLE events ALTER COLUMN source SET NOT NULL;",
        )
    ]
    assert found(lint(conn, files, large_table_rows=LARGE)) == [
        ("V2__not_null.sql", "set-not-null-on-large-table", 2)
    ]


def test_default_volatility_from_pg_proc(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint); INSERT INTO orders VALUES (1);"
        "CREATE FUNCTION next_code() RETURNS text VOLATILE LANGUAGE sql AS $$SELECT 'A'$$;"
        "CREATE FUNCTION fixed_code() RETURNS text IMMUTABLE LANGUAGE sql AS $$SELECT 'A'$$;",
    )
    text = (
        "ALTER TABLE orders ADD COLUMN created_at timestamptz DEFAULT now();\n"
        "ALTER TABLE orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();\n"
        "ALTER TABLE orders ADD COLUMN code text DEFAULT next_code();\n"
        "ALTER TABLE orders ADD COLUMN fixed text DEFAULT fixed_code();\n"
        "ALTER TABLE orders ADD COLUMN picked_at timestamptz DEFAULT clock_timestamp();"
    )
    assert found(lint(conn, [("V2__columns.sql", text)])) == [
        ("V2__columns.sql", "add-column-rewrites-table", 2),
        ("V2__columns.sql", "add-column-rewrites-table", 3),
        ("V2__columns.sql", "add-column-rewrites-table", 5),
    ]


def test_column_types_from_catalog(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (status varchar(20), total numeric(10,2), customer_id integer);"
        "INSERT INTO orders VALUES ('new', 1, 1);",
    )
    text = (
        "ALTER TABLE orders ALTER COLUMN status TYPE varchar(50);\n"
        "ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2);\n"
        "ALTER TABLE orders ALTER COLUMN status TYPE text;\n"
        "ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;"
    )
    findings = lint(conn, [("V2__types.sql", text)])
    assert found(findings) == [("V2__types.sql", "alter-column-type-rewrites-table", 4)]
    assert "integer to bigint" in findings[0].why


def test_quoted_and_qualified_names(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        'CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Order Items" (sku text);'
        'INSERT INTO "Sales"."Order Items" VALUES (\'a\');'
        'CREATE TABLE "sales_items" (sku text);',
    )
    text = (
        'CREATE INDEX ON "Sales"."Order Items" (sku);\n'
        'CREATE INDEX ON "Sales".order_items (sku);\n'
        "CREATE INDEX ON SALES_ITEMS (sku);"
    )
    assert found(lint(conn, [("V2__index.sql", text)])) == [
        ("V2__index.sql", "create-index-not-concurrently", 1)
    ]


def test_unique_and_primary_key(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint NOT NULL, number text);"
        "INSERT INTO orders VALUES (1, 'A-1');"
        "CREATE UNIQUE INDEX orders_id_idx ON orders (id);"
        "CREATE TABLE audit_log (id bigint);",
    )
    text = (
        "ALTER TABLE orders ADD CONSTRAINT orders_number_key UNIQUE (number);\n"
        "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_id_idx;\n"
        "ALTER TABLE audit_log ADD PRIMARY KEY (id);"
    )
    assert found(lint(conn, [("V2__keys.sql", text)])) == [
        ("V2__keys.sql", "add-constraint-without-using-index", 1)
    ]


def test_reindex_index_finds_its_table(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint PRIMARY KEY); INSERT INTO orders VALUES (1);"
        'CREATE INDEX "Orders By Id" ON orders (id);'
        "CREATE TABLE audit_log (id bigint PRIMARY KEY);",
    )
    files = [
        (
            "V2__reindex.sql",
            "REINDEX INDEX orders_pkey;\n"
            'REINDEX INDEX "Orders By Id";\n'
            "REINDEX INDEX audit_log_pkey;\n"
            "REINDEX TABLE orders;\n"
            "REINDEX TABLE audit_log;",
        ),
        ("V3__reindex_concurrently.sql", NO_TX + "REINDEX TABLE CONCURRENTLY orders;"),
    ]
    findings = lint(conn, files)
    assert found(findings) == [
        ("V2__reindex.sql", "reindex-not-concurrently", 1),
        ("V2__reindex.sql", "reindex-not-concurrently", 2),
        ("V2__reindex.sql", "reindex-not-concurrently", 4),
    ]
    assert findings[1].why.startswith('REINDEX INDEX "Orders By Id", on s_reindex_index_finds')


def test_vacuum_full_and_cluster(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint PRIMARY KEY); INSERT INTO orders VALUES (1);"
        "CREATE TABLE audit_log (id bigint PRIMARY KEY);",
    )
    files = [
        (
            "V2__vacuum.sql",
            NO_TX + "SET lock_timeout = '2s';\n"
            "VACUUM FULL orders;\n"
            "VACUUM (FULL) audit_log;\n"
            "VACUUM orders;",
        ),
        ("V3__cluster.sql", "CLUSTER orders USING orders_pkey;\nCLUSTER audit_log;"),
    ]
    assert found(lint(conn, files)) == [
        ("V2__vacuum.sql", "vacuum-full", 3),
        ("V3__cluster.sql", "cluster", 1),
    ]


# Locks that the findings' texts name, as pg_locks shows them inside the statement's transaction.
LOCK_CASES = [
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_number_key UNIQUE (number)",
        {"orders": "AccessExclusiveLock"},
        id="add-unique",
    ),
    pytest.param(
        "ALTER TABLE orders ADD PRIMARY KEY (id)",
        {"orders": "AccessExclusiveLock"},
        id="add-primary-key",
    ),
    pytest.param(
        "REINDEX INDEX orders_number_idx",
        {"orders": "ShareLock", "orders_number_idx": "AccessExclusiveLock"},
        id="reindex-index",
    ),
    pytest.param(
        "REINDEX TABLE orders",
        {"orders": "ShareLock", "orders_number_idx": "AccessExclusiveLock"},
        id="reindex-table",
    ),
    pytest.param(
        "CLUSTER orders USING orders_number_idx",
        {"orders": "AccessExclusiveLock"},
        id="cluster",
    ),
]


@pytest.mark.parametrize(("statement", "expected"), LOCK_CASES)
def test_lock_modes_in_findings(
    shared_database: Database, schema: str, statement: str, expected: dict[str, str]
) -> None:
    connection = shared_database.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            cursor.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
            cursor.execute(
                "CREATE TABLE orders (id bigint NOT NULL, number text);"
                "INSERT INTO orders VALUES (1, 'A-1');"
                "CREATE INDEX orders_number_idx ON orders (number);"
            )
            connection.commit()
            cursor.execute(statement)
            cursor.execute(
                "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " WHERE l.pid = pg_backend_pid() AND c.relname = ANY(%s)",
                [list(expected)],
            )
            locks = cursor.fetchall()
    finally:
        connection.rollback()
        connection.close()
    for relation, mode in expected.items():
        assert (relation, mode) in locks, f"{statement}: expected {mode} on {relation}: {locks}"


def test_row_probe_does_not_queue(
    conn: psycopg2.extensions.connection, shared_database: Database, schema: str
) -> None:
    execute(conn, "CREATE TABLE audit_log (created_at timestamptz)")
    holder = shared_database.connect()
    try:
        with holder.cursor() as cursor:
            table = sql.Identifier(schema, "audit_log")
            cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        started = time.monotonic()
        findings = lint(conn, [("V2__index.sql", "CREATE INDEX ON audit_log (created_at);")])
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert found(findings) == [("V2__index.sql", "create-index-not-concurrently", 1)]
    assert elapsed < 5, f"the row probe waited {elapsed:.1f} s for the lock"


def test_lint_leaves_session_unchanged(conn: psycopg2.extensions.connection) -> None:
    execute(
        conn,
        "CREATE TABLE orders (id bigint); INSERT INTO orders VALUES (1);SET lock_timeout = '7s';",
    )
    findings = lint(conn, [("V2__index.sql", "CREATE INDEX ON orders (id);")])
    assert [finding.rule for finding in findings] == ["create-index-not-concurrently"]
    with conn.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "7s"
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
            " AND relation = 'orders'::regclass"
        )
        assert cursor.fetchone()[0] == 0, "the lint still holds a lock on orders"


def test_cursor_in_transaction_rejected(shared_database: Database) -> None:
    connection = shared_database.connect()
    try:
        with connection.cursor() as cursor, pytest.raises(ValueError):
            lint_migrations(cursor, [], connection.server_version)
    finally:
        connection.close()


SHARED_SCHEMA = """
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id integer, status varchar(20), total numeric(10,2),
    legacy_code text, note text, fax_number text, telex_number text
);
INSERT INTO orders (id, customer_id, status, total) SELECT g, g, 'new', 1
FROM generate_series(1, 50) g;
CREATE TABLE events (id bigint, kind text, created_at timestamptz);
INSERT INTO events SELECT g, 'click', now() FROM generate_series(1, 2000) g;
ANALYZE events;
CREATE UNIQUE INDEX events_id_idx ON events (id);
CREATE TABLE audit_log (created_at timestamptz, actor text);
CREATE TABLE order_drafts (id bigint);
INSERT INTO order_drafts VALUES (1);
"""


def test_shared_files_against_server(conn: psycopg2.extensions.connection) -> None:
    execute(conn, SHARED_SCHEMA)
    files = [(path.name, path.read_text(encoding="utf-8")) for path in SAFETY_SQL.glob("*.sql")]
    assert found(lint(conn, files, large_table_rows=LARGE)) == [
        ("V2__index_orders.sql", "create-index-not-concurrently", 1),
        ("V5__add_order_columns.sql", "add-column-rewrites-table", 2),
        ("V5__add_order_columns.sql", "add-column-not-null-without-default", 3),
        ("V6__order_constraints.sql", "add-constraint-without-not-valid", 1),
        ("V8__order_column_types.sql", "alter-column-type-rewrites-table", 4),
        ("V9__drop_and_rename.sql", "drop-column", 1),
        ("V9__drop_and_rename.sql", "rename-column", 2),
        ("V9__drop_and_rename.sql", "rename-table", 3),
        ("V9__drop_and_rename.sql", "drop-table", 4),
        ("V10__not_null.sql", "set-not-null-on-large-table", 2),
        ("V11__index_events.sql", "no-transaction-without-lock-timeout", 3),
        ("V13__silenced_drops.sql", "lint-ignore-without-reason", 3),
        ("V13__silenced_drops.sql", "drop-column", 4),
        ("V14__order_keys.sql", "add-constraint-without-using-index", 3),
        ("V15__rebuild_orders.sql", "reindex-not-concurrently", 4),
        ("V15__rebuild_orders.sql", "vacuum-full", 5),
        ("V15__rebuild_orders.sql", "cluster", 6),
    ]
