"""Unit tests of the SQL scanner: statement splitting, rejected input, COPY data, autocommit.

Every SQL input is a small migration written for these tests. Line numbers in the expected
values count from 1 at the first line of the input.
"""

from __future__ import annotations

import textwrap

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.scanner import (
    Statement,
    needs_autocommit,
    scan,
)


def sql(block: str) -> str:
    """Return a triple-quoted SQL block without its indentation and its leading newline."""
    return textwrap.dedent(block).removeprefix("\n")


def transaction_control_problem(command: str) -> str:
    return (
        f"transaction control statement {command} is not allowed: the engine runs each "
        "migration in a transaction of its own, or, in a file marked -- dbops:no-transaction, "
        "commits each statement on its own"
    )


# Each case: the migration text, then (start line, exact text) of every statement in order.
SPLIT_CASES = [
    pytest.param(
        sql(
            """
            CREATE FUNCTION next_invoice_number() RETURNS bigint
            LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE counters SET value = value + 1 WHERE name = 'invoice';
                RETURN (SELECT value FROM counters WHERE name = 'invoice');
            END;
            $$;
            CREATE FUNCTION touch_updated_at() RETURNS trigger
            LANGUAGE plpgsql AS $body$
            BEGIN
                NEW.updated_at := now();
                RETURN NEW;
            END;
            $body$;
            CREATE TRIGGER invoices_touch BEFORE UPDATE ON invoices
                FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
            """
        ),
        [
            (
                1,
                sql(
                    """
                    CREATE FUNCTION next_invoice_number() RETURNS bigint
                    LANGUAGE plpgsql AS $$
                    BEGIN
                        UPDATE counters SET value = value + 1 WHERE name = 'invoice';
                        RETURN (SELECT value FROM counters WHERE name = 'invoice');
                    END;
                    $$;"""
                ),
            ),
            (
                8,
                sql(
                    """
                    CREATE FUNCTION touch_updated_at() RETURNS trigger
                    LANGUAGE plpgsql AS $body$
                    BEGIN
                        NEW.updated_at := now();
                        RETURN NEW;
                    END;
                    $body$;"""
                ),
            ),
            (
                15,
                "CREATE TRIGGER invoices_touch BEFORE UPDATE ON invoices\n"
                "    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();",
            ),
        ],
        id="dollar-quoted-bodies",
    ),
    pytest.param(
        sql(
            """
            CREATE FUNCTION label_of(code text) RETURNS text LANGUAGE plpgsql AS $fn$
            BEGIN
                RETURN $$code; $$ || code;
            END;
            $fn$;
            SELECT label_of('a');
            """
        ),
        [
            (
                1,
                sql(
                    """
                    CREATE FUNCTION label_of(code text) RETURNS text LANGUAGE plpgsql AS $fn$
                    BEGIN
                        RETURN $$code; $$ || code;
                    END;
                    $fn$;"""
                ),
            ),
            (6, "SELECT label_of('a');"),
        ],
        id="empty-tag-inside-named-tag",
    ),
    pytest.param(
        sql(
            """
            DO $$
            DECLARE
                missing integer;
            BEGIN
                SELECT count(*) INTO missing FROM invoices WHERE customer_id IS NULL;
                IF missing > 0 THEN
                    RAISE EXCEPTION '% invoices have no customer', missing;
                END IF;
            END
            $$;
            ALTER TABLE invoices ALTER COLUMN customer_id SET NOT NULL;
            """
        ),
        [
            (
                1,
                sql(
                    """
                    DO $$
                    DECLARE
                        missing integer;
                    BEGIN
                        SELECT count(*) INTO missing FROM invoices WHERE customer_id IS NULL;
                        IF missing > 0 THEN
                            RAISE EXCEPTION '% invoices have no customer', missing;
                        END IF;
                    END
                    $$;"""
                ),
            ),
            (11, "ALTER TABLE invoices ALTER COLUMN customer_id SET NOT NULL;"),
        ],
        id="do-block",
    ),
    pytest.param(
        sql(
            """
            CREATE FUNCTION gross_amount(net numeric, rate numeric) RETURNS numeric
            LANGUAGE SQL
            BEGIN ATOMIC
                SELECT round(net * (1 + rate), 2);
            END;
            CREATE PROCEDURE archive_invoice(invoice_id bigint)
            LANGUAGE SQL
            BEGIN ATOMIC
                INSERT INTO invoices_archive SELECT * FROM invoices WHERE id = invoice_id;
                DELETE FROM invoices WHERE id = invoice_id;
            END;
            CALL archive_invoice(1);
            """
        ),
        [
            (
                1,
                sql(
                    """
                    CREATE FUNCTION gross_amount(net numeric, rate numeric) RETURNS numeric
                    LANGUAGE SQL
                    BEGIN ATOMIC
                        SELECT round(net * (1 + rate), 2);
                    END;"""
                ),
            ),
            (
                6,
                sql(
                    """
                    CREATE PROCEDURE archive_invoice(invoice_id bigint)
                    LANGUAGE SQL
                    BEGIN ATOMIC
                        INSERT INTO invoices_archive SELECT * FROM invoices WHERE id = invoice_id;
                        DELETE FROM invoices WHERE id = invoice_id;
                    END;"""
                ),
            ),
            (12, "CALL archive_invoice(1);"),
        ],
        id="begin-atomic-bodies",
    ),
    pytest.param(
        sql(
            """
            CREATE FUNCTION invoice_state(paid boolean) RETURNS text
            LANGUAGE SQL
            BEGIN ATOMIC
                SELECT CASE WHEN paid THEN 'paid' ELSE 'open' END;
            END;
            UPDATE invoices SET state = CASE WHEN paid THEN 'paid' ELSE 'open' END;
            SELECT 1;
            """
        ),
        [
            (
                1,
                sql(
                    """
                    CREATE FUNCTION invoice_state(paid boolean) RETURNS text
                    LANGUAGE SQL
                    BEGIN ATOMIC
                        SELECT CASE WHEN paid THEN 'paid' ELSE 'open' END;
                    END;"""
                ),
            ),
            (
                6,
                "UPDATE invoices SET state = CASE WHEN paid THEN 'paid' ELSE 'open' END;",
            ),
            (7, "SELECT 1;"),
        ],
        id="case-end",
    ),
    pytest.param(
        sql(
            """
            INSERT INTO notes (body) VALUES ('stop; start'), ('-- kept'), ('/* kept */');
            INSERT INTO notes (body) VALUES ('it''s; fine');
            """
        ),
        [
            (
                1,
                "INSERT INTO notes (body) VALUES ('stop; start'), ('-- kept'), ('/* kept */');",
            ),
            (2, "INSERT INTO notes (body) VALUES ('it''s; fine');"),
        ],
        id="string-literals",
    ),
    pytest.param(
        sql(
            """
            -- the next statement; it's the first one
            SELECT 1;
            /* a block comment; it's
               on two lines */
            SELECT 2 /* inline; it's */ + 3;
            """
        ),
        [(2, "SELECT 1;"), (5, "SELECT 2 /* inline; it's */ + 3;")],
        id="comments",
    ),
    pytest.param(
        sql(
            """
            /* a /* b */ c; */
            SELECT 1;
            """
        ),
        [(2, "SELECT 1;")],
        id="nested-block-comment",
    ),
    pytest.param(
        sql(
            '''
            CREATE TABLE "order;lines" ("say ""hi""" text, "a;b" int);
            SELECT "a;b" FROM "order;lines";
            '''
        ),
        [
            (1, 'CREATE TABLE "order;lines" ("say ""hi""" text, "a;b" int);'),
            (2, 'SELECT "a;b" FROM "order;lines";'),
        ],
        id="quoted-identifiers",
    ),
    pytest.param(
        sql(
            r"""
            INSERT INTO notes VALUES (E'it\'s; x');
            INSERT INTO paths VALUES ('C:\temp\');
            SET standard_conforming_strings = off;
            INSERT INTO notes VALUES ('legacy \' quote; y');
            SET standard_conforming_strings = on;
            INSERT INTO paths VALUES ('D:\data\');
            """
        ),
        [
            (1, r"INSERT INTO notes VALUES (E'it\'s; x');"),
            (2, r"INSERT INTO paths VALUES ('C:\temp\');"),
            (3, "SET standard_conforming_strings = off;"),
            (4, r"INSERT INTO notes VALUES ('legacy \' quote; y');"),
            (5, "SET standard_conforming_strings = on;"),
            (6, r"INSERT INTO paths VALUES ('D:\data\');"),
        ],
        id="backslash-escapes",
    ),
    pytest.param(
        sql(
            """
            PREPARE find_invoice(bigint) AS SELECT * FROM invoices WHERE id = $1;
            SELECT U&'semi;colon';
            """
        ),
        [
            (1, "PREPARE find_invoice(bigint) AS SELECT * FROM invoices WHERE id = $1;"),
            (2, "SELECT U&'semi;colon';"),
        ],
        id="parameter-and-unicode-string",
    ),
    pytest.param(
        "SELECT 1;\n-- trailing comment\nSELECT 2\n",
        [(1, "SELECT 1;"), (3, "SELECT 2\n")],
        id="last-statement-without-semicolon",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_scan_reports_no_problems(text: str, expected: list[tuple[int, str]]) -> None:
    assert scan(text).problems == []


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_scan_statement_count(text: str, expected: list[tuple[int, str]]) -> None:
    assert len(scan(text).statements) == len(expected)


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_scan_statement_lines(text: str, expected: list[tuple[int, str]]) -> None:
    lines = [statement.line for statement in scan(text).statements]
    assert lines == [line for line, _text in expected]


@pytest.mark.parametrize(("text", "expected"), SPLIT_CASES)
def test_scan_statement_texts(text: str, expected: list[tuple[int, str]]) -> None:
    texts = [statement.text for statement in scan(text).statements]
    assert texts == [statement_text for _line, statement_text in expected]


def test_scan_begin_as_column_name() -> None:
    # Like psql, the scanner counts BEGIN as opening a body only in CREATE [OR REPLACE]
    # FUNCTION or PROCEDURE outside parentheses, so the column named begin opens nothing.
    result = scan("CREATE TABLE shifts (id int, begin time);\nCOMMIT;\nSELECT 1;\n")
    assert [statement.line for statement in result.statements] == [1, 2, 3]
    assert result.problems == [(2, transaction_control_problem("COMMIT"))]


# Each case: a SET or RESET statement, and whether standard_conforming_strings is on after it.
CONFORMING_STRINGS_CASES = [
    pytest.param("SET standard_conforming_strings = off;", False, id="set-equals-off"),
    pytest.param("SET standard_conforming_strings TO 'off';", False, id="set-to-quoted-off"),
    pytest.param("SET SESSION standard_conforming_strings = false;", False, id="set-session-false"),
    pytest.param("SET LOCAL standard_conforming_strings TO 0;", False, id="set-local-zero"),
    pytest.param("set standard_conforming_strings = OFF;", False, id="lower-case-set"),
    pytest.param("SET standard_conforming_strings = on;", True, id="set-on"),
    pytest.param("RESET standard_conforming_strings;", True, id="reset-setting"),
    pytest.param("RESET ALL;", True, id="reset-all"),
]


@pytest.mark.parametrize(("setting", "conforming"), CONFORMING_STRINGS_CASES)
def test_scan_follows_standard_conforming_strings(setting: str, conforming: bool) -> None:
    # With the setting on, the string ends at \' and "-- ';" is a comment, so the two
    # SELECT lines form one statement. With it off, \' is an escaped quote, the string
    # ends at the quote before ";", and the two lines are two statements. The scan starts
    # with the opposite setting, so only the SET or RESET can produce the expected count.
    text = setting + "\nSELECT 'a\\' -- ';\nSELECT 1;\n"
    result = scan(text, standard_conforming_strings=not conforming)
    assert result.problems == []
    assert len(result.statements) == (2 if conforming else 3)


def test_scan_starts_with_conforming_strings_off() -> None:
    result = scan("SELECT 'a\\'; b';\n", standard_conforming_strings=False)
    assert [statement.text for statement in result.statements] == ["SELECT 'a\\'; b';"]


META_COMMAND_FILE = sql(
    r"""
    \set ON_ERROR_STOP on
    \connect other_db
    \i ./file.sql
    \copy invoices FROM 'invoices.csv' WITH (FORMAT csv)
    \restrict key
    SELECT E'\\connect';
    """
)


def test_scan_meta_command_problems() -> None:
    assert scan(META_COMMAND_FILE).problems == [
        (1, "psql meta-command \\set is not SQL and only psql understands it; remove it"),
        (
            2,
            "psql meta-command \\connect is not SQL; a migration runs in the database it is "
            "applied to, so move these statements to the migrations of the other database",
        ),
        (3, "psql meta-command \\i is not SQL; make the included file a migration of its own"),
        (
            4,
            "psql meta-command \\copy is not SQL; use COPY ... FROM stdin with the rows inline, "
            "ended by a line \\.",
        ),
        (5, "psql meta-command \\restrict is not SQL and only psql understands it; remove it"),
    ]


def test_scan_backslash_in_literal_is_data() -> None:
    statements = scan(META_COMMAND_FILE).statements
    assert [(s.line, s.text) for s in statements] == [(6, "SELECT E'\\\\connect';")]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param(
            "\\c reporting",
            "psql meta-command \\c is not SQL; a migration runs in the database it is applied "
            "to, so move these statements to the migrations of the other database",
            id="c",
        ),
        pytest.param(
            "\\ir ../common/grants.sql",
            "psql meta-command \\ir is not SQL; make the included file a migration of its own",
            id="ir",
        ),
        pytest.param(
            "\\include grants.sql",
            "psql meta-command \\include is not SQL; make the included file a migration of its own",
            id="include",
        ),
        pytest.param(
            "\\gset",
            "psql meta-command \\gset is not SQL and only psql understands it; remove it",
            id="gset",
        ),
    ],
)
def test_scan_meta_command_message(line: str, problem: str) -> None:
    assert scan("SELECT 1;\n" + line + "\n").problems == [(2, problem)]


def test_scan_transaction_control_problems() -> None:
    text = sql(
        """
        BEGIN;
        CREATE TABLE payments (id bigint);
        COMMIT;
        START TRANSACTION;
        SAVEPOINT before_fill;
        INSERT INTO payments VALUES (1);
        ROLLBACK TO SAVEPOINT before_fill;
        END;
        begin;
        ROLLBACK;
        """
    )
    assert scan(text).problems == [
        (1, transaction_control_problem("BEGIN")),
        (3, transaction_control_problem("COMMIT")),
        (4, transaction_control_problem("START TRANSACTION")),
        (8, transaction_control_problem("END")),
        (9, transaction_control_problem("BEGIN")),
        (10, transaction_control_problem("ROLLBACK")),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("SAVEPOINT before_fill;", id="savepoint"),
        pytest.param("ROLLBACK TO SAVEPOINT before_fill;", id="rollback-to-savepoint"),
        pytest.param("ROLLBACK TO before_fill;", id="rollback-to"),
        pytest.param("RELEASE SAVEPOINT before_fill;", id="release-savepoint"),
        pytest.param("ROLLBACK WORK TO SAVEPOINT before_fill;", id="rollback-work-to-savepoint"),
        pytest.param("ROLLBACK TRANSACTION TO before_fill;", id="rollback-transaction-to"),
    ],
)
def test_scan_allows_savepoint_statement(statement: str) -> None:
    assert scan(statement + "\n").problems == []


UNTERMINATED_CASES = [
    pytest.param(
        "SELECT 1;\nSELECT 'open;\nSELECT 2;\n",
        (2, "unterminated quoted string"),
        id="quote",
    ),
    pytest.param(
        "SELECT 1;\nSELECT E'open\\';\nSELECT 2;\n",
        (2, "unterminated quoted string"),
        id="escape-string",
    ),
    pytest.param(
        "SELECT 1;\n\nCREATE FUNCTION f() RETURNS int AS $body$\nSELECT 1;\n",
        (3, "unterminated dollar-quoted string $body$"),
        id="named-dollar-quote",
    ),
    pytest.param(
        "SELECT 1;\nDO $$\nBEGIN\n",
        (2, "unterminated dollar-quoted string $$"),
        id="empty-dollar-quote",
    ),
    pytest.param(
        "SELECT 1;\n/* open\nSELECT 2;\n",
        (2, "unterminated /* comment"),
        id="block-comment",
    ),
    pytest.param(
        "SELECT 1;\n/* outer /* inner */\nSELECT 2;\n",
        (2, "unterminated /* comment"),
        id="nested-block-comment",
    ),
    pytest.param(
        'SELECT 1;\nSELECT "open;\nFROM t;\n',
        (2, "unterminated quoted identifier"),
        id="quoted-identifier",
    ),
]


@pytest.mark.parametrize(("text", "problem"), UNTERMINATED_CASES)
def test_scan_unterminated_problem(text: str, problem: tuple[int, str]) -> None:
    assert scan(text).problems == [problem]


@pytest.mark.parametrize(("text", "problem"), UNTERMINATED_CASES)
def test_scan_keeps_statements_before_unterminated(text: str, problem: tuple[int, str]) -> None:
    assert [statement.text for statement in scan(text).statements] == ["SELECT 1;"]


COPY_FILE = (
    "CREATE TABLE rates (code text, amount numeric);\n"
    "COPY rates (code, amount) FROM stdin;\n"
    "eur\t1.00\n"
    "it's; -- not sql\t2.50\n"
    "\\.\n"
    "INSERT INTO rates VALUES ('usd', 1.08);\n"
)


def test_copy_statement_text() -> None:
    statements = scan(COPY_FILE).statements
    assert [(s.line, s.text) for s in statements[:2]] == [
        (1, "CREATE TABLE rates (code text, amount numeric);"),
        (2, "COPY rates (code, amount) FROM stdin;"),
    ]


def test_copy_data_holds_rows() -> None:
    copy = scan(COPY_FILE).statements[1]
    assert copy.copy_data == "eur\t1.00\nit's; -- not sql\t2.50\n"


def test_copy_other_statements_have_no_data() -> None:
    statements = scan(COPY_FILE).statements
    assert [s.copy_data for s in statements] == [None, "eur\t1.00\nit's; -- not sql\t2.50\n", None]


def test_copy_statement_after_terminator() -> None:
    result = scan(COPY_FILE)
    assert result.problems == []
    assert len(result.statements) == 3
    assert result.statements[2].line == 6
    assert result.statements[2].text == "INSERT INTO rates VALUES ('usd', 1.08);"


def test_copy_lower_case_from_stdin() -> None:
    copy = scan("copy rates from stdin;\nchf\t0.95\n\\.\n").statements[0]
    assert copy.copy_data == "chf\t0.95\n"


def test_copy_without_terminator() -> None:
    result = scan("SELECT 1;\nCOPY rates (code, amount) FROM stdin;\neur\t1.00\nSELECT 2;\n")
    assert result.problems == [(2, "COPY FROM stdin data is not ended by a line \\.")]


def test_copy_at_end_of_file() -> None:
    result = scan("COPY rates (code, amount) FROM stdin;")
    assert result.problems == [(1, "COPY FROM stdin has no data lines ended by \\.")]


def test_copy_long_column_list() -> None:
    # FROM stdin comes after the 16th word, past the words that Statement.leading_words keeps.
    columns = ", ".join(f"c{number}" for number in range(1, 15))
    text = f"COPY public.readings ({columns}) FROM stdin;\n1\t2\n\\.\nSELECT 1;\n"
    result = scan(text)
    assert result.problems == []
    assert result.statements[0].copy_data == "1\t2\n"


def first_statement(text: str) -> Statement:
    return scan(text).statements[0]


PG11 = 110000
PG15 = 150000

AUTOCOMMIT_CASES = [
    pytest.param(
        "CREATE INDEX CONCURRENTLY invoices_customer_idx ON invoices (customer_id);",
        PG15,
        True,
        id="create-index-concurrently",
    ),
    pytest.param(
        "CREATE UNIQUE INDEX CONCURRENTLY invoices_number_key ON invoices (number);",
        PG15,
        True,
        id="create-unique-index-concurrently",
    ),
    pytest.param(
        "create index concurrently if not exists i on invoices (paid_at);",
        PG15,
        True,
        id="lower-case-if-not-exists",
    ),
    pytest.param(
        "DROP INDEX CONCURRENTLY invoices_customer_idx;", PG15, True, id="drop-index-concurrently"
    ),
    pytest.param(
        "REINDEX INDEX CONCURRENTLY invoices_customer_idx;",
        PG15,
        True,
        id="reindex-index-concurrently",
    ),
    pytest.param(
        "REINDEX (VERBOSE) TABLE CONCURRENTLY invoices;",
        PG15,
        True,
        id="reindex-options-table-concurrently",
    ),
    pytest.param("REINDEX SYSTEM billing;", PG15, True, id="reindex-system"),
    pytest.param("REINDEX DATABASE billing;", PG15, True, id="reindex-database"),
    pytest.param("REINDEX (VERBOSE) DATABASE billing;", PG15, True, id="reindex-options-database"),
    pytest.param("REINDEX SCHEMA billing;", PG15, True, id="reindex-schema"),
    pytest.param("VACUUM;", PG15, True, id="vacuum"),
    pytest.param("COMMIT PREPARED 'tx_1';", PG15, True, id="commit-prepared"),
    pytest.param("ROLLBACK PREPARED 'tx_1';", PG15, True, id="rollback-prepared"),
    pytest.param("VACUUM (ANALYZE) invoices;", PG15, True, id="vacuum-analyze"),
    pytest.param("CREATE DATABASE reporting;", PG15, True, id="create-database"),
    pytest.param("DROP DATABASE IF EXISTS reporting;", PG15, True, id="drop-database"),
    pytest.param(
        "CREATE TABLESPACE fast LOCATION '/srv/fast';", PG15, True, id="create-tablespace"
    ),
    pytest.param(
        "ALTER DATABASE reporting SET TABLESPACE fast;",
        PG15,
        True,
        id="alter-database-set-tablespace",
    ),
    pytest.param("ALTER SYSTEM SET work_mem = '64MB';", PG15, True, id="alter-system"),
    pytest.param(
        "ALTER TABLE readings DETACH PARTITION readings_2020 CONCURRENTLY;",
        PG15,
        True,
        id="detach-partition-concurrently",
    ),
    pytest.param("CLUSTER;", PG15, True, id="cluster-all"),
    pytest.param(
        "ALTER TYPE invoice_state ADD VALUE 'refunded';", PG11, True, id="add-enum-value-before-12"
    ),
    pytest.param(
        "ALTER TYPE invoice_state ADD VALUE IF NOT EXISTS 'refunded' AFTER 'paid';",
        PG11,
        True,
        id="add-enum-value-if-not-exists-before-12",
    ),
    pytest.param(
        "ALTER TYPE invoice_state ADD VALUE 'refunded';", 120000, False, id="add-enum-value-on-12"
    ),
    pytest.param(
        "ALTER TYPE invoice_state ADD VALUE 'refunded';", PG15, False, id="add-enum-value-on-15"
    ),
    pytest.param(
        "ALTER TYPE invoice_state RENAME VALUE 'paid' TO 'settled';",
        PG11,
        False,
        id="rename-enum-value",
    ),
    pytest.param(
        "CREATE INDEX invoices_paid_idx ON invoices (paid_at);", PG15, False, id="create-index"
    ),
    pytest.param(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY daily_totals;",
        PG15,
        False,
        id="refresh-materialized-view-concurrently",
    ),
    pytest.param("REINDEX TABLE invoices;", PG15, False, id="reindex-table"),
    pytest.param("ANALYZE invoices;", PG15, False, id="analyze"),
    pytest.param("CLUSTER invoices USING invoices_pkey;", PG15, False, id="cluster-table"),
    pytest.param("ALTER TABLE invoices ADD COLUMN note text;", PG15, False, id="alter-table"),
]


@pytest.mark.parametrize(("text", "server_version", "expected"), AUTOCOMMIT_CASES)
def test_needs_autocommit(text: str, server_version: int, expected: bool) -> None:
    assert needs_autocommit(first_statement(text), server_version) is expected
