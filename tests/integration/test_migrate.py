"""Tests of applying migrations through api.migrate against a real PostgreSQL server.

Each test gets an empty database and writes its migration files into ``tmp_path``, except the
tests of the shipped files/sql and of the uncorrected copy in tests/fixtures/original_sql.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ConnectError,
    ExecutionError,
    MigrationError,
    PlanError,
    ScanError,
    SourceError,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    ORIGINAL_SQL,
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SCRIPTS,
    SHIPPED_SQL,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    file_sha256,
    history_rows,
    history_versions,
    migrate,
    migrate_params,
    relations_by_kind,
    text_sha256,
    user_enum_types,
    user_relations,
    write_migrations,
)
from pgcluster import Database, PgCluster, free_tcp_port

pytestmark = pytest.mark.matrix

NAME_PATTERNS = (
    "V<version>__<description>.sql, U<version>__<description>.sql or R__<description>.sql"
)

CREATE_A = "CREATE TABLE a (id integer PRIMARY KEY);\n"
CREATE_B = "CREATE TABLE b (id integer PRIMARY KEY);\n"
CREATE_C = "CREATE TABLE c (id integer PRIMARY KEY);\n"


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """Return an empty directory for the test's migration files."""
    directory = tmp_path / "sql"
    directory.mkdir()
    return directory


def relation_exists(database: Database, name: str) -> bool:
    """Return True if ``name``, resolved with the default search_path, is a relation."""
    return database.query("SELECT pg_catalog.to_regclass(%s)", [name])[0][0] is not None


def make_role(pg_cluster: PgCluster, database: Database, *, superuser: bool) -> Iterator[str]:
    """Create a NOLOGIN role, then drop what it owns in ``database`` and the role itself."""
    name = f"migrate_role_{uuid.uuid4().hex[:10]}"
    pg_cluster.create_role(name, uuid.uuid4().hex, superuser=superuser, login=False)
    yield name
    database.query(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    pg_cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def plain_role(pg_cluster: PgCluster, database: Database) -> Iterator[str]:
    """Return a role with no privileges beyond those of PUBLIC."""
    yield from make_role(pg_cluster, database, superuser=False)


@pytest.fixture
def superuser_role(pg_cluster: PgCluster, database: Database) -> Iterator[str]:
    """Return a superuser role other than the login role."""
    yield from make_role(pg_cluster, database, superuser=True)


# --- the shipped migrations


def test_shipped_sql_result(database: Database) -> None:
    warnings: list[str] = []

    result = migrate(migrate_params(database, SHIPPED_SQL), warnings)

    assert sorted(result) == [
        "accepted_checksums",
        "applied",
        "baselined",
        "changed",
        "current_version",
        "history_table",
        "history_table_created",
        "lint",
        "msg",
        "pending",
        "resolved_failed",
    ]
    assert result["changed"] is True
    assert result["msg"] == "Applied 3 migrations (V1, V2, V3); the database is at version 3."
    assert result["current_version"] == "3"
    assert result["pending"] == []
    assert result["history_table"] == "public.schema_migrations"
    assert result["history_table_created"] is True
    assert warnings == []
    descriptions = ["initial schema", "analytics views", "materialized views"]
    assert len(result["applied"]) == 3
    for version, (entry, script, description) in enumerate(
        zip(result["applied"], SHIPPED_SCRIPTS, descriptions, strict=True), start=1
    ):
        elapsed = entry.pop("execution_time_ms")
        assert isinstance(elapsed, int), f"V{version} execution_time_ms is {elapsed!r}"
        assert elapsed >= 0, f"V{version} execution_time_ms is {elapsed}"
        assert entry == {
            "version": str(version),
            "description": description,
            "type": "versioned",
            "script": script,
            "checksum": file_sha256(SHIPPED_SQL / script),
            "verified": True,
        }


def test_shipped_sql_history_rows(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))

    assert history_rows(database) == [
        {
            "installed_rank": rank,
            "version": str(rank),
            "description": description,
            "type": "SQL",
            "script": script,
            "checksum": file_sha256(SHIPPED_SQL / script),
            "installed_by": database.env["PGUSER"],
            "success": True,
        }
        for rank, script, description in zip(
            (1, 2, 3),
            SHIPPED_SCRIPTS,
            ("initial schema", "analytics views", "materialized views"),
            strict=True,
        )
    ]


def test_shipped_sql_catalog(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))

    relations = relations_by_kind(database)

    assert relations["table"] - {"schema_migrations"} == SHIPPED_TABLES
    assert relations["materialized view"] == SHIPPED_MATERIALIZED_VIEWS
    assert relations["view"] == SHIPPED_VIEWS
    assert set(relations) == {"table", "materialized view", "view"}


def test_rerun_unchanged_applies_nothing(database: Database) -> None:
    params = migrate_params(database, SHIPPED_SQL)
    migrate(params)
    before = history_rows(database)

    result = migrate(params)

    assert result["changed"] is False
    assert result["applied"] == []
    assert result["pending"] == []
    assert result["current_version"] == "3"
    assert result["history_table_created"] is False
    assert result["msg"] == "No migration pending; the database is at version 3."
    assert history_rows(database) == before


# --- failing migrations


def test_failure_rolls_back_only_failing_migration(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {
            "V1__create_a.sql": CREATE_A,
            "V2__create_b.sql": (
                "-- b is created, then the query below fails on line 5\n"
                "CREATE TABLE b (id integer PRIMARY KEY);\n"
                "\n"
                "SELECT id,\n"
                "       missing_column\n"
                "FROM b;\n"
            ),
        },
    )

    with pytest.raises(ExecutionError) as raised:
        migrate(migrate_params(database, migrations))

    assert str(raised.value) == (
        'Migration V2 (V2__create_b.sql, line 5) failed: column "missing_column" does not exist '
        "(SQLSTATE 42703). Nothing from V2 was committed; V1, applied in this run, stays applied."
    )
    assert raised.value.version == "2"
    assert raised.value.script == "V2__create_b.sql"
    assert raised.value.line == 5
    assert raised.value.sqlstate == "42703"
    assert relation_exists(database, "a"), "V1 was rolled back with V2"
    assert not relation_exists(database, "b"), "V2's first statement was committed"
    assert history_versions(database) == ["1"]


def test_failure_without_position_names_statement_line(database: Database) -> None:
    # The uncorrected V1 declares "WebhookRaw"."tenantId" as uuid and "Tenant".id as text. The
    # server reports no error position for that, so the line is where the statement starts.
    with pytest.raises(ExecutionError) as raised:
        migrate(migrate_params(database, ORIGINAL_SQL))

    message = str(raised.value)
    assert message.startswith(
        "Migration V1 (schema/V1__initial_schema.sql, line 238) failed: foreign key constraint "
        '"WebhookRaw_tenantId_fkey" cannot be implemented (SQLSTATE 42804). Detail: Key '
        'columns "tenantId" '
    ), message
    # NOTE: the middle of the server's Detail text differs between PostgreSQL major versions,
    # so only its start and end are compared.
    assert message.endswith(
        " are of incompatible types: uuid and text. Nothing from V1 was committed; no migration "
        "has been applied to this database."
    ), message
    assert raised.value.line == 238
    assert raised.value.sqlstate == "42804"


def test_failure_without_position_leaves_nothing(database: Database) -> None:
    with pytest.raises(ExecutionError):
        migrate(migrate_params(database, ORIGINAL_SQL))

    assert user_relations(database) == {("public", "schema_migrations")}
    assert user_enum_types(database) == set()
    assert history_rows(database) == []


def test_failure_reports_detail_and_hint(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A})
    migrate(migrate_params(database, migrations))
    write_migrations(
        migrations,
        {
            "V2__check_tenants.sql": (
                "CREATE TABLE b (id integer PRIMARY KEY);\n"
                "DO $$\n"
                "BEGIN\n"
                "  RAISE EXCEPTION 'no tenant rows'\n"
                "    USING DETAIL = 'Table a is empty.', HINT = 'Load the tenants first.';\n"
                "END\n"
                "$$;\n"
            )
        },
    )

    with pytest.raises(ExecutionError) as raised:
        migrate(migrate_params(database, migrations))

    assert str(raised.value) == (
        "Migration V2 (V2__check_tenants.sql, line 4) failed: no tenant rows (SQLSTATE P0001). "
        "Detail: Table a is empty. Hint: Load the tenants first. Context: PL/pgSQL function "
        "inline_code_block line 3 at RAISE. Nothing from V2 was committed; the database stays "
        "at version 1."
    )
    assert not relation_exists(database, "b"), "V2's first statement was committed"
    assert history_versions(database) == ["1"]


# --- history and files that disagree


def test_checksum_drift_stops_run(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V2__create_b.sql": CREATE_B})
    params = migrate_params(database, migrations)
    migrate(params)
    edited = "CREATE TABLE b (id bigint PRIMARY KEY);\n"
    write_migrations(migrations, {"V2__create_b.sql": edited, "V3__create_c.sql": CREATE_C})

    with pytest.raises(PlanError) as raised:
        migrate(params)

    assert str(raised.value) == (
        "Migration files do not match the history table: applied migration V2 "
        f"(V2__create_b.sql) was changed after it was applied: checksum {text_sha256(CREATE_B)} "
        f"in the history, {text_sha256(edited)} now. Restore the applied files as they were, "
        "and put changes in a new migration. If an edit changes nothing that the migration "
        "does, such as a comment, set accept_checksums to ['2'] to record the new checksum "
        "without running any SQL."
    )
    assert history_versions(database) == ["1", "2"]
    assert not relation_exists(database, "c"), "pending V3 ran despite the drift"


def test_missing_applied_file_stops_run(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V2__create_b.sql": CREATE_B})
    params = migrate_params(database, migrations)
    migrate(params)
    (migrations / "V1__create_a.sql").unlink()
    write_migrations(migrations, {"V3__create_c.sql": CREATE_C})

    with pytest.raises(PlanError) as raised:
        migrate(params)

    assert str(raised.value) == (
        "Migration files do not match the history table: applied migration V1 "
        "(V1__create_a.sql) has no file any more. Restore the applied files as they were, and "
        "put changes in a new migration."
    )
    assert history_versions(database) == ["1", "2"]
    assert not relation_exists(database, "c"), "pending V3 ran despite the missing file"


@pytest.mark.parametrize(
    ("first", "second", "version"),
    [
        pytest.param("V2__create_b.sql", "V2__create_c.sql", "2", id="same-version"),
        pytest.param("V1.0__create_b.sql", "V1__create_c.sql", "1", id="trailing-zero"),
    ],
)
def test_duplicate_versions_rejected(
    database: Database, migrations: Path, first: str, second: str, version: str
) -> None:
    write_migrations(migrations, {first: CREATE_B, second: CREATE_C})

    with pytest.raises(SourceError) as raised:
        migrate(migrate_params(database, migrations))

    assert str(raised.value) == (
        f"Duplicate migrations: {first!r} and {second!r} share version {version}. Give each "
        "versioned file its own version, and each repeatable file its own description."
    )
    assert user_relations(database) == set(), "the database changed before the files were checked"


def test_invalid_file_name_rejected(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V2_create_b.sql": CREATE_B})

    with pytest.raises(SourceError) as raised:
        migrate(migrate_params(database, migrations))

    assert str(raised.value) == (
        f"Invalid migration file name 'V2_create_b.sql': expected {NAME_PATTERNS}."
    )
    assert user_relations(database) == set(), "the database changed before the files were checked"


# --- files that a run ignores


def test_empty_path_directory_warns(database: Database, tmp_path: Path) -> None:
    core = write_migrations(tmp_path / "core", {"V1__create_a.sql": CREATE_A})
    misspelt = write_migrations(tmp_path / "reportng", {"migrations/README.md": "# notes\n"})
    warnings: list[str] = []

    result = migrate(migrate_params(database, core, misspelt), warnings)

    assert [entry["version"] for entry in result["applied"]] == ["1"]
    assert warnings == [
        f"Migration directory {str(misspelt)!r} contains no .sql or .sql.j2 file, in it or in a "
        "subdirectory, so it adds no migration. Check path for a typo, or remove the directory "
        "from it."
    ]


def test_inline_sources_do_not_warn(database: Database) -> None:
    warnings: list[str] = []
    params = migrate_params(database, sources=[{"script": "V1__create_a.sql", "content": CREATE_A}])
    params["path"] = None

    result = migrate(params, warnings)

    assert [entry["version"] for entry in result["applied"]] == ["1"]
    assert warnings == []


def test_undo_without_versioned_warns(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {
            "V1__create_a.sql": CREATE_A,
            "U1__drop_a.sql": "DROP TABLE a;\n",
            "U2__drop_b.sql": "DROP TABLE b;\n",
        },
    )
    warnings: list[str] = []

    result = migrate(migrate_params(database, migrations), warnings)

    assert [entry["script"] for entry in result["applied"]] == ["V1__create_a.sql"]
    assert warnings == [
        "Undo script U2 (U2__drop_b.sql) has no versioned migration V2 to undo, so it is "
        "ignored. Check its version, or add the V2 file it undoes."
    ]


# --- target and order


def test_target_stops_then_rest_applies(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {"V1__create_a.sql": CREATE_A, "V2__create_b.sql": CREATE_B, "V3__create_c.sql": CREATE_C},
    )

    first = migrate(migrate_params(database, migrations, target="2"))
    again = migrate(migrate_params(database, migrations, target="2"))
    second = migrate(migrate_params(database, migrations))

    assert again["msg"] == (
        "No migration to apply up to the target; the database is at version 2, and V3 waits "
        "beyond it."
    )
    assert [entry["version"] for entry in first["applied"]] == ["1", "2"]
    assert first["pending"] == [
        {
            "version": "3",
            "description": "create c",
            "type": "versioned",
            "script": "V3__create_c.sql",
            "checksum": text_sha256(CREATE_C),
        }
    ]
    assert first["current_version"] == "2"
    assert [entry["version"] for entry in second["applied"]] == ["3"]
    assert second["pending"] == []
    assert second["current_version"] == "3"
    assert history_versions(database) == ["1", "2", "3"]


def test_target_below_current_needs_undo(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V2__create_b.sql": CREATE_B})
    migrate(migrate_params(database, migrations))

    with pytest.raises(PlanError) as raised:
        migrate(migrate_params(database, migrations, target="1"))

    assert str(raised.value) == (
        "Cannot undo to version 1: no undo script for V2. Add a U<version>__<description>.sql "
        "file for each, or choose a higher target."
    )
    assert history_versions(database) == ["1", "2"]


def test_out_of_order_pending_rejected(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V3__create_c.sql": CREATE_C})
    params = migrate_params(database, migrations)
    migrate(params)
    write_migrations(migrations, {"V2__create_b.sql": CREATE_B})

    with pytest.raises(PlanError) as raised:
        migrate(params)

    assert str(raised.value) == (
        "Pending migration V2 (V2__create_b.sql) is older than the current version 3. Give it "
        "a version above the current one."
    )
    assert history_versions(database) == ["1", "3"]
    assert not relation_exists(database, "b"), "the out-of-order V2 ran"


# --- repeatable migrations


ITEMS = "CREATE TABLE items (id integer PRIMARY KEY);\n"
ITEMS_PRICE = "ALTER TABLE items ADD COLUMN price numeric NOT NULL DEFAULT 0;\n"
ITEM_TOTALS = "CREATE OR REPLACE VIEW item_totals AS SELECT sum(price) AS total FROM items;\n"


def test_repeatable_runs_after_versioned(database: Database, migrations: Path) -> None:
    # The repeatable file sorts before the versioned ones by path, and its view needs the
    # column that V2 adds.
    write_migrations(
        migrations,
        {
            "a_views/R__item_totals.sql": ITEM_TOTALS,
            "schema/V1__create_items.sql": ITEMS,
            "schema/V2__add_price.sql": ITEMS_PRICE,
        },
    )

    result = migrate(migrate_params(database, migrations))

    assert [entry["script"] for entry in result["applied"]] == [
        "schema/V1__create_items.sql",
        "schema/V2__add_price.sql",
        "a_views/R__item_totals.sql",
    ]
    assert result["applied"][2]["version"] is None
    assert result["applied"][2]["type"] == "repeatable"
    assert result["current_version"] == "2"
    assert [(row["version"], row["type"]) for row in history_rows(database)] == [
        ("1", "SQL"),
        ("2", "SQL"),
        (None, "SQL_REPEATABLE"),
    ]


def test_repeatable_reapplied_on_checksum_change(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {
            "V1__create_items.sql": ITEMS,
            "V2__add_price.sql": ITEMS_PRICE,
            "R__item_totals.sql": ITEM_TOTALS,
        },
    )
    params = migrate_params(database, migrations)
    migrate(params)

    unchanged = migrate(params)
    changed_view = ITEM_TOTALS.replace("sum(price) AS total", "sum(price) AS total, count(*) AS n")
    write_migrations(migrations, {"R__item_totals.sql": changed_view})
    edited = migrate(params)

    assert unchanged["applied"] == []
    assert unchanged["changed"] is False
    assert [entry["script"] for entry in edited["applied"]] == ["R__item_totals.sql"]
    assert edited["current_version"] == "2"
    rows = history_rows(database)
    assert [(row["version"], row["script"]) for row in rows] == [
        ("1", "V1__create_items.sql"),
        ("2", "V2__add_price.sql"),
        (None, "R__item_totals.sql"),
        (None, "R__item_totals.sql"),
    ]
    assert rows[3]["checksum"] == text_sha256(changed_view)
    columns = database.query(
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = 'item_totals'::regclass"
        " AND attnum > 0 ORDER BY attnum"
    )
    assert columns == [("total",), ("n",)]


# --- history table options


def test_history_schema_created_when_missing(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A})

    result = migrate(migrate_params(database, migrations, history_schema="deploy_history"))

    assert result["history_table"] == "deploy_history.schema_migrations"
    assert result["history_table_created"] is True
    assert [row["version"] for row in history_rows(database, "deploy_history")] == ["1"]
    assert ("public", "schema_migrations") not in user_relations(database)


@pytest.mark.parametrize(
    ("schema", "table"),
    [
        pytest.param("Ops History", "Migrations", id="space-and-uppercase"),
        pytest.param('ops "live"', "schema.migrations", id="quote-and-dot"),
    ],
)
def test_history_identifiers_quoted(
    database: Database, migrations: Path, schema: str, table: str
) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A})
    params = migrate_params(database, migrations, history_schema=schema, history_table=table)

    first = migrate(params)
    second = migrate(params)

    assert first["history_table"] == f"{schema}.{table}"
    assert (schema, table) in user_relations(database)
    assert second["changed"] is False, "the second run did not find the history table"
    assert second["history_table_created"] is False
    assert [row["version"] for row in history_rows(database, schema, table)] == ["1"]


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("CREATE VIEW schema_migrations AS SELECT 1 AS installed_rank", "view"),
        ("CREATE SEQUENCE schema_migrations", "sequence"),
        ("CREATE MATERIALIZED VIEW schema_migrations AS SELECT 1 AS id", "materialized view"),
    ],
    ids=["view", "sequence", "materialized-view"],
)
def test_history_name_taken_by_other_relation(
    database: Database, migrations: Path, statement: str, kind: str
) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A})
    database.query(statement)

    with pytest.raises(MigrationError) as error:
        migrate(migrate_params(database, migrations))

    assert str(error.value) == (
        f"public.schema_migrations is a {kind}, not a history table. Set history_table to a "
        "name that no other relation uses."
    )
    assert ("public", "a") not in user_relations(database)


def test_invalid_lock_timeout_named(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A})

    with pytest.raises(MigrationError) as error:
        migrate(migrate_params(database, migrations, lock_timeout="abc"))

    assert str(error.value).startswith("Invalid lock_timeout 'abc': invalid value for parameter")
    assert str(error.value).endswith("Give a duration such as 5s or 500ms.")
    assert ("public", "a") not in user_relations(database)


# --- session state left by a migration


def test_search_path_change_does_not_leak(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {
            "V1__empty_search_path.sql": (
                "SET search_path = '';\nCREATE TABLE public.a (id integer PRIMARY KEY);\n"
            ),
            # An unqualified CREATE TABLE fails with SQLSTATE 3F000 under an empty search_path.
            "V2__record_search_path.sql": (
                "CREATE TABLE seen AS SELECT pg_catalog.current_setting('search_path') AS value;\n"
            ),
        },
    )

    migrate(migrate_params(database, migrations))

    assert database.query("SELECT value FROM public.seen") == [('"$user", public',)]
    assert history_versions(database) == ["1", "2"]


def test_set_role_does_not_leak(database: Database, migrations: Path, plain_role: str) -> None:
    write_migrations(
        migrations,
        {
            "V1__switch_role.sql": f'SET ROLE "{plain_role}";\nSELECT 1;\n',
            "V2__record_role.sql": (
                "CREATE TABLE seen AS SELECT current_user::text AS user_name,"
                " session_user::text AS session_name;\n"
            ),
        },
    )
    login_role = database.env["PGUSER"]

    migrate(migrate_params(database, migrations))

    assert database.query("SELECT user_name, session_name FROM seen") == [(login_role, login_role)]
    assert [row["installed_by"] for row in history_rows(database)] == [login_role, login_role]


def test_session_authorization_does_not_leak(
    database: Database, migrations: Path, superuser_role: str
) -> None:
    write_migrations(
        migrations,
        {
            "V1__switch_session.sql": f'SET SESSION AUTHORIZATION "{superuser_role}";\nSELECT 1;\n',
            "V2__record_role.sql": (
                "CREATE TABLE seen AS SELECT current_user::text AS user_name,"
                " session_user::text AS session_name;\n"
            ),
        },
    )
    login_role = database.env["PGUSER"]

    migrate(migrate_params(database, migrations))

    assert database.query("SELECT user_name, session_name FROM seen") == [(login_role, login_role)]
    assert [row["installed_by"] for row in history_rows(database)] == [login_role, login_role]


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(
            "CREATE TEMPORARY TABLE staging (id integer);\n",
            id="temporary-table",
        ),
        pytest.param(
            "PREPARE lookup AS SELECT 1;\n",
            id="prepared-statement",
        ),
    ],
)
def test_session_objects_do_not_leak(database: Database, migrations: Path, statement: str) -> None:
    # Each migration creates the same session object, which works when each runs alone.
    write_migrations(migrations, {"V1__first.sql": statement, "V2__second.sql": statement})

    result = migrate(migrate_params(database, migrations))

    assert [entry["version"] for entry in result["applied"]] == ["1", "2"]


# --- connecting


@pytest.mark.parametrize(
    ("option", "cause"),
    [
        pytest.param(
            "login_password",
            'FATAL:  password authentication failed for user "postgres"',
            id="wrong-password",
        ),
        pytest.param("login_port", "Connection refused", id="wrong-port"),
    ],
)
def test_connection_failure_message(
    database: Database, migrations: Path, option: str, cause: str
) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A})
    params = migrate_params(database, migrations)
    if option == "login_password":
        params["login_password"] = f"wrong-{uuid.uuid4().hex}"
    else:
        params["login_port"] = free_tcp_port()

    with pytest.raises(ConnectError) as raised:
        migrate(params)

    message = str(raised.value)
    assert message.startswith(
        f'Cannot connect to PostgreSQL: connection to server at "{params["login_host"]}", '
        f"port {params['login_port']} failed: "
    ), message
    assert cause in message
    assert params["login_password"] not in message
    assert "\n" not in message


# --- file contents


def test_copy_from_stdin_loads_inline_rows(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {
            "V1__load_tenants.sql": (
                "CREATE TABLE tenants (id integer PRIMARY KEY, name text NOT NULL);\n"
                "COPY tenants (id, name) FROM stdin;\n"
                "1\talpha\n"
                "2\tbeta; not a statement end\n"
                "\\.\n"
                "INSERT INTO tenants VALUES (3, 'gamma');\n"
            )
        },
    )

    migrate(migrate_params(database, migrations))

    assert database.query("SELECT id, name FROM tenants ORDER BY id") == [
        (1, "alpha"),
        (2, "beta; not a statement end"),
        (3, "gamma"),
    ]


def test_meta_command_rejected_before_anything_runs(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations,
        {
            "V1__create_a.sql": CREATE_A,
            "V2__create_b.sql": "\\set ON_ERROR_STOP on\nCREATE TABLE b (id integer);\n",
        },
    )

    with pytest.raises(ScanError) as raised:
        migrate(migrate_params(database, migrations))

    assert str(raised.value) == (
        "V2__create_b.sql cannot be run: line 1: psql meta-command \\set is not SQL and only "
        "psql understands it; remove it"
    )
    # Every pending file is scanned before V1 runs, and before the history table is created.
    assert user_relations(database) == set()


NOTES_LF = (
    "CREATE TABLE notes (body text NOT NULL);\nINSERT INTO notes VALUES ('line one\nline two');\n"
)
NOTES_BOM_CRLF = ("\ufeff" + NOTES_LF.replace("\n", "\r\n")).encode("utf-8")


def test_bom_crlf_checksum_matches_lf_twin(database: Database, migrations: Path) -> None:
    script = migrations / "V1__create_notes.sql"
    script.write_bytes(NOTES_BOM_CRLF)
    params = migrate_params(database, migrations)

    result = migrate(params)
    script.write_text(NOTES_LF, encoding="utf-8")
    rerun = migrate(params)

    assert result["applied"][0]["checksum"] == text_sha256(NOTES_LF)
    assert history_rows(database)[0]["checksum"] == text_sha256(NOTES_LF)
    assert rerun["changed"] is False, "the LF twin counts as an edited migration"


def test_crlf_literal_stored_with_lf(database: Database, migrations: Path) -> None:
    (migrations / "V1__create_notes.sql").write_bytes(NOTES_BOM_CRLF)

    migrate(migrate_params(database, migrations))

    assert database.query("SELECT body FROM notes") == [("line one\nline two",)]
