"""Adopting hand-migrated databases and accepting drift, through api.migrate on a real server.

baseline_version records migrations that already ran outside this module, and
allow_out_of_order, ignore_missing_files, accept_checksums and resolve_failed each accept
one kind of difference between the files and the history table. Every test reads the
history table and the catalog afterwards to prove what was, and was not, written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ExecutionError,
    PlanError,
)
from ansible_collections.dbops.migrations.tests.integration.check_support import (
    V1_SCRIPT,
    V2_SCRIPT,
    V3_SCRIPT,
    schema_objects,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SQL,
    file_sha256,
    history_rows,
    history_versions,
    migrate,
    migrate_params,
    relations_by_kind,
    text_sha256,
    write_migrations,
)
from pgcluster import Database

pytestmark = pytest.mark.matrix

CREATE_A = "CREATE TABLE a (id integer PRIMARY KEY);\n"
CREATE_B = "CREATE TABLE b (id integer PRIMARY KEY);\n"
CREATE_C = "CREATE TABLE c (id integer PRIMARY KEY);\n"

BASELINE_WARNING = (
    "Baselined V1, V2: recorded as applied without running their SQL, as baseline_version asks."
)

# The full history row, including the two columns that migrate_support leaves out.
FULL_HISTORY_QUERY = (
    "SELECT installed_rank, version, type, script, checksum, installed_by, installed_at,"
    " execution_time_ms, success, installed_at <= pg_catalog.statement_timestamp()"
    " FROM public.schema_migrations ORDER BY installed_rank"
)


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """Return an empty directory for the test's migration files."""
    directory = tmp_path / "sql"
    directory.mkdir()
    return directory


def apply_by_hand(database: Database, *scripts: str) -> None:
    """Run shipped files with plain psycopg2, one transaction each, as a console would.

    No history table is created or written.
    """
    connection = database.connect()
    try:
        for script in scripts:
            with connection, connection.cursor() as cursor:
                cursor.execute((SHIPPED_SQL / script).read_text(encoding="utf-8"))
    finally:
        connection.close()


def check_run(params: dict[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """Run the engine in check mode, as ansible-playbook --check does, and return the result."""
    sink = warnings if warnings is not None else []
    return api.migrate(dict(params), check_mode=True, diff=False, warn=sink.append)


def full_history(database: Database) -> list[tuple[Any, ...]]:
    return database.query(FULL_HISTORY_QUERY)


def history_table_exists(database: Database) -> bool:
    rows = database.query("SELECT pg_catalog.to_regclass('public.schema_migrations')")
    return rows[0][0] is not None


def relation_exists(database: Database, name: str) -> bool:
    return database.query("SELECT pg_catalog.to_regclass(%s)", [name])[0][0] is not None


def applied_versions(result: dict[str, Any]) -> list[str | None]:
    return [entry["version"] for entry in result["applied"]]


# --- baseline_version on a database migrated by hand


def test_baseline_records_hand_applied_versions(database: Database) -> None:
    apply_by_hand(database, V1_SCRIPT, V2_SCRIPT)
    warnings: list[str] = []

    result = migrate(migrate_params(database, SHIPPED_SQL, baseline_version="2"), warnings)

    assert result["baselined"] == ["1", "2"]
    assert applied_versions(result) == ["3"]
    assert result["changed"] is True
    assert result["current_version"] == "3"
    assert result["msg"] == (
        "Applied 1 migration (V3); the database is at version 3. Recorded V1, V2 as baseline, "
        "without running SQL."
    )
    assert warnings == [BASELINE_WARNING]
    rows = full_history(database)
    assert [row[:4] for row in rows] == [
        (1, "1", "BASELINE", V1_SCRIPT),
        (2, "2", "BASELINE", V2_SCRIPT),
        (3, "3", "SQL", V3_SCRIPT),
    ]
    for row, script in zip(rows, (V1_SCRIPT, V2_SCRIPT, V3_SCRIPT), strict=True):
        (
            rank,
            _version,
            _type,
            _script,
            checksum,
            installed_by,
            installed_at,
            _ms,
            success,
            in_past,
        ) = row
        assert checksum == file_sha256(SHIPPED_SQL / script), f"rank {rank} checksum"
        assert installed_by == database.cluster.superuser, f"rank {rank} installed_by"
        assert installed_at is not None, f"rank {rank} installed_at is not set"
        assert in_past is True, f"rank {rank} installed_at {installed_at} is in the future"
        assert success is True, f"rank {rank} is recorded as failed"
    assert [row[7] for row in rows[:2]] == [0, 0], "baselined rows report an execution time"
    assert relations_by_kind(database)["materialized view"] == SHIPPED_MATERIALIZED_VIEWS


def test_baseline_rerun_changes_nothing(database: Database) -> None:
    apply_by_hand(database, V1_SCRIPT, V2_SCRIPT)
    params = migrate_params(database, SHIPPED_SQL, baseline_version="2")
    migrate(params)
    before = full_history(database)
    warnings: list[str] = []

    result = migrate(params, warnings)

    assert result["changed"] is False
    assert result["baselined"] == []
    assert result["applied"] == []
    assert result["current_version"] == "3"
    assert warnings == []
    assert full_history(database) == before


def test_baseline_verify_accepts_complete_database(database: Database) -> None:
    apply_by_hand(database, V1_SCRIPT, V2_SCRIPT)
    params = migrate_params(database, SHIPPED_SQL, baseline_version="2", baseline_verify=True)

    result = migrate(params)

    assert result["baselined"] == ["1", "2"]
    assert applied_versions(result) == ["3"]
    assert [(row["version"], row["type"]) for row in history_rows(database)] == [
        ("1", "BASELINE"),
        ("2", "BASELINE"),
        ("3", "SQL"),
    ]


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        pytest.param('DROP TABLE "MatchLog"', 'V1 table "MatchLog"', id="table"),
        pytest.param(
            'DROP INDEX "Click_tenantId_fbc_idx"', 'V1 index "Click_tenantId_fbc_idx"', id="index"
        ),
    ],
)
def test_baseline_verify_rejects_half_migrated(database: Database, drop: str, missing: str) -> None:
    apply_by_hand(database, V1_SCRIPT)
    database.query(drop)
    params = migrate_params(database, SHIPPED_SQL, baseline_version="1", baseline_verify=True)

    with pytest.raises(PlanError) as raised:
        migrate(params)

    message = str(raised.value)
    assert message.startswith(
        "baseline_verify found objects missing that the baselined migrations create: "
    ), message
    assert missing in message
    assert '"Tenant"' not in message, "an object that exists is reported missing"
    assert message.endswith(
        "The database looks partly migrated; finish or repair it before baselining."
    ), message
    assert history_rows(database) == [], "a rejected baseline left history rows"
    assert not relation_exists(database, "v_dispatch_summary"), "V2 ran after the rejection"


# --- baseline_version where it does not apply


@pytest.mark.parametrize(
    "recorded_first",
    [
        pytest.param({"V1__create_a.sql": CREATE_A}, id="below-baseline"),
        pytest.param({"V3__create_c.sql": CREATE_C}, id="beyond-baseline"),
    ],
)
def test_baseline_rejected_when_history_has_versions(
    database: Database, migrations: Path, recorded_first: dict[str, str]
) -> None:
    write_migrations(migrations, recorded_first)
    migrate(migrate_params(database, migrations))
    recorded = history_rows(database)
    write_migrations(
        migrations,
        {"V1__create_a.sql": CREATE_A, "V2__create_b.sql": CREATE_B, "V3__create_c.sql": CREATE_C},
    )

    with pytest.raises(PlanError) as raised:
        migrate(migrate_params(database, migrations, baseline_version="2"))

    assert str(raised.value) == (
        "baseline_version 2 applies only to a database whose history has no versioned "
        "migration, and public.schema_migrations already records some. Remove baseline_version."
    )
    assert history_rows(database) == recorded
    assert not relation_exists(database, "b"), "V2 ran after the rejected baseline"


def test_baseline_below_every_file_rejected(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V2__create_b.sql": CREATE_B, "V3__create_c.sql": CREATE_C})

    with pytest.raises(PlanError) as raised:
        migrate(migrate_params(database, migrations, baseline_version="1"))

    assert str(raised.value) == (
        "baseline_version 1 matches no migration file: no versioned file has that version or "
        "a lower one."
    )
    assert history_rows(database) == []
    assert not relation_exists(database, "b"), "V2 ran after the rejected baseline"


THREE_FILES = {
    "V1__create_a.sql": CREATE_A,
    "V2__create_b.sql": CREATE_B,
    "V3__create_c.sql": CREATE_C,
}

ABOVE_NEWEST_MESSAGE = (
    "Invalid baseline_version 5: it is above V3 (V3__create_c.sql), the newest versioned "
    "migration file, so every run would fail once a migration up to version 5 is added. Set "
    "baseline_version to the version the database is at, which must have a migration file, "
    "and add any missing files first. Nothing was recorded."
)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_baseline_above_newest_file_rejected(
    database: Database, migrations: Path, check_mode: bool
) -> None:
    write_migrations(migrations, THREE_FILES)
    params = migrate_params(database, migrations, baseline_version="5")

    with pytest.raises(PlanError) as raised:
        api.migrate(params, check_mode=check_mode, diff=False, warn=[].append)

    assert str(raised.value) == ABOVE_NEWEST_MESSAGE
    assert not history_table_exists(database), "a rejected baseline created the history table"
    assert not relation_exists(database, "a"), "V1 ran after the rejected baseline"


def test_baseline_at_newest_file_stays_in_play(database: Database, migrations: Path) -> None:
    write_migrations(migrations, THREE_FILES)
    params = migrate_params(database, migrations, baseline_version="3.0")
    first = migrate(params)
    write_migrations(migrations, {"V4__create_d.sql": "CREATE TABLE d (id integer);\n"})

    second = migrate(params)

    assert first["baselined"] == ["1", "2", "3"]
    assert applied_versions(second) == ["4"]
    assert second["baselined"] == []
    assert history_versions(database) == ["1", "2", "3", "4"]


def test_baseline_version_not_a_number_rejected(database: Database) -> None:
    apply_by_hand(database, V1_SCRIPT)

    with pytest.raises(PlanError, match="baseline_version"):
        migrate(migrate_params(database, SHIPPED_SQL, baseline_version="two"))


def test_baseline_check_mode_writes_nothing(database: Database) -> None:
    apply_by_hand(database, V1_SCRIPT, V2_SCRIPT)
    objects = schema_objects(database)

    result = check_run(migrate_params(database, SHIPPED_SQL, baseline_version="2"))

    assert result["baselined"] == ["1", "2"]
    assert result["changed"] is True
    assert [(entry["version"], entry["verified"]) for entry in result["applied"]] == [("3", True)]
    assert result["history_table_created"] is True
    assert not history_table_exists(database), "check mode created the history table"
    assert schema_objects(database) == objects, "check mode changed the schema"


def test_baseline_check_mode_warning_truthful(database: Database) -> None:
    apply_by_hand(database, V1_SCRIPT, V2_SCRIPT)
    warnings: list[str] = []

    check_run(migrate_params(database, SHIPPED_SQL, baseline_version="2"), warnings)

    assert len(warnings) == 1, warnings
    assert "would" in warnings[0], warnings[0]
    assert "recorded as applied" not in warnings[0], warnings[0]


# --- allow_out_of_order


def test_out_of_order_applied_when_allowed(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V3__create_c.sql": CREATE_C})
    migrate(migrate_params(database, migrations))
    write_migrations(migrations, {"V2__create_b.sql": CREATE_B})

    with pytest.raises(PlanError, match=r"^Pending migration V2 \(V2__create_b.sql\) is older"):
        migrate(migrate_params(database, migrations))
    assert not relation_exists(database, "b"), "V2 ran without allow_out_of_order"

    warnings: list[str] = []
    result = migrate(migrate_params(database, migrations, allow_out_of_order=True), warnings)

    assert applied_versions(result) == ["2"]
    assert result["changed"] is True
    assert result["current_version"] == "3"
    assert warnings == [
        "Pending migration V2 (V2__create_b.sql) is older than the current version 3; applied "
        "anyway because allow_out_of_order is set."
    ]
    assert history_versions(database) == ["1", "3", "2"]
    assert relation_exists(database, "b"), "V2 is recorded but table b is missing"

    again = migrate(migrate_params(database, migrations, allow_out_of_order=True))
    assert again["changed"] is False
    assert history_versions(database) == ["1", "3", "2"]


# --- ignore_missing_files


def test_missing_file_ignored_when_asked(database: Database, migrations: Path) -> None:
    write_migrations(migrations, {"V1__create_a.sql": CREATE_A, "V2__create_b.sql": CREATE_B})
    migrate(migrate_params(database, migrations))
    (migrations / "V1__create_a.sql").unlink()
    write_migrations(migrations, {"V3__create_c.sql": CREATE_C})

    with pytest.raises(PlanError, match=r"applied migration V1 \(V1__create_a.sql\) has no file"):
        migrate(migrate_params(database, migrations))
    assert not relation_exists(database, "c"), "V3 ran despite the missing file"

    warnings: list[str] = []
    result = migrate(migrate_params(database, migrations, ignore_missing_files=True), warnings)

    assert applied_versions(result) == ["3"]
    assert result["current_version"] == "3"
    assert warnings == [
        "Applied migration V1 (V1__create_a.sql) has no file any more; ignored because "
        "ignore_missing_files is set."
    ]
    assert history_versions(database) == ["1", "2", "3"], "the V1 row must stay recorded"
    assert relation_exists(database, "a"), "V1's table is gone"
    assert relation_exists(database, "c"), "V3 is recorded but table c is missing"


# --- accept_checksums

# V1 inserts a row, so a second execution of its SQL would show as a second row.
SETTINGS_V1 = (
    "CREATE TABLE settings (name text NOT NULL);\nINSERT INTO settings VALUES ('default');\n"
)
SETTINGS_V1_COMMENTED = "-- Holds one row per named setting.\n" + SETTINGS_V1


def settings_rows(database: Database) -> list[tuple[Any, ...]]:
    return database.query("SELECT name FROM settings")


def recorded_checksum(database: Database, version: str) -> str:
    rows = [row for row in history_rows(database) if row["version"] == version]
    assert len(rows) == 1, rows
    return rows[0]["checksum"]


@pytest.fixture
def commented_v1(database: Database, migrations: Path) -> Path:
    """Apply SETTINGS_V1, then add a comment to its file, so its checksum no longer matches."""
    write_migrations(migrations, {"V1__settings.sql": SETTINGS_V1})
    migrate(migrate_params(database, migrations))
    write_migrations(migrations, {"V1__settings.sql": SETTINGS_V1_COMMENTED})
    return migrations


def test_edited_migration_rejected_by_default(database: Database, commented_v1: Path) -> None:
    with pytest.raises(PlanError) as raised:
        migrate(migrate_params(database, commented_v1))

    message = str(raised.value)
    assert "applied migration V1 (V1__settings.sql) was changed after it was applied" in message
    assert text_sha256(SETTINGS_V1) in message, "the recorded checksum is not named"
    assert text_sha256(SETTINGS_V1_COMMENTED) in message, "the new checksum is not named"
    assert recorded_checksum(database, "1") == text_sha256(SETTINGS_V1)


def test_accept_checksums_records_new_checksum(database: Database, commented_v1: Path) -> None:
    params = migrate_params(database, commented_v1, accept_checksums=["1"])
    warnings: list[str] = []

    result = migrate(params, warnings)

    assert result["accepted_checksums"] == ["1"]
    assert result["changed"] is True
    assert result["applied"] == []
    assert result["msg"] == (
        "No migration pending; the database is at version 1. Recorded V1 with the new "
        "checksum, without running SQL."
    )
    assert warnings == [
        f"Applied migration V1 (V1__settings.sql) changed after it was applied; "
        f"accept_checksums records checksum {text_sha256(SETTINGS_V1_COMMENTED)} in place of "
        f"{text_sha256(SETTINGS_V1)}. No SQL of V1 ran."
    ]
    assert recorded_checksum(database, "1") == text_sha256(SETTINGS_V1_COMMENTED)
    assert settings_rows(database) == [("default",)], "V1's INSERT ran again"

    again = migrate(params)
    assert again["changed"] is False
    assert again["accepted_checksums"] == []


def test_accept_checksums_check_mode_writes_nothing(database: Database, commented_v1: Path) -> None:
    result = check_run(migrate_params(database, commented_v1, accept_checksums=["1"]))

    assert result["accepted_checksums"] == ["1"]
    assert result["changed"] is True
    assert result["msg"].endswith("Would record V1 with the new checksum, without running SQL.")
    assert recorded_checksum(database, "1") == text_sha256(SETTINGS_V1)
    assert settings_rows(database) == [("default",)]


def test_accept_checksums_check_mode_warning_truthful(
    database: Database, commented_v1: Path
) -> None:
    warnings: list[str] = []

    check_run(migrate_params(database, commented_v1, accept_checksums=["1"]), warnings)

    assert len(warnings) == 1, warnings
    assert "would record" in warnings[0], warnings[0]


def test_accept_checksums_not_a_number_rejected(database: Database, commented_v1: Path) -> None:
    with pytest.raises(PlanError, match="accept_checksums"):
        migrate(migrate_params(database, commented_v1, accept_checksums=["V1"]))


# --- resolve_failed=mark_applied

ITEMS_V1 = "CREATE TABLE items (id integer PRIMARY KEY, name text);\n"
# The second index names a column that does not exist, so V2 fails after its first
# statement committed.
ITEMS_INDEXES = (
    "-- dbops:no-transaction\n"
    "CREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n"
    "CREATE INDEX CONCURRENTLY items_sku_idx ON items (sku);\n"
)
ITEMS_INDEXES_FIXED = (
    "-- dbops:no-transaction\n"
    "ALTER TABLE items ADD COLUMN sku text;\n"
    "CREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n"
    "CREATE INDEX CONCURRENTLY items_sku_idx ON items (sku);\n"
)


def test_mark_applied_settles_failed_migration(database: Database, migrations: Path) -> None:
    write_migrations(
        migrations, {"V1__items.sql": ITEMS_V1, "V2__items_indexes.sql": ITEMS_INDEXES}
    )
    with pytest.raises(ExecutionError) as raised:
        migrate(migrate_params(database, migrations))
    assert raised.value.sqlstate == "42703"
    failed = history_rows(database)[-1]
    assert (failed["version"], failed["success"]) == ("2", False)
    assert failed["checksum"] == text_sha256(ITEMS_INDEXES)
    # Finish V2 by hand, and change the file to say what was done.
    database.query("ALTER TABLE items ADD COLUMN sku text")
    database.query("CREATE INDEX items_sku_idx ON items (sku)")
    write_migrations(migrations, {"V2__items_indexes.sql": ITEMS_INDEXES_FIXED})
    warnings: list[str] = []

    result = migrate(migrate_params(database, migrations, resolve_failed="mark_applied"), warnings)

    assert result["resolved_failed"] == ["2"]
    assert result["changed"] is True
    assert result["applied"] == [], "mark_applied ran the migration"
    assert warnings == [
        "V2 was recorded as failed; resolve_failed=mark_applied recorded it as applied. "
        "No SQL of it ran."
    ]
    row = history_rows(database)[-1]
    assert (row["version"], row["type"], row["success"]) == ("2", "SQL_NO_TRANSACTION", True)
    assert row["checksum"] == text_sha256(ITEMS_INDEXES_FIXED), "checksum is not the file's"
    assert len(history_rows(database)) == 2, "mark_applied added a row"

    again = migrate(migrate_params(database, migrations))
    assert again["changed"] is False
    assert again["resolved_failed"] == []
