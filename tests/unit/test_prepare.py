"""Unit tests of execution.prepare, which scans a migration before anything runs.

The server version is passed as a number, as ``server_version_num`` reports it, so no
database is needed.
"""

from __future__ import annotations

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ScanError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.execution import (
    NO_TRANSACTION_DIRECTIVE,
    prepare,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    parse_source,
)

PG11 = 110000
PG15 = 150000

INDEX_SCRIPT = "schema/V4__index_invoices.sql"
INDEX_STATEMENTS = (
    "ALTER TABLE invoices ADD COLUMN customer_id bigint;\n"
    "CREATE INDEX CONCURRENTLY invoices_customer_idx ON invoices (customer_id);\n"
)
INDEX_PROBLEM = (
    "CREATE INDEX CONCURRENTLY invoices_customer_idx cannot run inside a transaction block; "
    "put the line -- dbops:no-transaction at the top of the file to run it statement by "
    "statement outside a transaction"
)


def scan_error(script: str, text: str, server_version: int = PG15) -> ScanError:
    with pytest.raises(ScanError) as excinfo:
        prepare(parse_source(script, text), server_version)
    return excinfo.value


def test_prepare_concurrent_index_message() -> None:
    error = scan_error(INDEX_SCRIPT, "-- Index invoices by customer.\n" + INDEX_STATEMENTS)
    assert str(error) == f"{INDEX_SCRIPT} cannot be run: line 3: {INDEX_PROBLEM}"


def test_prepare_concurrent_index_problems() -> None:
    error = scan_error(INDEX_SCRIPT, "-- Index invoices by customer.\n" + INDEX_STATEMENTS)
    assert error.script == INDEX_SCRIPT
    assert error.problems == [(3, INDEX_PROBLEM)]


def test_prepare_with_directive_passes() -> None:
    text = NO_TRANSACTION_DIRECTIVE + "\n" + INDEX_STATEMENTS
    prepared = prepare(parse_source(INDEX_SCRIPT, text), PG15)
    assert prepared.no_transaction is True
    assert [statement.line for statement in prepared.statements] == [2, 3]


def test_prepare_without_directive_is_transactional() -> None:
    text = "CREATE INDEX invoices_customer_idx ON invoices (customer_id);\n"
    prepared = prepare(parse_source(INDEX_SCRIPT, text), PG15)
    assert prepared.no_transaction is False


def test_prepare_keeps_migration() -> None:
    migration = parse_source(INDEX_SCRIPT, NO_TRANSACTION_DIRECTIVE + "\n" + INDEX_STATEMENTS)
    assert prepare(migration, PG15).migration is migration


@pytest.mark.parametrize(
    ("directive", "marked"),
    [
        pytest.param("-- dbops:no-transaction", True, id="standard"),
        pytest.param("--dbops:no-transaction", True, id="no-space"),
        pytest.param("  -- dbops:no-transaction  ", True, id="indented"),
        pytest.param("-- DBOPS:NO-TRANSACTION", True, id="upper-case"),
        pytest.param("-- dbops:no-transaction please", False, id="trailing-words"),
        pytest.param("SELECT 1; -- dbops:no-transaction", False, id="after-statement"),
        pytest.param("-- dbops: no-transaction", False, id="space-after-colon"),
    ],
)
def test_prepare_directive_forms(directive: str, marked: bool) -> None:
    text = directive + "\nCREATE TABLE payments (id bigint);\n"
    prepared = prepare(parse_source("schema/V5__payments.sql", text), PG15)
    assert prepared.no_transaction is marked


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "CREATE TABLE payments (id bigint);\n"
            f"{NO_TRANSACTION_DIRECTIVE}\n"
            "CREATE TABLE refunds (id bigint);\n",
            id="after-first-statement",
        ),
        pytest.param(
            "INSERT INTO notes (body) VALUES ('\n"
            f"{NO_TRANSACTION_DIRECTIVE}\n"
            "');\n"
            "CREATE TABLE refunds (id bigint);\n",
            id="in-string-literal",
        ),
    ],
)
def test_prepare_directive_outside_header(text: str) -> None:
    # The directive counts only in the comments before the first statement.
    prepared = prepare(parse_source("schema/V5__payments.sql", text), PG15)
    assert prepared.no_transaction is False


def test_prepare_add_enum_value_before_12() -> None:
    text = "ALTER TYPE invoice_state ADD VALUE 'refunded';\n"
    error = scan_error("schema/V6__refunds.sql", text, PG11)
    assert str(error) == (
        "schema/V6__refunds.sql cannot be run: line 1: ALTER TYPE invoice_state ADD cannot "
        "run inside a transaction block; put the line -- dbops:no-transaction at the top of "
        "the file to run it statement by statement outside a transaction"
    )


def test_prepare_add_enum_value_on_15() -> None:
    text = "ALTER TYPE invoice_state ADD VALUE 'refunded';\n"
    prepared = prepare(parse_source("schema/V6__refunds.sql", text), PG15)
    assert prepared.no_transaction is False


def test_prepare_meta_command() -> None:
    text = "CREATE TABLE payments (id bigint);\n\\set ON_ERROR_STOP on\n"
    error = scan_error("schema/V5__payments.sql", text)
    assert str(error) == (
        "schema/V5__payments.sql cannot be run: line 2: psql meta-command \\set is not SQL "
        "and only psql understands it; remove it"
    )


def test_prepare_meta_command_with_directive() -> None:
    text = NO_TRANSACTION_DIRECTIVE + "\n\\connect reporting\nVACUUM;\n"
    error = scan_error("schema/V7__vacuum.sql", text)
    assert error.problems == [
        (
            2,
            "psql meta-command \\connect is not SQL; a migration runs in the database it is "
            "applied to, so move these statements to the migrations of the other database",
        )
    ]


def test_prepare_problems_sorted_by_line() -> None:
    text = "VACUUM invoices;\n\\i ./more.sql\nCREATE INDEX CONCURRENTLY ON invoices (total);\n"
    error = scan_error("schema/V8__maintenance.sql", text)
    assert str(error) == (
        "schema/V8__maintenance.sql cannot be run: "
        "line 1: VACUUM invoices cannot run inside a transaction block; put the line "
        "-- dbops:no-transaction at the top of the file to run it statement by statement "
        "outside a transaction; "
        "line 2: psql meta-command \\i is not SQL; make the included file a migration of its "
        "own; "
        "line 3: CREATE INDEX CONCURRENTLY ON cannot run inside a transaction block; put the "
        "line -- dbops:no-transaction at the top of the file to run it statement by statement "
        "outside a transaction"
    )


def test_prepare_directive_still_rejects_commit() -> None:
    text = NO_TRANSACTION_DIRECTIVE + "\nVACUUM invoices;\nCOMMIT;\n"
    error = scan_error("schema/V9__vacuum.sql", text)
    assert error.problems == [
        (
            3,
            "transaction control statement COMMIT is not allowed: the engine runs each "
            "migration in a transaction of its own, or, in a file marked -- dbops:no-transaction, "
            "commits each statement on its own",
        )
    ]
