"""Unit tests of the safety lint: each rule firing, each safe variant, silencing comments.

The catalog is a test double over CATALOG_TABLES, so no server is needed. The integration
tests run the same rules against a real one. Server versions are numbers as
``server_version_num`` reports them. The Squawk comparison at the end runs the squawk binary
from the squawk-cli wheel on the files in safety_sql/ and skips when it is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import safety
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.execution import (
    PreparedMigration,
    prepare,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.safety import (
    Finding,
    PgCatalog,
    TableFacts,
    lint_with_catalog,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    load_sources,
    parse_source,
)

PG10 = 100000
PG11 = 110000
PG15 = 150000
SCRIPT = "V2__change.sql"
SAFETY_SQL = Path(__file__).parent / "safety_sql"


@dataclass
class FakeTable:
    rows: int
    columns: dict[str, str] = field(default_factory=dict)
    not_null_checks: set[str] = field(default_factory=set)


# The database the unit tests and the Squawk comparison assume.
CATALOG_TABLES = {
    ("public", "orders"): FakeTable(
        5_000,
        {"status": "character varying(20)", "total": "numeric(10,2)", "customer_id": "integer"},
    ),
    ("public", "events"): FakeTable(2_000_000, {"kind": "text"}),
    ("public", "audit_log"): FakeTable(0),
    ("public", "order_drafts"): FakeTable(10),
    ("public", "Order Items"): FakeTable(50, {"Unit Price": "numeric(8,2)"}),
    ("sales", "invoices"): FakeTable(300),
}
# Indexes of the tables above: (schema, index) -> (schema, table).
CATALOG_INDEXES = {
    ("public", "orders_pkey"): ("public", "orders"),
    ("public", "events_id_idx"): ("public", "events"),
    ("public", "audit_log_created_idx"): ("public", "audit_log"),
    ("public", "Order Items_pkey"): ("public", "Order Items"),
}
FUNCTION_VOLATILITY = {
    "now": "s",
    "lower": "i",
    "random": "v",
    "gen_random_uuid": "v",
    "clock_timestamp": "v",
    "nextval": "v",
}


def split_name(written: str) -> tuple[str, str]:
    """Return (schema, table) of a name as written in SQL, with public for unqualified names."""
    parts = [
        quoted.replace('""', '"') if quoted else plain.lower()
        for quoted, plain in re.findall(r'"((?:[^"]|"")*)"|([^."]+)', written)
    ]
    return ("public", parts[-1]) if len(parts) == 1 else (parts[-2], parts[-1])


class FakeCatalog:
    """The Catalog interface over CATALOG_TABLES, recording which tables were probed."""

    def __init__(self, tables: dict[tuple[str, str], FakeTable] | None = None) -> None:
        self.tables = CATALOG_TABLES if tables is None else tables
        self.probed: list[str] = []

    def current_schema(self) -> str:
        return "public"

    def table(self, written: str) -> TableFacts | None:
        schema, name = split_name(written)
        fake = self.tables.get((schema, name))
        if fake is None:
            return None
        return TableFacts(hash((schema, name)), schema, name, float(fake.rows))

    def has_rows(self, table: TableFacts) -> bool:
        self.probed.append(table.name)
        return self.tables[(table.schema, table.name)].rows > 0

    def index_table(self, written: str) -> tuple[str, str] | None:
        return CATALOG_INDEXES.get(split_name(written))

    def column_type(self, table: TableFacts, column: str) -> str | None:
        return self.tables[(table.schema, table.name)].columns.get(column)

    def not_null_checks(self, table: TableFacts) -> set[str]:
        return self.tables[(table.schema, table.name)].not_null_checks

    def volatility(self, functions: Iterable[str]) -> dict[str, str]:
        return {
            name: FUNCTION_VOLATILITY[name] for name in functions if name in FUNCTION_VOLATILITY
        }


def prepared_files(files: list[tuple[str, str]], server_version: int) -> list[PreparedMigration]:
    return [prepare(migration, server_version) for migration in load_sources(files)]


def lint(
    text: str,
    server_version: int = PG15,
    catalog: FakeCatalog | None = None,
    **options: int,
) -> list[Finding]:
    """Lint one migration named SCRIPT against the fake catalog."""
    prepared = [prepare(parse_source(SCRIPT, text), server_version)]
    return lint_with_catalog(catalog or FakeCatalog(), prepared, server_version, **options)


def rules_and_lines(findings: list[Finding]) -> list[tuple[str, int]]:
    return [(finding.rule, finding.line) for finding in findings]


NO_TX = "-- dbops:no-transaction\n"

# Each case: migration text, then (rule, line) of every expected finding in order.
RULE_CASES = [
    # create-index-not-concurrently
    pytest.param(
        "CREATE INDEX orders_customer_idx ON orders (customer_id);",
        [("create-index-not-concurrently", 1)],
        id="index-on-table-with-rows",
    ),
    pytest.param(
        "CREATE UNIQUE INDEX IF NOT EXISTS orders_status_idx\n"
        "    ON ONLY public.orders USING btree (status);",
        [("create-index-not-concurrently", 1)],
        id="unique-index-schema-only",
    ),
    pytest.param(
        'CREATE INDEX "on" ON "Order Items" ("Unit Price");',
        [("create-index-not-concurrently", 1)],
        id="index-quoted-names",
    ),
    pytest.param(
        "CREATE INDEX ON sales.invoices (due_on);",
        [("create-index-not-concurrently", 1)],
        id="index-other-schema",
    ),
    pytest.param(
        NO_TX + "CREATE INDEX CONCURRENTLY orders_customer_idx ON orders (customer_id);",
        [],
        id="index-concurrently-quiet",
    ),
    pytest.param("CREATE INDEX ON audit_log (created_at);", [], id="index-empty-table-quiet"),
    pytest.param("CREATE INDEX ON missing (id);", [], id="index-unknown-table-quiet"),
    pytest.param(
        "CREATE TABLE invoices_2026 (id bigint);\nCREATE INDEX ON invoices_2026 (id);",
        [],
        id="index-new-table-quiet",
    ),
    pytest.param(
        "COMMENT ON TABLE orders IS 'CREATE INDEX x ON orders (id)';\n"
        "SELECT $$ALTER TABLE orders DROP COLUMN status$$;\n"
        "/* CREATE INDEX ON orders (id); */ SELECT 1;",
        [],
        id="keywords-in-strings-quiet",
    ),
    # add-column-not-null-without-default
    pytest.param(
        "ALTER TABLE orders ADD COLUMN channel text NOT NULL;",
        [("add-column-not-null-without-default", 1)],
        id="not-null-no-default",
    ),
    pytest.param(
        "ALTER TABLE audit_log ADD channel text CONSTRAINT channel_nn NOT NULL;",
        [("add-column-not-null-without-default", 1)],
        id="not-null-empty-existing-table",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN note text,\n"
        "    ADD COLUMN channel text DEFAULT NULL NOT NULL;",
        [("add-column-not-null-without-default", 2)],
        id="not-null-default-null-second-line",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'web';",
        [],
        id="not-null-with-default-quiet",
    ),
    pytest.param("ALTER TABLE orders ADD COLUMN channel text;", [], id="nullable-column-quiet"),
    pytest.param(
        "ALTER TABLE audit_log ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY NOT NULL;",
        [],
        id="not-null-identity-quiet",
    ),
    pytest.param(
        "CREATE TABLE IF NOT EXISTS refunds (id bigint);\n"
        "ALTER TABLE refunds ADD COLUMN reason text NOT NULL;",
        [],
        id="not-null-new-table-quiet",
    ),
    # add-column-rewrites-table
    pytest.param(
        "ALTER TABLE orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();",
        [("add-column-rewrites-table", 1)],
        id="default-gen-random-uuid",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN seen_at timestamptz NOT NULL DEFAULT clock_timestamp();",
        [("add-column-rewrites-table", 1)],
        id="default-clock-timestamp",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN line_no bigserial;",
        [("add-column-rewrites-table", 1)],
        id="serial-column",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN seq bigint GENERATED BY DEFAULT AS IDENTITY;",
        [("add-column-rewrites-table", 1)],
        id="identity-column",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN total_cents bigint\n"
        "    GENERATED ALWAYS AS ((total * 100)::bigint) STORED;",
        [("add-column-rewrites-table", 1)],
        id="stored-generated-column",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN code text DEFAULT public.next_code();",
        [("add-column-rewrites-table", 1)],
        id="default-unknown-function",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN created_at timestamptz DEFAULT now(),\n"
        "    ADD COLUMN changed_at timestamptz DEFAULT CURRENT_TIMESTAMP(3),\n"
        "    ADD COLUMN kind text DEFAULT lower('WEB'),\n"
        "    ADD COLUMN fee numeric DEFAULT CAST('0' AS numeric(10,2)),\n"
        "    ADD COLUMN tax numeric DEFAULT '0'::numeric(10,2);",
        [],
        id="stable-and-immutable-defaults-quiet",
    ),
    pytest.param(
        "ALTER TABLE audit_log ADD COLUMN public_id uuid DEFAULT gen_random_uuid();",
        [],
        id="volatile-default-empty-table-quiet",
    ),
    # add-constraint-without-not-valid
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk\n"
        "    FOREIGN KEY (customer_id) REFERENCES customers (id);",
        [("add-constraint-without-not-valid", 1)],
        id="foreign-key",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CHECK (total >= 0);",
        [("add-constraint-without-not-valid", 1)],
        id="check",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;\n"
        "ALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;",
        [("add-constraint-without-not-valid", 2)],
        id="validate-in-same-transaction",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id)\n"
        "    REFERENCES customers (id) NOT VALID;",
        [],
        id="foreign-key-not-valid-quiet",
    ),
    pytest.param(
        NO_TX
        + "ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;\n"
        "ALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;",
        [
            ("no-transaction-without-lock-timeout", 2),
            ("no-transaction-without-lock-timeout", 3),
        ],
        id="validate-after-commit-quiet",
    ),
    pytest.param(
        "ALTER TABLE audit_log ADD CHECK (length(actor) > 0);",
        [],
        id="check-empty-table-quiet",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_number_key UNIQUE (number);",
        [("add-constraint-without-using-index", 1)],
        id="unique-constraint-builds-index",
    ),
    # add-constraint-without-using-index
    pytest.param(
        "ALTER TABLE orders ADD UNIQUE NULLS NOT DISTINCT (number);",
        [("add-constraint-without-using-index", 1)],
        id="unique-without-name",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN number text,\n"
        "    ADD CONSTRAINT orders_pkey PRIMARY KEY (id) USING INDEX TABLESPACE fast;",
        [("add-constraint-without-using-index", 2)],
        id="primary-key-index-tablespace",
    ),
    pytest.param(
        'ALTER TABLE "Order Items" ADD PRIMARY KEY (sku) DEFERRABLE;',
        [("add-constraint-without-using-index", 1)],
        id="primary-key-quoted-table",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_number_key UNIQUE USING INDEX number_idx,\n"
        "    ADD PRIMARY KEY USING INDEX orders_id_idx;",
        [],
        id="using-index-quiet",
    ),
    pytest.param(
        "ALTER TABLE audit_log ADD PRIMARY KEY (id);",
        [],
        id="primary-key-empty-table-quiet",
    ),
    pytest.param(
        "CREATE TABLE refunds (id bigint);\nALTER TABLE refunds ADD PRIMARY KEY (id);",
        [],
        id="primary-key-new-table-quiet",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_no_overlap EXCLUDE USING gist (id WITH =);",
        [],
        id="exclude-constraint-not-covered",
    ),
    # reindex-not-concurrently
    pytest.param("REINDEX TABLE orders;", [("reindex-not-concurrently", 1)], id="reindex-table"),
    pytest.param(
        "REINDEX (VERBOSE) INDEX public.orders_pkey;",
        [("reindex-not-concurrently", 1)],
        id="reindex-index-with-options",
    ),
    pytest.param(
        'REINDEX INDEX "Order Items_pkey";',
        [("reindex-not-concurrently", 1)],
        id="reindex-index-quoted",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nREINDEX SCHEMA sales;\nREINDEX DATABASE;",
        [("reindex-not-concurrently", 3), ("reindex-not-concurrently", 4)],
        id="reindex-schema-and-database",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nREINDEX (CONCURRENTLY false) TABLE orders;",
        [("reindex-not-concurrently", 3)],
        id="reindex-concurrently-option-off",
    ),
    pytest.param(
        NO_TX + "REINDEX TABLE CONCURRENTLY orders;\nREINDEX (CONCURRENTLY) INDEX orders_pkey;\n"
        "REINDEX (VERBOSE, CONCURRENTLY true) SCHEMA public;",
        [],
        id="reindex-concurrently-quiet",
    ),
    pytest.param(
        "REINDEX TABLE audit_log;\nREINDEX INDEX audit_log_created_idx;",
        [],
        id="reindex-empty-table-quiet",
    ),
    pytest.param(
        "CREATE TABLE refunds (id bigint);\nREINDEX TABLE refunds;\nREINDEX INDEX refunds_pkey;",
        [],
        id="reindex-new-table-quiet",
    ),
    pytest.param(
        "DROP TABLE order_drafts;\nREINDEX TABLE order_drafts;",
        [("drop-table", 1)],
        id="reindex-dropped-table-quiet",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nREINDEX SYSTEM;",
        [],
        id="reindex-system-quiet",
    ),
    # vacuum-full
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nVACUUM FULL orders;",
        [("vacuum-full", 3)],
        id="vacuum-full",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\n"
        "VACUUM (FULL, ANALYZE) orders (status), audit_log, sales.invoices;",
        [("vacuum-full", 3), ("vacuum-full", 3)],
        id="vacuum-full-options-two-tables",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nVACUUM FULL FREEZE VERBOSE;",
        [("vacuum-full", 3)],
        id="vacuum-full-database",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nVACUUM orders;\nVACUUM (FULL off, ANALYZE) orders;\n"
        "VACUUM FREEZE ANALYZE orders;",
        [],
        id="vacuum-without-full-quiet",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nVACUUM FULL audit_log;",
        [],
        id="vacuum-full-empty-table-quiet",
    ),
    pytest.param(
        NO_TX + "VACUUM FULL orders;",
        [("vacuum-full", 2), ("no-transaction-without-lock-timeout", 2)],
        id="vacuum-full-without-lock-timeout",
    ),
    # cluster
    pytest.param("CLUSTER orders USING orders_pkey;", [("cluster", 1)], id="cluster-using"),
    pytest.param("CLUSTER (VERBOSE) public.orders;", [("cluster", 1)], id="cluster-options"),
    pytest.param("CLUSTER VERBOSE orders_pkey ON orders;", [("cluster", 1)], id="cluster-old-form"),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nCLUSTER;",
        [("cluster", 3)],
        id="cluster-database",
    ),
    pytest.param("CLUSTER audit_log;", [], id="cluster-empty-table-quiet"),
    pytest.param(
        "CREATE TABLE refunds (id bigint);\nCLUSTER refunds USING refunds_pkey;",
        [],
        id="cluster-new-table-quiet",
    ),
    pytest.param(
        "ALTER TABLE orders CLUSTER ON orders_pkey;",
        [],
        id="alter-table-cluster-on-quiet",
    ),
    # alter-column-type-rewrites-table
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;",
        [("alter-column-type-rewrites-table", 1)],
        id="integer-to-bigint",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER status TYPE varchar(10);",
        [("alter-column-type-rewrites-table", 1)],
        id="varchar-shrink",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN total SET DATA TYPE numeric(14,4);",
        [("alter-column-type-rewrites-table", 1)],
        id="numeric-scale-change",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN status TYPE varchar(50) USING trim(status);",
        [("alter-column-type-rewrites-table", 1)],
        id="type-change-using",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN note TYPE text;",
        [("alter-column-type-rewrites-table", 1)],
        id="type-change-unknown-column",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN status TYPE varchar(50),\n"
        "    ALTER COLUMN total TYPE numeric(14, 2);\n"
        "ALTER TABLE orders ALTER COLUMN status TYPE character varying;\n"
        'ALTER TABLE orders ALTER COLUMN status TYPE text COLLATE "C";\n'
        "ALTER TABLE orders ALTER COLUMN total TYPE pg_catalog.numeric;\n"
        'ALTER TABLE "Order Items" ALTER COLUMN "Unit Price" TYPE DECIMAL(9,2);',
        [],
        id="binary-coercible-widenings-quiet",
    ),
    pytest.param(
        "ALTER TABLE audit_log ALTER COLUMN actor TYPE bigint;",
        [],
        id="type-change-empty-table-quiet",
    ),
    # drop-column and drop-table
    pytest.param(
        "ALTER TABLE audit_log DROP COLUMN IF EXISTS actor;",
        [("drop-column", 1)],
        id="drop-column",
    ),
    pytest.param(
        "ALTER TABLE orders DROP CONSTRAINT orders_total_check;",
        [],
        id="drop-constraint-quiet",
    ),
    pytest.param(
        "DROP TABLE order_drafts, audit_log CASCADE;",
        [("drop-table", 1), ("drop-table", 1)],
        id="drop-two-tables",
    ),
    pytest.param("DROP TABLE IF EXISTS missing;", [], id="drop-missing-table-quiet"),
    pytest.param(
        "CREATE TABLE scratch (id int);\nALTER TABLE scratch DROP COLUMN id;\nDROP TABLE scratch;",
        [],
        id="drop-new-table-quiet",
    ),
    # rename-column and rename-table
    pytest.param(
        "ALTER TABLE orders RENAME COLUMN status TO state;",
        [("rename-column", 1)],
        id="rename-column",
    ),
    pytest.param(
        'ALTER TABLE "Order Items" RENAME "Unit Price" TO unit_price;',
        [("rename-column", 1)],
        id="rename-column-without-keyword",
    ),
    pytest.param(
        "ALTER TABLE orders RENAME CONSTRAINT orders_total_check TO orders_total_positive;",
        [],
        id="rename-constraint-quiet",
    ),
    pytest.param(
        "ALTER TABLE IF EXISTS order_drafts RENAME TO draft_orders;",
        [("rename-table", 1)],
        id="rename-table",
    ),
    pytest.param(
        "CREATE TABLE staging (id int);\nALTER TABLE staging RENAME TO imports;\n"
        "ALTER TABLE imports RENAME COLUMN id TO import_id;",
        [],
        id="rename-new-table-quiet",
    ),
    # set-not-null-on-large-table
    pytest.param(
        "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;",
        [("set-not-null-on-large-table", 1)],
        id="set-not-null-large",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;",
        [],
        id="set-not-null-small-quiet",
    ),
    # no-transaction-without-lock-timeout
    pytest.param(
        NO_TX + "CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind);\n"
        "ALTER TABLE events ADD COLUMN source text;",
        [("no-transaction-without-lock-timeout", 3)],
        id="no-transaction-alter",
    ),
    pytest.param(
        NO_TX + "DROP INDEX events_kind_idx;\nDROP INDEX CONCURRENTLY events_old_idx;",
        [("no-transaction-without-lock-timeout", 2)],
        id="no-transaction-drop-index",
    ),
    pytest.param(
        NO_TX + "ALTER TABLE events ADD COLUMN source text;\nSET lock_timeout = '2s';",
        [("no-transaction-without-lock-timeout", 2)],
        id="no-transaction-timeout-too-late",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout TO 0;\nALTER TABLE events ADD COLUMN source text;",
        [("no-transaction-without-lock-timeout", 3)],
        id="no-transaction-timeout-zero",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '0s';\nALTER TABLE events ADD COLUMN source text;",
        [("no-transaction-without-lock-timeout", 3)],
        id="no-transaction-timeout-zero-seconds",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nRESET lock_timeout;\nDROP TABLE IF EXISTS missing;",
        [("no-transaction-without-lock-timeout", 4)],
        id="no-transaction-timeout-reset",
    ),
    pytest.param(
        NO_TX + "SET SESSION lock_timeout = '2s';\nALTER TABLE events ADD COLUMN source text;\n"
        "DROP VIEW IF EXISTS event_summary;",
        [],
        id="no-transaction-with-timeout-quiet",
    ),
    pytest.param(
        NO_TX + "CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind);\nVACUUM events;",
        [],
        id="no-transaction-concurrent-only-quiet",
    ),
    pytest.param(
        "ALTER TABLE events ADD COLUMN source text;",
        [],
        id="transactional-alter-quiet",
    ),
]


@pytest.mark.parametrize(("text", "expected"), RULE_CASES)
def test_rule_cases(text: str, expected: list[tuple[str, int]]) -> None:
    assert rules_and_lines(lint(text)) == expected


# One exact finding per rule: the message names the object and what to do instead.
EXACT_CASES = [
    pytest.param(
        "CREATE INDEX orders_customer_idx ON orders (customer_id);",
        Finding(
            "create-index-not-concurrently",
            SCRIPT,
            1,
            "CREATE INDEX on orders, which has rows, takes a SHARE lock that blocks inserts, "
            "updates and deletes on orders until the index is built.",
            "Use CREATE INDEX CONCURRENTLY, in a migration of its own that starts with "
            "-- dbops:no-transaction.",
        ),
        id="create-index-not-concurrently",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN channel text NOT NULL;",
        Finding(
            "add-column-not-null-without-default",
            SCRIPT,
            1,
            "ADD COLUMN channel NOT NULL without a default fails if orders has rows, and "
            "otherwise makes every insert that omits channel, such as those of the running "
            "application, fail.",
            "Add channel as nullable or with a default, backfill it, then set NOT NULL in a "
            "later migration.",
        ),
        id="add-column-not-null-without-default",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();",
        Finding(
            "add-column-rewrites-table",
            SCRIPT,
            1,
            "ADD COLUMN public_id on orders, which has rows, rewrites the whole table under an "
            "ACCESS EXCLUSIVE lock, which blocks reads and writes, because its default calls "
            "gen_random_uuid(), which is volatile.",
            "Add public_id without a default, or with a constant or stable one, then fill "
            "existing rows in batches and set the volatile default for new rows.",
        ),
        id="add-column-rewrites-table",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk\n"
        "    FOREIGN KEY (customer_id) REFERENCES customers (id);",
        Finding(
            "add-constraint-without-not-valid",
            SCRIPT,
            1,
            "ADD FOREIGN KEY constraint on orders, which has rows, checks every row while it "
            "holds a SHARE ROW EXCLUSIVE lock on both tables, which blocks writes to them.",
            "Add the constraint with NOT VALID, then run VALIDATE CONSTRAINT in a later "
            "migration: validation takes a lock that lets reads and writes go on.",
        ),
        id="add-constraint-without-not-valid",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN customer_id TYPE bigint;",
        Finding(
            "alter-column-type-rewrites-table",
            SCRIPT,
            1,
            "ALTER COLUMN customer_id TYPE on orders, which has rows, rewrites the table and "
            "rebuilds its indexes under an ACCESS EXCLUSIVE lock, which blocks reads and "
            "writes, because integer to bigint is not one of the changes known to need no "
            "rewrite.",
            "Add a column of the new type, backfill it in batches and keep it in step with a "
            "trigger, then switch the application over and drop the old column.",
        ),
        id="alter-column-type-rewrites-table",
    ),
    pytest.param(
        "ALTER TABLE orders DROP COLUMN status;",
        Finding(
            "drop-column",
            SCRIPT,
            1,
            "DROP COLUMN status on orders breaks running application code that still reads or "
            "writes status, and its data is gone once the migration commits.",
            "Stop using the column in every deployed version of the application, then drop it "
            "in a later release.",
        ),
        id="drop-column",
    ),
    pytest.param(
        "DROP TABLE public.order_drafts;",
        Finding(
            "drop-table",
            SCRIPT,
            1,
            "DROP TABLE public.order_drafts removes a table that exists before this run, with "
            "its data, and running application code that uses it fails.",
            "Stop using the table in every deployed version of the application, keep a copy of "
            "its data, then drop it in a later release.",
        ),
        id="drop-table",
    ),
    pytest.param(
        "ALTER TABLE orders RENAME COLUMN status TO state;",
        Finding(
            "rename-column",
            SCRIPT,
            1,
            "RENAME COLUMN status TO state on orders breaks running application code that "
            "still uses status.",
            "Add state and write to both columns until no deployed code uses status, then drop "
            "it; or keep the name.",
        ),
        id="rename-column",
    ),
    pytest.param(
        "ALTER TABLE order_drafts RENAME TO draft_orders;",
        Finding(
            "rename-table",
            SCRIPT,
            1,
            "Renaming order_drafts to draft_orders breaks running application code that still "
            "uses order_drafts.",
            "After the rename, create a view named order_drafts over draft_orders (a simple "
            "view accepts inserts and updates) until no deployed code uses the old name; or "
            "keep the name.",
        ),
        id="rename-table",
    ),
    pytest.param(
        "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;",
        Finding(
            "set-not-null-on-large-table",
            SCRIPT,
            1,
            "SET NOT NULL on kind of events, about 2000000 rows by pg_class.reltuples, scans "
            "every row under an ACCESS EXCLUSIVE lock, which blocks reads and writes.",
            "First add a CHECK (kind IS NOT NULL) NOT VALID constraint, validate it in a later "
            "migration, then SET NOT NULL: PostgreSQL 12 and later skip the scan when a "
            "validated check proves the column has no NULLs. Drop the check afterwards.",
        ),
        id="set-not-null-on-large-table",
    ),
    pytest.param(
        NO_TX + "ALTER TABLE events ADD COLUMN source text;",
        Finding(
            "no-transaction-without-lock-timeout",
            SCRIPT,
            2,
            "ALTER TABLE events ADD takes a strong lock in a no-transaction migration that "
            "sets no lock_timeout before it: only the module's lock_timeout option limits its "
            "wait, while later queries on the table queue behind it, and a failure leaves the "
            "statements before it committed.",
            "Put SET lock_timeout = '...' before it in this file, or move it to a migration "
            "that runs in a transaction.",
        ),
        id="no-transaction-without-lock-timeout",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CONSTRAINT orders_number_key UNIQUE (number);",
        Finding(
            "add-constraint-without-using-index",
            SCRIPT,
            1,
            "ADD UNIQUE on orders, which has rows, builds a unique index while it holds an "
            "ACCESS EXCLUSIVE lock on orders, which blocks reads and writes until the index is "
            "built.",
            "Build the index with CREATE UNIQUE INDEX CONCURRENTLY in a migration of its own "
            "that starts with -- dbops:no-transaction, then add the constraint in a later "
            "migration with ADD CONSTRAINT name UNIQUE USING INDEX index_name, which takes the "
            "lock only briefly.",
        ),
        id="add-constraint-without-using-index",
    ),
    pytest.param(
        "REINDEX INDEX orders_pkey;",
        Finding(
            "reindex-not-concurrently",
            SCRIPT,
            1,
            "REINDEX INDEX orders_pkey, on public.orders, which has rows, holds a SHARE lock on "
            "public.orders, which blocks inserts, updates and deletes, and an ACCESS EXCLUSIVE "
            "lock on orders_pkey, which blocks every query that uses it. The planner locks "
            "every index of a table that a query reads, so almost every query on the table "
            "waits too.",
            "Use REINDEX INDEX CONCURRENTLY, in a migration of its own that starts with -- "
            "dbops:no-transaction: it takes a SHARE UPDATE EXCLUSIVE lock on the table, which "
            "lets reads and writes go on.",
        ),
        id="reindex-not-concurrently",
    ),
    pytest.param(
        NO_TX + "SET lock_timeout = '2s';\nVACUUM FULL orders;",
        Finding(
            "vacuum-full",
            SCRIPT,
            3,
            "VACUUM FULL orders, which has rows, writes a new copy of the table and its indexes "
            "under an ACCESS EXCLUSIVE lock, which blocks reads and writes until it ends.",
            "Reclaim the space outside the migrations with a tool that rewrites a table online "
            "and holds an ACCESS EXCLUSIVE lock only briefly, such as pg_repack --no-order; or "
            "run VACUUM FULL in a maintenance window.",
        ),
        id="vacuum-full",
    ),
    pytest.param(
        "CLUSTER orders USING orders_pkey;",
        Finding(
            "cluster",
            SCRIPT,
            1,
            "CLUSTER orders, which has rows, writes a new copy of the table in index order and "
            "rebuilds its indexes under an ACCESS EXCLUSIVE lock, which blocks reads and writes "
            "until it ends.",
            "Reorder the table outside the migrations with a tool that rewrites a table online "
            "and holds an ACCESS EXCLUSIVE lock only briefly, such as pg_repack, which orders "
            "rows by the clustered index by default; or run CLUSTER in a maintenance window.",
        ),
        id="cluster",
    ),
]


@pytest.mark.parametrize(("text", "expected"), EXACT_CASES)
def test_rule_exact_finding(text: str, expected: Finding) -> None:
    assert lint(text) == [expected]


def test_every_rule_has_exact_case() -> None:
    covered = {case.values[1].rule for case in EXACT_CASES}
    assert covered == set(safety.RULES)


def test_finding_as_dict() -> None:
    finding = Finding("drop-table", SCRIPT, 3, "why", "instead")
    assert finding.as_dict() == {
        "rule": "drop-table",
        "script": SCRIPT,
        "line": 3,
        "why": "why",
        "instead": "instead",
    }


# --- server versions


def test_rewrite_reason_names_functions() -> None:
    text = (
        "ALTER TABLE orders ADD COLUMN token text DEFAULT md5(random()::text || clock_timestamp());"
        "\nALTER TABLE orders ADD COLUMN code text DEFAULT lower(next_code());"
    )
    findings = lint(text)
    assert rules_and_lines(findings) == [
        ("add-column-rewrites-table", 1),
        ("add-column-rewrites-table", 2),
    ]
    assert findings[0].why.endswith(
        "because its default calls random(), clock_timestamp(), which are volatile."
    )
    assert findings[1].why.endswith(
        "because its default calls next_code(), which the catalog does not have yet, so the "
        "default may be volatile."
    )


def test_constant_default_rewrites_before_pg11() -> None:
    text = "ALTER TABLE orders ADD COLUMN priority integer NOT NULL DEFAULT 0;"
    assert lint(text, PG10) == [
        Finding(
            "add-column-rewrites-table",
            SCRIPT,
            1,
            "ADD COLUMN priority on orders, which has rows, rewrites the whole table under an "
            "ACCESS EXCLUSIVE lock, which blocks reads and writes, because before PostgreSQL "
            "11 a default other than NULL is written into every row.",
            "Add priority without a default, set the default with ALTER COLUMN priority SET "
            "DEFAULT, and backfill existing rows in batches.",
        )
    ]


@pytest.mark.parametrize(
    ("default", "server_version", "expected"),
    [
        pytest.param("0", PG10, ["add-column-rewrites-table"], id="constant-pg10"),
        pytest.param("0", PG11, [], id="constant-pg11"),
        pytest.param("now()", PG10, ["add-column-rewrites-table"], id="stable-pg10"),
        pytest.param("now()", PG15, [], id="stable-pg15"),
        pytest.param("NULL", PG10, [], id="null-pg10"),
        pytest.param("random()", PG15, ["add-column-rewrites-table"], id="volatile-pg15"),
    ],
)
def test_default_rewrite_by_version(default: str, server_version: int, expected: list) -> None:
    text = f"ALTER TABLE orders ADD COLUMN weight numeric DEFAULT {default};"
    assert [finding.rule for finding in lint(text, server_version)] == expected


NOT_NULL_AFTER_CHECK = [
    (
        "V2__add_kind_check.sql",
        "ALTER TABLE events ADD CONSTRAINT events_kind_nn CHECK ((kind IS NOT NULL)) NOT VALID;",
    ),
    ("V3__validate_kind_check.sql", "ALTER TABLE events VALIDATE CONSTRAINT events_kind_nn;"),
    ("V4__kind_not_null.sql", "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;"),
]


def test_set_not_null_after_validated_check_pg12() -> None:
    prepared = prepared_files(NOT_NULL_AFTER_CHECK, PG15)
    assert lint_with_catalog(FakeCatalog(), prepared, PG15) == []


def test_set_not_null_after_validated_check_pg11() -> None:
    prepared = prepared_files(NOT_NULL_AFTER_CHECK, PG11)
    findings = lint_with_catalog(FakeCatalog(), prepared, PG11)
    assert rules_and_lines(findings) == [("set-not-null-on-large-table", 1)]
    assert findings[0].script == "V4__kind_not_null.sql"
    assert findings[0].instead == (
        "Before PostgreSQL 12, SET NOT NULL always scans the table. Keep the column nullable "
        "with a CHECK (kind IS NOT NULL) constraint added NOT VALID and validated in a later "
        "migration, or run this in a maintenance window."
    )


def test_set_not_null_unvalidated_check_fires() -> None:
    prepared = prepared_files([NOT_NULL_AFTER_CHECK[0], NOT_NULL_AFTER_CHECK[2]], PG15)
    findings = lint_with_catalog(FakeCatalog(), prepared, PG15)
    assert rules_and_lines(findings) == [("set-not-null-on-large-table", 1)]


def test_set_not_null_check_in_catalog_quiet() -> None:
    tables = dict(CATALOG_TABLES)
    tables[("public", "events")] = FakeTable(2_000_000, {"kind": "text"}, {"kind"})
    text = "ALTER TABLE events ALTER COLUMN kind SET NOT NULL;"
    assert lint(text, catalog=FakeCatalog(tables)) == []


def test_primary_key_instead_asks_not_null() -> None:
    findings = lint("ALTER TABLE orders ADD PRIMARY KEY (id);")
    assert rules_and_lines(findings) == [("add-constraint-without-using-index", 1)]
    assert "ADD CONSTRAINT name PRIMARY KEY USING INDEX index_name" in findings[0].instead
    assert findings[0].instead.endswith(
        "Make the key columns NOT NULL first, because otherwise USING INDEX sets them NOT "
        "NULL, which scans the table under the lock."
    )


@pytest.mark.parametrize(
    ("server_version", "expected"),
    [
        pytest.param(PG11, [], id="pg11-no-concurrently"),
        pytest.param(120000, ["reindex-not-concurrently"], id="pg12"),
    ],
)
def test_reindex_by_version(server_version: int, expected: list) -> None:
    text = "REINDEX TABLE orders;"
    assert [finding.rule for finding in lint(text, server_version)] == expected


def test_reindex_database_messages() -> None:
    findings = lint(NO_TX + "SET lock_timeout = '2s';\nREINDEX DATABASE shop;")
    assert rules_and_lines(findings) == [("reindex-not-concurrently", 3)]
    assert findings[0].why.startswith(
        "REINDEX DATABASE shop rebuilds the indexes of every table in it. On each table it "
        "holds a SHARE lock, which blocks inserts, updates and deletes,"
    )
    assert "SHARE UPDATE EXCLUSIVE lock on each table" in findings[0].instead


def test_whole_database_rewrites_skip_probe() -> None:
    catalog = FakeCatalog()
    findings = lint(NO_TX + "SET lock_timeout = '2s';\nVACUUM FULL;\nCLUSTER;", catalog=catalog)
    assert rules_and_lines(findings) == [("vacuum-full", 3), ("cluster", 4)]
    assert findings[0].why.startswith("VACUUM FULL without a table name rewrites every table")
    assert findings[1].why.startswith("CLUSTER without a table name rewrites every table")
    assert catalog.probed == []


def test_large_table_rows_option() -> None:
    text = "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;"
    assert rules_and_lines(lint(text, large_table_rows=5_000)) == [
        ("set-not-null-on-large-table", 1)
    ]
    assert lint(text, large_table_rows=5_001) == []


# --- tables created, dropped and renamed by the pending migrations


def test_table_from_earlier_migration_is_new() -> None:
    files = [
        ("V2__create_refunds.sql", "CREATE TABLE refunds (id bigint, amount numeric);"),
        (
            "V3__extend_refunds.sql",
            "CREATE INDEX ON refunds (amount);\n"
            "ALTER TABLE public.refunds ADD COLUMN reason text NOT NULL;",
        ),
    ]
    assert lint_with_catalog(FakeCatalog(), prepared_files(files, PG15), PG15) == []


def test_recreated_table_is_new() -> None:
    text = (
        "DROP TABLE order_drafts;\n"
        "CREATE TABLE order_drafts (id bigint);\n"
        "CREATE INDEX ON order_drafts (id);"
    )
    assert rules_and_lines(lint(text)) == [("drop-table", 1)]


def test_create_if_not_exists_existing_table() -> None:
    text = "CREATE TABLE IF NOT EXISTS orders (id bigint);\nCREATE INDEX ON orders (id);"
    assert rules_and_lines(lint(text)) == [("create-index-not-concurrently", 2)]


def test_renamed_table_keeps_its_rows() -> None:
    text = (
        "ALTER TABLE orders RENAME TO orders_v1;\n"
        "CREATE INDEX ON orders_v1 (status);\n"
        "CREATE INDEX ON orders (status);"
    )
    assert rules_and_lines(lint(text)) == [
        ("rename-table", 1),
        ("create-index-not-concurrently", 2),
    ]


def test_dropped_table_is_gone() -> None:
    text = "DROP TABLE audit_log;\nALTER TABLE IF EXISTS audit_log DROP COLUMN actor;"
    assert rules_and_lines(lint(text)) == [("drop-table", 1)]


def test_temporary_table_shadows_existing() -> None:
    # The temporary table comes first in search_path, so the index is built on it.
    text = "CREATE TEMP TABLE orders (id int);\nCREATE INDEX ON orders (id);"
    assert lint(text) == []


def test_temporary_and_unlogged_tables_are_new() -> None:
    text = (
        "CREATE TEMP TABLE scratch (id int);\n"
        "CREATE UNLOGGED TABLE IF NOT EXISTS buffer (id int);\n"
        "ALTER TABLE buffer ADD COLUMN note text NOT NULL;"
    )
    assert lint(text) == []


def test_row_probe_skipped_for_quiet_statements() -> None:
    catalog = FakeCatalog()
    lint(
        "CREATE TABLE t (id int);\nCREATE INDEX ON t (id);\nALTER TABLE orders DROP x;",
        catalog=catalog,
    )
    assert catalog.probed == []


# --- silencing comments


def test_ignore_with_reason_silences() -> None:
    text = (
        "-- Remove the fax column.\n"
        "-- dbops:lint-ignore drop-column no release since 4.2 reads fax_number\n"
        "ALTER TABLE orders DROP COLUMN fax_number;"
    )
    assert lint(text) == []


def test_ignore_keyword_in_upper_case_silences() -> None:
    text = (
        "-- DBOPS:LINT-IGNORE drop-column no release since 4.2 reads fax_number\n"
        "ALTER TABLE orders DROP COLUMN fax_number;"
    )
    assert lint(text) == []


def test_ignore_silences_only_named_rule() -> None:
    text = (
        "-- dbops:lint-ignore drop-column unused since 4.2\n"
        "ALTER TABLE orders DROP COLUMN fax_number, RENAME COLUMN status TO state;"
    )
    assert rules_and_lines(lint(text)) == [("rename-column", 2)]


def test_ignore_two_rules_on_two_lines() -> None:
    text = (
        "-- dbops:lint-ignore drop-column unused since 4.2\n"
        "-- dbops:lint-ignore rename-column the application reads both names\n"
        "ALTER TABLE orders DROP COLUMN fax_number, RENAME COLUMN status TO state;"
    )
    assert lint(text) == []


def test_ignore_applies_to_next_statement_only() -> None:
    text = (
        "-- dbops:lint-ignore drop-column unused since 4.2\n"
        "ALTER TABLE orders DROP COLUMN fax_number;\n"
        "ALTER TABLE orders DROP COLUMN telex_number;"
    )
    assert rules_and_lines(lint(text)) == [("drop-column", 3)]


@pytest.mark.parametrize(
    ("rule", "statement"),
    [
        pytest.param(
            "add-constraint-without-using-index",
            "ALTER TABLE orders ADD UNIQUE (number);",
            id="add-constraint-without-using-index",
        ),
        pytest.param("reindex-not-concurrently", "REINDEX TABLE orders;", id="reindex"),
        pytest.param("vacuum-full", "VACUUM FULL orders;", id="vacuum-full"),
        pytest.param("cluster", "CLUSTER orders;", id="cluster"),
    ],
)
def test_ignore_new_rules(rule: str, statement: str) -> None:
    header = NO_TX + "SET lock_timeout = '2s';\n" if statement.startswith("VACUUM") else ""
    assert [finding.rule for finding in lint(header + statement)] == [rule]
    ignored = f"{header}-- dbops:lint-ignore {rule} run in the nightly window\n{statement}"
    assert lint(ignored) == []


def test_ignore_without_reason() -> None:
    text = "-- dbops:lint-ignore drop-column\nALTER TABLE orders DROP COLUMN fax_number;"
    findings = lint(text)
    assert rules_and_lines(findings) == [("lint-ignore-without-reason", 1), ("drop-column", 2)]
    assert findings[0] == Finding(
        "lint-ignore-without-reason",
        SCRIPT,
        1,
        "-- dbops:lint-ignore drop-column gives no reason, so it silences nothing.",
        "Say why the statement is safe after the rule id: -- dbops:lint-ignore drop-column "
        "<reason>.",
    )


@pytest.mark.parametrize(
    ("comment", "named"),
    [
        pytest.param("-- dbops:lint-ignore drop-colum typo", "names unknown rule 'drop-colum'"),
        pytest.param("--dbops:lint-ignore", "names no rule"),
    ],
)
def test_ignore_unknown_rule(comment: str, named: str) -> None:
    findings = lint(f"{comment}\nALTER TABLE orders DROP COLUMN fax_number;")
    assert rules_and_lines(findings) == [("lint-ignore-unknown-rule", 1), ("drop-column", 2)]
    assert findings[0].why == f"-- dbops:lint-ignore {named}, so it silences nothing."
    assert findings[0].instead.startswith("Name one of the rules: create-index-not-concurrently, ")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "-- dbops:lint-ignore drop-column unused\n\nALTER TABLE orders DROP COLUMN fax;",
            id="blank-line-between",
        ),
        pytest.param(
            "SELECT 1; -- dbops:lint-ignore drop-column unused\n"
            "ALTER TABLE orders DROP COLUMN fax;",
            id="comment-after-statement",
        ),
        pytest.param(
            "-- dbops:lint-ignore drop-column unused\n"
            "SELECT 1; ALTER TABLE orders DROP COLUMN fax;",
            id="statement-not-first-on-line",
        ),
        pytest.param(
            "/* dbops:lint-ignore drop-column unused */\nALTER TABLE orders DROP COLUMN fax;",
            id="block-comment",
        ),
        pytest.param(
            "-- see dbops:lint-ignore drop-column unused\nALTER TABLE orders DROP COLUMN fax;",
            id="directive-not-first",
        ),
    ],
)
def test_ignore_not_directly_before(text: str) -> None:
    assert [finding.rule for finding in lint(text)] == ["drop-column"]


def test_ignore_after_copy_data() -> None:
    text = (
        "COPY order_drafts (id) FROM stdin;\n"
        "-- dbops:lint-ignore drop-column a data row, not a comment\n"
        "\\.\n"
        "ALTER TABLE orders DROP COLUMN fax;"
    )
    assert rules_and_lines(lint(text)) == [("drop-column", 4)]


# --- the cursor-based entry point


def test_pg_catalog_requires_autocommit() -> None:
    cursor = SimpleNamespace(connection=SimpleNamespace(autocommit=False))
    with pytest.raises(ValueError) as excinfo:
        PgCatalog(cursor)
    assert str(excinfo.value) == (
        "lint_migrations needs a cursor whose connection is in autocommit mode, so that its "
        "reads hold no locks after they return: set connection.autocommit = True first."
    )


# --- the shared SQL files and the Squawk comparison in docs/safety-lint.md

# Findings of this lint on safety_sql/ with CATALOG_TABLES at PostgreSQL 15, by file.
DOCUMENTED_FINDINGS = {
    "V1__create_customers.sql": {},
    "V2__index_orders.sql": {"create-index-not-concurrently": 1},
    "V3__index_audit_log.sql": {},
    "V4__index_customers.sql": {},
    "V5__add_order_columns.sql": {
        "add-column-rewrites-table": 1,
        "add-column-not-null-without-default": 1,
    },
    "V6__order_constraints.sql": {"add-constraint-without-not-valid": 1},
    "V7__validate_total_check.sql": {},
    "V8__order_column_types.sql": {"alter-column-type-rewrites-table": 1},
    "V9__drop_and_rename.sql": {
        "drop-column": 1,
        "rename-column": 1,
        "rename-table": 1,
        "drop-table": 1,
    },
    "V10__not_null.sql": {"set-not-null-on-large-table": 1},
    "V11__index_events.sql": {"no-transaction-without-lock-timeout": 1},
    "V12__events_origin.sql": {},
    "V13__silenced_drops.sql": {"lint-ignore-without-reason": 1, "drop-column": 1},
    "V14__order_keys.sql": {"add-constraint-without-using-index": 1},
    "V15__rebuild_orders.sql": {"reindex-not-concurrently": 1, "vacuum-full": 1, "cluster": 1},
}

# Squawk 2.70.0 findings on the same files, by file, run as squawk_counts() runs it.
DOCUMENTED_SQUAWK_FINDINGS = {
    "V1__create_customers.sql": {
        "adding-required-field": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V2__index_orders.sql": {
        "require-concurrent-index-creation": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V3__index_audit_log.sql": {
        "require-concurrent-index-creation": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V4__index_customers.sql": {
        "require-concurrent-index-creation": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V5__add_order_columns.sql": {
        "adding-field-with-default": 1,
        "adding-required-field": 1,
        "prefer-bigint-over-int": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V6__order_constraints.sql": {
        "adding-foreign-key-constraint": 1,
        "constraint-missing-not-valid": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V7__validate_total_check.sql": {
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V8__order_column_types.sql": {
        "changing-column-type": 3,
        "prefer-text-field": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V9__drop_and_rename.sql": {
        "ban-drop-column": 1,
        "renaming-column": 1,
        "renaming-table": 1,
        "ban-drop-table": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V10__not_null.sql": {
        "adding-not-nullable-field": 2,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V11__index_events.sql": {
        "prefer-robust-stmts": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V12__events_origin.sql": {
        "prefer-robust-stmts": 1,
        "require-statement-timeout": 1,
    },
    "V13__silenced_drops.sql": {
        "ban-drop-column": 2,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V14__order_keys.sql": {
        "constraint-missing-not-valid": 1,
        "disallowed-unique-constraint": 1,
        "require-lock-timeout": 1,
        "require-statement-timeout": 1,
    },
    "V15__rebuild_orders.sql": {
        "require-concurrent-reindex": 1,
        "require-statement-timeout": 1,
    },
}


def shared_files() -> list[tuple[str, str]]:
    return [(path.name, path.read_text(encoding="utf-8")) for path in SAFETY_SQL.glob("*.sql")]


def test_shared_files_documented_findings() -> None:
    findings = lint_with_catalog(FakeCatalog(), prepared_files(shared_files(), PG15), PG15)
    counted: dict[str, Counter[str]] = {name: Counter() for name in DOCUMENTED_FINDINGS}
    for finding in findings:
        counted[finding.script][finding.rule] += 1
    for name, expected in DOCUMENTED_FINDINGS.items():
        assert dict(counted[name]) == expected, name


def squawk_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "squawk"
    return str(beside_python) if beside_python.is_file() else shutil.which("squawk")


def squawk_counts(binary: str, path: Path) -> dict[str, int]:
    """Run Squawk on one file as the engine runs it and count its findings by rule.

    A file with the no-transaction directive runs outside a transaction. Every other file
    runs inside one, so Squawk gets ``--assume-in-transaction`` for it.
    """
    command = [binary, "--reporter", "json", "--pg-version", "15", str(path)]
    if not path.read_text(encoding="utf-8").startswith("-- dbops:no-transaction"):
        command.insert(1, "--assume-in-transaction")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode in (0, 1), result.stderr
    return dict(Counter(item["rule_name"] for item in json.loads(result.stdout or "[]")))


def test_squawk_documented_findings() -> None:
    binary = squawk_binary()
    if binary is None:
        pytest.skip("squawk is not installed; pip install -r requirements-test.txt")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split() == ["squawk", "2.70.0"], "the documented counts are for 2.70.0"
    for name, expected in DOCUMENTED_SQUAWK_FINDINGS.items():
        assert squawk_counts(binary, SAFETY_SQL / name) == expected, name
