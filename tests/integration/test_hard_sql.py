"""Integration tests of the engine on SQL that is hard to split or to run in a transaction.

Each test runs the engine against a fresh database on the throwaway server, then reads
the catalog, the tables and the history table to prove what was, or was not, applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import (
    connection,
    engine,
    sources,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ExecutionError,
    PlanError,
    ScanError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.execution import (
    NO_TRANSACTION_DIRECTIVE,
)
from pgcluster import Database, PgCluster

pytestmark = pytest.mark.matrix

HISTORY = "public.schema_migrations"


def run_migrations(
    database: Database, files: list[tuple[str, str]], **options: object
) -> engine.RunResult:
    """Run the engine on ``files`` against ``database`` with RunOptions built from ``options``."""
    env = database.env
    settings = connection.ConnectionSettings(
        login_host=env["PGHOST"],
        login_port=int(env["PGPORT"]),
        login_user=env["PGUSER"],
        login_password=env["PGPASSWORD"],
        login_db=database.name,
    )
    conn = connection.connect(settings)
    try:
        return engine.run(conn, sources.load_sources(files), engine.RunOptions(**options))
    finally:
        conn.close()


def history(database: Database) -> list[tuple[str | None, str, bool]]:
    """Return (version, type, success) of each history row, oldest first; none without a table."""
    if database.query("SELECT to_regclass(%s)", (HISTORY,)) == [(None,)]:
        return []
    return database.query(f"SELECT version, type, success FROM {HISTORY} ORDER BY installed_rank")


def relation_exists(database: Database, name: str) -> bool:
    return database.query("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", [name])[0][0]


@pytest.fixture
def reader_role(pg_cluster: PgCluster) -> Iterator[str]:
    """Create a NOLOGIN role, and drop it after the test's database is gone."""
    name = f"reader_{uuid.uuid4().hex[:10]}"
    pg_cluster.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    yield name
    pg_cluster.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


STORED_LITERAL = "a; b -- not a comment /* nor this; */ 'quoted' $$ $tag$"

ROUTINES = """\
CREATE TABLE literals (body text);
CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RETURN i + 1;
END;
$$;
CREATE FUNCTION greet(person text) RETURNS text LANGUAGE plpgsql AS $body$
DECLARE
    greeting text := 'hello; ';
BEGIN
    RETURN greeting || person;
END;
$body$;
DO $$
BEGIN
    CREATE TABLE made_by_do (id int);
    INSERT INTO made_by_do VALUES (1);
END
$$;
CREATE FUNCTION double_positive(i int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN i > 0 THEN i * 2 ELSE 0 END;
END;
CREATE PROCEDURE store_twice(value text) LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO literals (body) VALUES (value);
    INSERT INTO literals (body) VALUES (value || '!');
END;
/* a block comment; with a semicolon /* and a nested one; */ still inside */
-- a line comment; with a semicolon
INSERT INTO literals VALUES ('a; b -- not a comment /* nor this; */ ''quoted'' $$ $tag$');
CALL store_twice('called; twice');
"""


def test_routine_bodies_and_literals_apply(database: Database) -> None:
    run_migrations(database, [("V1__routines.sql", ROUTINES)])

    assert database.query("SELECT add_one(1)") == [(2,)], "empty-tag dollar body is wrong"
    assert database.query("SELECT greet('x')") == [("hello; x",)], "named-tag body is wrong"
    assert database.query("SELECT double_positive(4)") == [(8,)], "BEGIN ATOMIC body is wrong"
    assert database.query("SELECT id FROM made_by_do") == [(1,)], "DO block did not run"
    bodies = [row[0] for row in database.query("SELECT body FROM literals ORDER BY body")]
    assert STORED_LITERAL in bodies, "literal with ; -- /* and $$ was not stored byte for byte"
    assert "called; twice" in bodies, "first statement of the procedure body did not run"
    assert "called; twice!" in bodies, "second statement of the procedure body did not run"
    assert history(database) == [("1", "SQL", True)]


FAILING_BODIES = """\
CREATE TABLE checked (id int);
-- The DO body starts on line 3, so the RAISE on line 8 is line 6 of the body.
DO $check$
DECLARE
  found int;
BEGIN
  SELECT count(*) INTO found FROM checked;
  RAISE EXCEPTION 'checked has % rows', found;
END
$check$;
"""


def test_do_block_error_names_file_line(database: Database) -> None:
    with pytest.raises(ExecutionError) as raised:
        run_migrations(database, [("V1__checks.sql", FAILING_BODIES)])

    message = str(raised.value)
    assert message.startswith(
        "Migration V1 (V1__checks.sql, line 8) failed: checked has 0 rows (SQLSTATE P0001)."
    ), message
    assert "Context: PL/pgSQL function inline_code_block line 6 at RAISE." in message
    assert raised.value.line == 8
    assert history(database) == []


def test_error_context_leaves_out_executed_sql(database: Database) -> None:
    secret = f"context-secret-{uuid.uuid4().hex[:8]}"
    body = (
        "CREATE TABLE taken (id int);\n"
        "DO $$\n"
        "BEGIN\n"
        f"  EXECUTE format('CREATE TABLE taken (note text DEFAULT %L)', '{secret}');\n"
        "END\n"
        "$$;\n"
    )

    with pytest.raises(ExecutionError) as raised:
        run_migrations(database, [("V1__executed.sql", body)])

    message = str(raised.value)
    assert "(V1__executed.sql, line 4) failed" in message, message
    assert "Context: PL/pgSQL function inline_code_block line 3 at EXECUTE." in message
    assert secret not in message


ESCAPES = """\
CREATE TABLE escapes (id int, body text);
SET standard_conforming_strings = off;
INSERT INTO escapes VALUES (1, 'tab\\there');
INSERT INTO escapes VALUES (2, 'it\\'s; fine');
INSERT INTO escapes VALUES (3, 'back\\\\slash');
SET standard_conforming_strings = on;
INSERT INTO escapes VALUES (4, 'back\\slash');
INSERT INTO escapes VALUES (5, E'line\\none');
"""


def test_backslash_escapes_follow_setting(database: Database) -> None:
    run_migrations(database, [("V1__escapes.sql", ESCAPES)])

    assert database.query("SELECT id, body FROM escapes ORDER BY id") == [
        (1, "tab\there"),
        (2, "it's; fine"),
        (3, "back\\slash"),
        (4, "back\\slash"),
        (5, "line\none"),
    ]


PARTS_TABLE = "CREATE TABLE parts (id int, sku text, name text);\n"
PARTS_INDEXES = (
    "CREATE INDEX CONCURRENTLY parts_sku_idx ON parts (sku);\n"
    "CREATE INDEX CONCURRENTLY parts_name_idx ON parts (name);\n"
)


def test_concurrent_index_needs_directive(database: Database) -> None:
    with pytest.raises(ScanError) as raised:
        run_migrations(database, [("V1__parts.sql", PARTS_TABLE + PARTS_INDEXES)])

    message = str(raised.value)
    assert "line 2: CREATE INDEX CONCURRENTLY parts_sku_idx" in message
    assert "line 3: CREATE INDEX CONCURRENTLY parts_name_idx" in message
    assert NO_TRANSACTION_DIRECTIVE in message
    assert history(database) == [], "a rejected file left a history row"
    assert not relation_exists(database, "parts"), "a statement of a rejected file ran"


def test_concurrent_index_with_directive(database: Database) -> None:
    files = [
        ("V1__parts.sql", PARTS_TABLE),
        ("V2__parts_indexes.sql", f"{NO_TRANSACTION_DIRECTIVE}\n{PARTS_INDEXES}"),
    ]

    run_migrations(database, files)

    valid = database.query(
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_catalog.pg_index"
        " WHERE indrelid = 'parts'::regclass ORDER BY 1"
    )
    assert valid == [("parts_name_idx", True), ("parts_sku_idx", True)]
    assert history(database) == [("1", "SQL", True), ("2", "SQL_NO_TRANSACTION", True)]


ACCOUNTS = """\
CREATE TABLE accounts (id int, email text);
INSERT INTO accounts VALUES (1, 'a@example.org'), (2, 'a@example.org');
"""
ACCOUNTS_INDEXES = f"""\
{NO_TRANSACTION_DIRECTIVE}
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_id_idx ON accounts (id);
CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email);
"""


def test_no_transaction_failure_then_retry(database: Database) -> None:
    files = [("V1__accounts.sql", ACCOUNTS), ("V2__accounts_indexes.sql", ACCOUNTS_INDEXES)]

    with pytest.raises(ExecutionError) as raised:
        run_migrations(database, files)

    message = str(raised.value)
    assert "line 3" in message, message
    assert "before that line stay committed" in message, message
    assert "invalid index accounts_email_key" in message, message
    assert history(database) == [("1", "SQL", True), ("2", "SQL_NO_TRANSACTION", False)]
    assert relation_exists(database, "accounts_id_idx"), "the committed first index is gone"

    with pytest.raises(PlanError, match="resolve_failed"):
        run_migrations(database, files)

    database.query("DROP INDEX CONCURRENTLY accounts_email_key")
    database.query("DELETE FROM accounts WHERE id = 2")
    result = run_migrations(database, files, resolve_failed="retry")

    assert [entry["version"] for entry in result.applied] == ["2"]
    assert any("resolve_failed=retry" in warning for warning in result.warnings), result.warnings
    assert history(database) == [("1", "SQL", True), ("2", "SQL_NO_TRANSACTION", True)]
    valid = database.query(
        "SELECT indisvalid FROM pg_catalog.pg_index"
        " WHERE indexrelid = 'accounts_email_key'::regclass"
    )
    assert valid == [(True,)]


def test_retry_with_invalid_index_left_fails(database: Database) -> None:
    guarded = ACCOUNTS_INDEXES.replace(
        "UNIQUE INDEX CONCURRENTLY accounts_email_key",
        'UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "Accounts_Email_Key"',
    )
    files = [("V1__accounts.sql", ACCOUNTS), ("V2__accounts_indexes.sql", guarded)]
    with pytest.raises(ExecutionError):
        run_migrations(database, files)

    # The retry skips the invalid index, because IF NOT EXISTS finds it, and must not pass.
    with pytest.raises(ExecutionError) as raised:
        run_migrations(database, files, resolve_failed="retry")

    message = str(raised.value)
    assert message.startswith("Migration V2 (V2__accounts_indexes.sql) finished, but"), message
    assert 'invalid index "Accounts_Email_Key"' in message, message
    assert history(database) == [("1", "SQL", True), ("2", "SQL_NO_TRANSACTION", False)]


def test_enum_add_value_in_transaction(database: Database) -> None:
    files = [
        ("V1__mood.sql", "CREATE TYPE mood AS ENUM ('sad', 'happy');\n"),
        ("V2__mood_value.sql", "ALTER TYPE mood ADD VALUE 'calm' AFTER 'sad';\n"),
    ]

    run_migrations(database, files)

    labels = database.query("SELECT pg_catalog.enum_range(NULL::mood)::text")
    assert labels == [("{sad,calm,happy}",)]
    assert history(database) == [("1", "SQL", True), ("2", "SQL", True)]


def test_transaction_control_rejected(database: Database) -> None:
    text = (
        "CREATE TABLE ledger (id int);\n"
        "COMMIT;\n"
        "CREATE INDEX ledger_id_idx ON ledger (id);\n"
        "BEGIN;\n"
        "INSERT INTO ledger VALUES (1);\n"
    )

    with pytest.raises(ScanError) as raised:
        run_migrations(database, [("V1__ledger.sql", text)])

    assert [line for line, _problem in raised.value.problems] == [2, 4]
    assert "line 2: transaction control statement COMMIT" in str(raised.value)
    assert "line 4: transaction control statement BEGIN" in str(raised.value)
    assert not relation_exists(database, "ledger"), "a statement of a rejected file ran"
    assert history(database) == []


def test_vacuum_needs_directive(database: Database) -> None:
    table = ("V1__samples.sql", "CREATE TABLE samples (id int);\n")
    in_transaction = ("V2__vacuum.sql", "INSERT INTO samples VALUES (1);\nVACUUM samples;\n")

    with pytest.raises(ScanError, match="line 2: VACUUM samples cannot run inside"):
        run_migrations(database, [table, in_transaction])
    assert not relation_exists(database, "samples"), "V1 ran although V2 was rejected"
    assert history(database) == []

    with_directive = ("V2__vacuum.sql", f"{NO_TRANSACTION_DIRECTIVE}\nVACUUM (ANALYZE) samples;\n")
    run_migrations(database, [table, with_directive])
    assert history(database) == [("1", "SQL", True), ("2", "SQL_NO_TRANSACTION", True)]


COLORS = """\
CREATE TABLE colors (id serial PRIMARY KEY, name text NOT NULL);
COPY colors (id, name) FROM stdin;
1\tred
2\tgreen; with a semicolon
3\tblue
\\.
SELECT pg_catalog.setval('colors_id_seq', 3, true);
"""


def test_copy_from_stdin_and_setval(database: Database) -> None:
    run_migrations(database, [("V1__colors.sql", COLORS)])

    assert database.query("SELECT id, name FROM colors ORDER BY id") == [
        (1, "red"),
        (2, "green; with a semicolon"),
        (3, "blue"),
    ]
    assert database.query("SELECT last_value, is_called FROM colors_id_seq") == [(3, True)]


def test_copy_from_stdin_check_mode(database: Database) -> None:
    result = run_migrations(database, [("V1__colors.sql", COLORS)], check_mode=True)

    assert [entry["verified"] for entry in result.applied] == [True]
    assert not relation_exists(database, "colors"), "check mode left the table behind"
    assert not relation_exists(database, HISTORY), "check mode created the history table"


def test_meta_commands_rejected_before_run(database: Database) -> None:
    earlier = ("V1__base.sql", "CREATE TABLE base (id int);\n")
    meta = (
        "V2__meta.sql",
        "\\set ON_ERROR_STOP on\n"
        "CREATE TABLE other (id int);\n"
        "\\connect reporting\n"
        "\\i extra.sql\n",
    )

    with pytest.raises(ScanError) as raised:
        run_migrations(database, [earlier, meta])

    assert [line for line, _problem in raised.value.problems] == [1, 3, 4]
    message = str(raised.value)
    assert "V2__meta.sql" in message
    for command in ("\\set", "\\connect", "\\i"):
        assert f"psql meta-command {command} " in message, command
    assert not relation_exists(database, "base"), "V1 ran although V2 was rejected"
    assert not relation_exists(database, "other"), "a statement of V2 ran"
    assert history(database) == []


def test_bom_and_crlf_normalised(database: Database) -> None:
    lf_text = "CREATE TABLE notes (body text);\nINSERT INTO notes VALUES ('first\nsecond');\n"
    crlf_text = "\ufeff" + lf_text.replace("\n", "\r\n")

    run_migrations(database, [("V1__notes.sql", crlf_text)])

    assert database.query("SELECT body FROM notes") == [("first\nsecond",)]
    stored = database.query(f"SELECT checksum FROM {HISTORY}")
    assert stored == [(sources.checksum(lf_text),)], "checksum differs from the LF file's"
    rerun = run_migrations(database, [("V1__notes.sql", lf_text)])
    assert rerun.applied == [], "the LF file was seen as a different migration"


ORDERS = """\
CREATE TABLE orders (id int, customer text, region text, amount numeric(10, 2));
INSERT INTO orders VALUES (1, 'ann', 'north', 5.50), (2, 'bob', 'south', 12.25);
"""
VIEWS_V1 = """\
CREATE OR REPLACE VIEW order_totals AS SELECT id, customer, amount FROM orders;
CREATE OR REPLACE VIEW order_labels AS SELECT id, customer FROM orders;
CREATE OR REPLACE VIEW order_amounts AS SELECT id, amount FROM orders;
"""
VIEWS_V2 = """\
CREATE OR REPLACE VIEW order_totals AS SELECT id, amount FROM orders;
CREATE OR REPLACE VIEW order_labels AS SELECT id, region, customer FROM orders;
CREATE OR REPLACE VIEW order_amounts AS SELECT id, amount::text AS amount FROM orders;
"""
VIEWS_V3 = """\
CREATE OR REPLACE VIEW order_totals AS SELECT id, amount FROM orders;
CREATE OR REPLACE VIEW order_labels AS SELECT id, region, customer FROM orders;
CREATE MATERIALIZED VIEW order_amounts AS SELECT id, amount::text AS amount FROM orders;
"""


def view_columns(database: Database, name: str) -> list[tuple[str, str]]:
    return database.query(
        "SELECT attname, pg_catalog.format_type(atttypid, atttypmod)"
        " FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " ORDER BY attnum",
        [name],
    )


def test_repeatable_views_recreated(reader_role: str, database: Database) -> None:
    dependent = (
        "V2__large_amounts.sql",
        "CREATE VIEW large_amounts AS SELECT id, amount FROM order_amounts WHERE id > 1;\n"
        f'GRANT SELECT ON order_totals TO "{reader_role}";\n'
        "COMMENT ON VIEW order_labels IS 'Customer label per order';\n",
    )
    run_migrations(database, [("V1__orders.sql", ORDERS), ("R__views.sql", VIEWS_V1)])
    run_migrations(database, [("V1__orders.sql", ORDERS), dependent, ("R__views.sql", VIEWS_V1)])

    for statement in VIEWS_V2.splitlines():
        with pytest.raises(psycopg2.Error) as refused:
            database.query(statement)
        assert refused.value.pgcode == "42P16", f"CREATE OR REPLACE accepted: {statement}"

    files = [("V1__orders.sql", ORDERS), dependent, ("R__views.sql", VIEWS_V2)]
    result = run_migrations(database, files)

    assert [entry["script"] for entry in result.applied] == ["R__views.sql"]
    assert view_columns(database, "order_totals") == [
        ("id", "integer"),
        ("amount", "numeric(10,2)"),
    ]
    assert view_columns(database, "order_labels") == [
        ("id", "integer"),
        ("region", "text"),
        ("customer", "text"),
    ]
    assert view_columns(database, "order_amounts") == [("id", "integer"), ("amount", "text")]
    assert database.query("SELECT id, amount FROM large_amounts") == [(2, "12.25")]
    grant = database.query(
        "SELECT pg_catalog.has_table_privilege(%s, 'order_totals', 'SELECT')", [reader_role]
    )
    assert grant == [(True,)], "GRANT SELECT on the replaced view was lost"
    comment = database.query("SELECT pg_catalog.obj_description('order_labels'::regclass)")
    assert comment == [("Customer label per order",)], "COMMENT on the replaced view was lost"

    files[-1] = ("R__views.sql", VIEWS_V3)
    run_migrations(database, files)

    kind = database.query(
        "SELECT relkind, relispopulated FROM pg_class WHERE relname = %s", ["order_amounts"]
    )
    assert kind == [("m", True)], "order_amounts is not a populated materialized view"
    assert database.query("SELECT id, amount FROM large_amounts") == [(2, "12.25")]
    assert [row[2] for row in history(database)] == [True, True, True, True, True]


DEPENDENT_WITH_SETTINGS = """\
CREATE VIEW guarded_orders WITH (security_barrier = true) AS
    SELECT id, customer, amount FROM order_totals WHERE amount > 0
    WITH CASCADED CHECK OPTION;
ALTER VIEW guarded_orders ALTER COLUMN amount SET DEFAULT 7;
CREATE FUNCTION guarded_orders_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO orders (id, customer, amount) VALUES (NEW.id, NEW.customer, NEW.amount);
    RETURN NEW;
END
$$;
CREATE TRIGGER guarded_orders_insert INSTEAD OF INSERT ON guarded_orders
    FOR EACH ROW EXECUTE FUNCTION guarded_orders_insert();
"""


def test_recreated_dependent_keeps_settings(reader_role: str, database: Database) -> None:
    dependent = ("V2__guarded_orders.sql", DEPENDENT_WITH_SETTINGS)
    grant = ("V3__grant.sql", f'GRANT UPDATE (customer) ON guarded_orders TO "{reader_role}";\n')
    files = [("V1__orders.sql", ORDERS), dependent, grant, ("R__views.sql", VIEWS_V1)]
    run_migrations(database, [("V1__orders.sql", ORDERS), ("R__views.sql", VIEWS_V1)])
    run_migrations(database, files)
    before = database.query("SELECT oid FROM pg_class WHERE relname = 'guarded_orders'")

    # order_labels gains a column before an old one, which CREATE OR REPLACE VIEW rejects,
    # so the file's views and guarded_orders, which reads order_totals, are created again.
    widened = VIEWS_V1.replace(
        "SELECT id, customer, amount FROM orders", "SELECT id, customer, amount, region FROM orders"
    ).replace("order_labels AS SELECT id, customer", "order_labels AS SELECT id, region, customer")
    files[-1] = ("R__views.sql", widened)
    run_migrations(database, files)

    after = database.query("SELECT oid FROM pg_class WHERE relname = 'guarded_orders'")
    assert after != before, "guarded_orders was not recreated, so the test proves nothing"
    options = database.query("SELECT reloptions FROM pg_class WHERE relname = 'guarded_orders'")
    assert options == [(["security_barrier=true", "check_option=cascaded"],)]
    database.query("INSERT INTO guarded_orders (id, customer) VALUES (3, 'cy')")
    assert database.query("SELECT amount FROM orders WHERE id = 3") == [(7,)]
    privilege = database.query(
        "SELECT pg_catalog.has_column_privilege(%s, 'guarded_orders', 'customer', 'UPDATE')",
        [reader_role],
    )
    assert privilege == [(True,)], "the column grant was lost"


def test_unquoted_camel_case_column(database: Database) -> None:
    table = ("V1__users.sql", 'CREATE TABLE "User" (id int, "fullName" text);\n')
    update = (
        "V2__user_names.sql",
        "INSERT INTO \"User\" VALUES (1, 'Ann');\nUPDATE \"User\"\nSET fullName = 'Ann Lee';\n",
    )

    with pytest.raises(ExecutionError) as raised:
        run_migrations(database, [table, update])

    assert raised.value.sqlstate == "42703"
    assert raised.value.line == 3, str(raised.value)
    assert "V2__user_names.sql, line 3" in str(raised.value)
    assert database.query('SELECT count(*) FROM "User"') == [(0,)], "V2's INSERT was committed"
    assert history(database) == [("1", "SQL", True)]
