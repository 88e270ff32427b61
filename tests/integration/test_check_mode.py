"""Check mode of the migration engine, through api.migrate against a real PostgreSQL.

Check mode plans as a real run does (same advisory lock, history, checksum and order
checks), then runs every pending transactional migration in one transaction that is always
rolled back. These tests prove that it fails where the real run would, reports what the
real run would do with the same result keys, and writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ExecutionError,
    LockTimeoutError,
    MigrationError,
    PlanError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    checksum,
)
from ansible_collections.dbops.migrations.tests.integration.check_support import (
    CHECK_NOTHING_WRITTEN,
    HISTORY,
    ORIGINAL_SQL,
    SHIPPED_SQL,
    V1_SCRIPT,
    V2_SCRIPT,
    V3_SCRIPT,
    EngineThread,
    apply,
    check,
    copy_migration,
    history_checksums,
    history_versions,
    module_params,
    relation_counts,
    schema_objects,
    wait_until,
    write_migrations,
)
from pgcluster import Database

pytestmark = pytest.mark.matrix

ITEMS_TABLE = "CREATE TABLE items (id integer PRIMARY KEY, name text);\n"
ADD_NOTE = "ALTER TABLE items ADD COLUMN note text;\n"
ADD_SKU_NOT_NULL = "ALTER TABLE items ADD COLUMN sku text NOT NULL;\n"
APPLICATION_NAME = "dbops.migrations postgresql_migrate"

# A migration set with a no-transaction migration (V2) between transactional ones. V4 uses
# the index that only V2 creates, while V3 and V5 depend on nothing that check mode skips.
NO_TRANSACTION_SET = {
    "V1__items.sql": ITEMS_TABLE,
    "V2__items_name_index.sql": (
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n"
    ),
    "V3__orders.sql": "CREATE TABLE orders (id integer PRIMARY KEY, item_id integer);\n",
    "V4__rename_items_name_index.sql": "ALTER INDEX items_name_idx RENAME TO items_by_name;\n",
    "V5__customers.sql": "CREATE TABLE customers (id integer PRIMARY KEY);\n",
}

NO_TRANSACTION_WARNING = (
    "V2 (V2__items_name_index.sql) is marked -- dbops:no-transaction and cannot run inside "
    "the check transaction, so check mode did not execute it."
)


def column_names(database: Database, table: str) -> list[str]:
    rows = database.query(
        "SELECT attname FROM pg_catalog.pg_attribute"
        " WHERE attrelid = pg_catalog.to_regclass(%s) AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        [table],
    )
    return [row[0] for row in rows]


def applied_flags(result: dict) -> dict[str, bool]:
    """Return ``verified`` of each entry in ``applied``, by version."""
    return {entry["version"]: entry["verified"] for entry in result["applied"]}


def split_original_v2(directory: Path) -> Path:
    """Lay out the corrected V1 and the original V2 under their shipped script names."""
    copy_migration(SHIPPED_SQL / V1_SCRIPT, directory, V1_SCRIPT)
    copy_migration(ORIGINAL_SQL / V2_SCRIPT, directory, V2_SCRIPT)
    return directory


@pytest.fixture
def items_v1_applied(database: Database, tmp_path: Path) -> Path:
    """Apply V1 (table ``items``) for real from a directory that the test adds to."""
    write_migrations(tmp_path, {"V1__items.sql": ITEMS_TABLE})
    apply(module_params(database, tmp_path))
    return tmp_path


@pytest.fixture
def shipped_v1_applied(database: Database) -> None:
    """Apply the corrected V1 for real, from files/sql/schema alone."""
    apply(module_params(database, SHIPPED_SQL / "schema"))


# --- the original SQL fails in check mode as it would for real


def test_original_v1_check_fails_at_first_foreign_key(database: Database) -> None:
    with pytest.raises(ExecutionError) as caught:
        check(module_params(database, ORIGINAL_SQL))

    error = caught.value
    assert error.version == "1"
    assert error.script == V1_SCRIPT
    assert error.line == 238
    assert error.sqlstate == "42804"
    # The Detail sentence is the server's wording, which this collection does not control,
    # so only the text around it is compared exactly.
    assert str(error).startswith(
        "Migration V1 (schema/V1__initial_schema.sql, line 238) failed: foreign key constraint "
        '"WebhookRaw_tenantId_fkey" cannot be implemented (SQLSTATE 42804).'
    )
    assert " Detail: " in str(error)
    assert str(error).endswith(CHECK_NOTHING_WRITTEN)


def test_original_v1_check_leaves_database_empty(database: Database) -> None:
    with pytest.raises(ExecutionError):
        check(module_params(database, ORIGINAL_SQL))

    assert schema_objects(database) == []


def test_original_v2_check_fails_on_missing_column(
    database: Database, shipped_v1_applied: None, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionError) as caught:
        check(module_params(database, split_original_v2(tmp_path)))

    error = caught.value
    assert error.script == V2_SCRIPT
    assert error.line == 8
    assert error.sqlstate == "42703"
    assert str(error) == (
        "Migration V2 (views/V2__analytics_views.sql, line 8) failed: column da.created_at "
        'does not exist (SQLSTATE 42703). Hint: Perhaps you meant to reference the column "'
        'da.createdAt". ' + CHECK_NOTHING_WRITTEN
    )


def test_original_v2_check_keeps_database_at_v1(
    database: Database, shipped_v1_applied: None, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionError):
        check(module_params(database, split_original_v2(tmp_path)))

    assert history_versions(database) == ["1"]
    assert relation_counts(database).get("v", 0) == 0


def test_check_failure_message_matches_real_run(
    database: Database, shipped_v1_applied: None, tmp_path: Path
) -> None:
    params = module_params(database, split_original_v2(tmp_path))
    with pytest.raises(ExecutionError) as in_check:
        check(params)
    with pytest.raises(ExecutionError) as in_real_run:
        apply(params)

    real_run_tail = "Nothing from V2 was committed; the database stays at version 1."
    assert str(in_real_run.value).endswith(real_run_tail)
    assert str(in_check.value).removesuffix(CHECK_NOTHING_WRITTEN) == str(
        in_real_run.value
    ).removesuffix(real_run_tail)


# --- the shipped SQL: check, apply, check, apply


def test_shipped_sql_four_steps_report_changed(database: Database) -> None:
    params = module_params(database, SHIPPED_SQL)

    first_check, _warnings = check(params)
    first_apply = apply(params)
    second_check, _warnings = check(params)
    second_apply = apply(params)

    assert first_check["changed"] is True
    assert first_apply["changed"] is True
    assert second_check["changed"] is False
    assert second_apply["changed"] is False


def test_shipped_sql_check_writes_nothing(database: Database) -> None:
    check(module_params(database, SHIPPED_SQL))

    assert schema_objects(database) == []
    assert history_versions(database) is None


def test_shipped_sql_check_reports_verified_plan(database: Database) -> None:
    result, warnings = check(module_params(database, SHIPPED_SQL))

    assert [entry["script"] for entry in result["applied"]] == [V1_SCRIPT, V2_SCRIPT, V3_SCRIPT]
    assert applied_flags(result) == {"1": True, "2": True, "3": True}
    assert result["history_table_created"] is True
    assert result["current_version"] == "3"
    assert result["pending"] == []
    assert result["msg"] == (
        "Check mode: would apply 3 migrations (V1, V2, V3), 3 of 3 verified in a transaction "
        "that was rolled back; nothing was written."
    )
    assert warnings == []


def test_check_result_keys_match_real_run(database: Database) -> None:
    params = module_params(database, SHIPPED_SQL)

    checked, _warnings = check(params)
    applied = apply(params)

    assert sorted(checked) == sorted(applied)
    assert [sorted(entry) for entry in checked["applied"]] == [
        sorted(entry) for entry in applied["applied"]
    ]


def test_check_after_apply_writes_nothing(database: Database) -> None:
    params = module_params(database, SHIPPED_SQL)
    apply(params)
    objects_before = schema_objects(database)
    history_before = database.query("SELECT * FROM public.schema_migrations")

    result, _warnings = check(params)

    assert result["msg"] == "No migration pending; the database is at version 3."
    assert result["history_table_created"] is False
    assert schema_objects(database) == objects_before
    assert database.query("SELECT * FROM public.schema_migrations") == history_before


# --- check mode runs against the real data


@pytest.mark.parametrize("rows", [0, 2], ids=["empty", "with_rows"])
def test_not_null_column_check_writes_nothing(
    database: Database, items_v1_applied: Path, rows: int
) -> None:
    write_migrations(items_v1_applied, {"V2__items_sku.sql": ADD_SKU_NOT_NULL})
    database.query(
        "INSERT INTO items SELECT i, 'item ' || i FROM pg_catalog.generate_series(1, %s) i",
        [rows],
    )
    fails = pytest.raises(ExecutionError) if rows else contextlib.nullcontext()

    with fails:
        check(module_params(database, items_v1_applied))

    assert column_names(database, "items") == ["id", "name"]
    assert database.query("SELECT count(*) FROM items") == [(rows,)]
    assert history_versions(database) == ["1"]


def test_not_null_column_passes_check_on_empty_table(
    database: Database, items_v1_applied: Path
) -> None:
    write_migrations(items_v1_applied, {"V2__items_sku.sql": ADD_SKU_NOT_NULL})

    result, _warnings = check(module_params(database, items_v1_applied))

    assert result["changed"] is True
    assert applied_flags(result) == {"2": True}


def test_not_null_column_fails_check_with_rows(database: Database, items_v1_applied: Path) -> None:
    write_migrations(items_v1_applied, {"V2__items_sku.sql": ADD_SKU_NOT_NULL})
    database.query("INSERT INTO items VALUES (1, 'first item')")

    with pytest.raises(ExecutionError) as caught:
        check(module_params(database, items_v1_applied))

    assert caught.value.sqlstate == "23502"
    assert str(caught.value) == (
        'Migration V2 (V2__items_sku.sql, line 1) failed: column "sku" of relation "items" '
        "contains null values (SQLSTATE 23502). " + CHECK_NOTHING_WRITTEN
    )


# Each set succeeds in a real run, where every migration commits before the next one starts.
# In check mode all of them share one transaction, and PostgreSQL rejects the last one.
ONE_TRANSACTION_FAILURES = {
    "enum_value_used_after_adding": {
        "V1__moods.sql": "CREATE TYPE mood AS ENUM ('calm');\n"
        "CREATE TABLE people (name text, mood mood);\n",
        "V2__mood_happy.sql": "ALTER TYPE mood ADD VALUE 'happy';\n",
        "V3__happy_person.sql": "INSERT INTO people VALUES ('Ana', 'happy');\n",
    },
    "alter_table_with_deferred_trigger_events": {
        "V1__tables.sql": "CREATE TABLE parents (id integer PRIMARY KEY);\n"
        "CREATE TABLE children (id integer,"
        " parent_id integer REFERENCES parents DEFERRABLE INITIALLY DEFERRED);\n",
        "V2__rows.sql": "INSERT INTO parents VALUES (1);\nINSERT INTO children VALUES (1, 1);\n",
        "V3__children_note.sql": "ALTER TABLE children ADD COLUMN note text;\n",
    },
}


@pytest.mark.parametrize(
    "files", ONE_TRANSACTION_FAILURES.values(), ids=list(ONE_TRANSACTION_FAILURES)
)
def test_check_passes_where_real_run_succeeds(
    database: Database, tmp_path: Path, files: dict[str, str]
) -> None:
    params = module_params(database, write_migrations(tmp_path, files))

    checked, _warnings = check(params)
    applied = apply(params)

    assert checked["changed"] is True
    assert applied["current_version"] == "3"


# --- sequences, which a rollback does not restore


SEQUENCE_FILES = {
    "V1__orders.sql": "CREATE TABLE orders (id bigserial PRIMARY KEY, note text);\n",
    "V2__orders_rows.sql": "INSERT INTO orders (note) VALUES ('a'), ('b'), ('c');\n",
}


def test_setval_migration_not_executed_in_check(database: Database, tmp_path: Path) -> None:
    write_migrations(tmp_path, SEQUENCE_FILES)
    apply(module_params(database, tmp_path))
    write_migrations(
        tmp_path, {"V3__restart_orders.sql": "SELECT setval('orders_id_seq', 1, false);\n"}
    )

    result, warnings = check(module_params(database, tmp_path))

    assert applied_flags(result) == {"3": False}
    assert warnings == [
        "V3 (V3__restart_orders.sql) calls setval(), which changes a sequence outside the "
        "transaction, so a rollback would not undo it: check mode did not execute it."
    ]
    assert database.query("SELECT last_value, is_called FROM orders_id_seq") == [(3, True)]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT setval(pg_get_serial_sequence('orders', 'id'), 1, false);\n",
        "SELECT setval('a.b.c.d', 1, false);\n",
    ],
    ids=["name-not-literal", "invalid-name"],
)
def test_setval_without_known_sequence_not_executed(
    database: Database, tmp_path: Path, statement: str
) -> None:
    write_migrations(tmp_path, SEQUENCE_FILES)
    apply(module_params(database, tmp_path))
    write_migrations(tmp_path, {"V3__restart_orders.sql": statement})

    result, warnings = check(module_params(database, tmp_path))

    assert applied_flags(result) == {"3": False}
    assert len(warnings) == 1
    assert "calls setval()" in warnings[0]
    assert database.query("SELECT last_value, is_called FROM orders_id_seq") == [(3, True)]


def test_setval_on_new_sequence_verified(database: Database, tmp_path: Path) -> None:
    write_migrations(
        tmp_path,
        {
            "V1__tags.sql": "CREATE TABLE tags (id serial PRIMARY KEY);\n"
            "SELECT setval('tags_id_seq', 40, true);\n"
        },
    )

    result, warnings = check(module_params(database, tmp_path))

    assert applied_flags(result) == {"1": True}
    assert warnings == []


# --- migrations marked -- dbops:no-transaction


def test_no_transaction_migration_is_not_verified(database: Database, tmp_path: Path) -> None:
    files = {name: NO_TRANSACTION_SET[name] for name in list(NO_TRANSACTION_SET)[:3]}
    write_migrations(tmp_path, files)

    result, _warnings = check(module_params(database, tmp_path))

    assert result["changed"] is True
    assert applied_flags(result) == {"1": True, "2": False, "3": True}
    assert result["msg"] == (
        "Check mode: would apply 3 migrations (V1, V2, V3), 2 of 3 verified in a transaction "
        "that was rolled back; nothing was written."
    )


def test_no_transaction_migration_warns(database: Database, tmp_path: Path) -> None:
    files = {name: NO_TRANSACTION_SET[name] for name in list(NO_TRANSACTION_SET)[:3]}
    write_migrations(tmp_path, files)

    _result, warnings = check(module_params(database, tmp_path))

    assert warnings == [NO_TRANSACTION_WARNING]


def test_dependent_migration_is_not_verified(database: Database, tmp_path: Path) -> None:
    write_migrations(tmp_path, NO_TRANSACTION_SET)

    result, _warnings = check(module_params(database, tmp_path))

    assert applied_flags(result) == {"1": True, "2": False, "3": True, "4": False, "5": True}


def test_dependent_migration_warns(database: Database, tmp_path: Path) -> None:
    write_migrations(tmp_path, NO_TRANSACTION_SET)

    _result, warnings = check(module_params(database, tmp_path))

    assert warnings == [
        NO_TRANSACTION_WARNING,
        "V4 could not be verified, possibly because it depends on V2, which check mode did "
        "not execute: Migration V4 (V4__rename_items_name_index.sql, line 1) failed: relation "
        '"items_name_idx" does not exist (SQLSTATE 42P01). ' + CHECK_NOTHING_WRITTEN,
    ]


def test_no_transaction_set_check_writes_nothing(database: Database, tmp_path: Path) -> None:
    write_migrations(tmp_path, NO_TRANSACTION_SET)

    check(module_params(database, tmp_path))

    assert schema_objects(database) == []


def test_syntax_error_after_skip_fails_check(database: Database, tmp_path: Path) -> None:
    files = dict(NO_TRANSACTION_SET)
    files["V4__rename_items_name_index.sql"] = "ALTER TABLE items ADD COLUMN;\n"
    write_migrations(tmp_path, files)

    with pytest.raises(ExecutionError) as caught:
        check(module_params(database, tmp_path))

    assert caught.value.sqlstate == "42601"


# --- check_strategy: plan


def test_plan_strategy_executes_no_sql(database: Database) -> None:
    # Executed, the original V1 would fail at line 238 (see the tests above).
    result, warnings = check(module_params(database, ORIGINAL_SQL, check_strategy="plan"))

    assert result["changed"] is True
    assert applied_flags(result) == {"1": False, "2": False, "3": False}
    assert result["msg"] == (
        "Check mode: would apply 3 migrations (V1, V2, V3), planned only, no SQL executed; "
        "nothing was written."
    )
    assert warnings == []


def test_plan_strategy_writes_nothing(database: Database) -> None:
    check(module_params(database, ORIGINAL_SQL, check_strategy="plan"))

    assert schema_objects(database) == []


# --- planning errors are the same in check mode


def edited_v1(directory: Path) -> Path:
    """Write the shipped V1 with one comment line added after it was applied."""
    text = (SHIPPED_SQL / V1_SCRIPT).read_text(encoding="utf-8") + "-- edited after applying\n"
    return write_migrations(directory, {"V1__initial_schema.sql": text})


@pytest.mark.parametrize("strategy", ["execute", "plan"])
def test_check_detects_drift(
    database: Database, shipped_v1_applied: None, tmp_path: Path, strategy: str
) -> None:
    params = module_params(database, edited_v1(tmp_path), check_strategy=strategy)
    recorded = history_checksums(database)["1"]
    edited = checksum((tmp_path / "V1__initial_schema.sql").read_text(encoding="utf-8"))

    with pytest.raises(PlanError) as in_check:
        check(params)
    with pytest.raises(PlanError) as in_real_run:
        apply(params)

    assert str(in_check.value) == (
        "Migration files do not match the history table: applied migration V1 "
        f"(V1__initial_schema.sql) was changed after it was applied: checksum {recorded} in "
        f"the history, {edited} now. Restore the applied files as they were, and put changes "
        "in a new migration. If an edit changes nothing that the migration does, such as a "
        "comment, set accept_checksums to ['1'] to record the new checksum without running "
        "any SQL."
    )
    assert str(in_check.value) == str(in_real_run.value)


def test_check_with_drift_writes_nothing(
    database: Database, shipped_v1_applied: None, tmp_path: Path
) -> None:
    recorded = history_checksums(database)
    objects = schema_objects(database)

    with pytest.raises(PlanError):
        check(module_params(database, edited_v1(tmp_path)))

    assert history_checksums(database) == recorded
    assert schema_objects(database) == objects


FAILED_INDEX_SET = {
    "V1__items.sql": ITEMS_TABLE,
    "V2__items_name_index.sql": (
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY items_name_idx ON items (nme);\n"
    ),
}


@pytest.fixture
def failed_v2_recorded(database: Database, tmp_path: Path) -> Path:
    """Apply FAILED_INDEX_SET for real, so V2 fails and is recorded as failed."""
    write_migrations(tmp_path, FAILED_INDEX_SET)
    with pytest.raises(ExecutionError):
        apply(module_params(database, tmp_path))
    return tmp_path


def test_check_rejects_failed_record(database: Database, failed_v2_recorded: Path) -> None:
    params = module_params(database, failed_v2_recorded)

    with pytest.raises(PlanError) as in_check:
        check(params)
    with pytest.raises(PlanError) as in_real_run:
        apply(params)

    assert str(in_check.value).startswith(
        "Migration V2 (V2__items_name_index.sql) is recorded as failed in an earlier run"
    )
    assert str(in_check.value) == str(in_real_run.value)


@pytest.mark.parametrize("decision", ["retry", "mark_applied"])
def test_check_resolve_failed_keeps_record(
    database: Database, failed_v2_recorded: Path, decision: str
) -> None:
    recorded = database.query("SELECT * FROM public.schema_migrations ORDER BY installed_rank")

    check(module_params(database, failed_v2_recorded, resolve_failed=decision))

    assert (
        database.query("SELECT * FROM public.schema_migrations ORDER BY installed_rank") == recorded
    )


@pytest.mark.parametrize(
    ("decision", "claim"),
    [("retry", "removed that record"), ("mark_applied", "recorded it as applied")],
)
def test_check_resolve_failed_warns_truthfully(
    database: Database, failed_v2_recorded: Path, decision: str, claim: str
) -> None:
    _result, warnings = check(module_params(database, failed_v2_recorded, resolve_failed=decision))

    assert warnings
    assert claim not in warnings[0]


# --- the migration lock and lock_timeout


@pytest.fixture
def lock_session(database: Database) -> Iterator[psycopg2.extensions.connection]:
    """Open a separate autocommit session for taking locks, and close it after the test."""
    connection = database.connect()
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


def backend_pid(connection: psycopg2.extensions.connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.pg_backend_pid()")
        return cursor.fetchone()[0]


def test_check_times_out_on_held_migration_lock(
    database: Database, lock_session: psycopg2.extensions.connection
) -> None:
    with lock_session.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [HISTORY.lock_key()])
    holder = backend_pid(lock_session)

    with pytest.raises(LockTimeoutError) as caught:
        check(module_params(database, SHIPPED_SQL, lock_wait_timeout=1))

    message = str(caught.value)
    assert message.startswith(
        "Timed out after 1 s waiting for the migration lock on public.schema_migrations, held "
        f"by pid {holder} (pgcluster, idle, connected since "
    )
    assert message.endswith("). Wait for that run to finish, or stop it, then run again.")
    assert history_versions(database) is None


# The real run in the lock test stops in V1 on this advisory lock until the test releases it.
GATE_KEY = 424242


def gate_waiter_pid(database: Database) -> int | None:
    """Return the pid of the backend waiting for GATE_KEY, or None."""
    rows = database.query(
        "SELECT pid FROM pg_catalog.pg_locks"
        " WHERE locktype = 'advisory' AND NOT granted AND classid = 0 AND objid = %s",
        [GATE_KEY],
    )
    return rows[0][0] if rows else None


def polls_migration_lock(database: Database, other_than: int) -> bool:
    """Return whether a migration run other than pid ``other_than`` has polled the lock."""
    rows = database.query(
        "SELECT 1 FROM pg_catalog.pg_stat_activity"
        " WHERE datname = pg_catalog.current_database() AND application_name = %s"
        " AND pid <> %s AND query LIKE '%%pg_try_advisory_lock%%'",
        [APPLICATION_NAME, other_than],
    )
    return bool(rows)


def test_waiting_check_plans_after_real_run(
    database: Database, tmp_path: Path, lock_session: psycopg2.extensions.connection
) -> None:
    write_migrations(
        tmp_path,
        {
            "V1__items.sql": f"SELECT pg_catalog.pg_advisory_xact_lock({GATE_KEY});\n"
            + ITEMS_TABLE,
            "V2__items_note.sql": ADD_NOTE,
        },
    )
    with lock_session.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [GATE_KEY])
    real_run = EngineThread(
        module_params(database, tmp_path, target="1", lock_timeout="60s"), check_mode=False
    )
    checking = EngineThread(module_params(database, tmp_path), check_mode=True)

    try:
        real_run.start()
        wait_until(lambda: gate_waiter_pid(database) is not None, "the real run waits in V1")
        real_run_pid = gate_waiter_pid(database)
        checking.start()
        wait_until(
            lambda: polls_migration_lock(database, other_than=real_run_pid),
            "the check polls the migration lock held by the real run",
        )
    finally:
        with lock_session.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [GATE_KEY])

    assert [entry["version"] for entry in real_run.outcome()["applied"]] == ["1"]
    result = checking.outcome()
    assert [entry["script"] for entry in result["applied"]] == ["V2__items_note.sql"]
    assert applied_flags(result) == {"2": True}
    assert result["changed"] is True
    assert result["history_table_created"] is False
    assert result["diff"][0]["before"] == "1\n"


def test_check_fails_on_lock_timeout(database: Database, items_v1_applied: Path) -> None:
    write_migrations(items_v1_applied, {"V2__items_note.sql": ADD_NOTE})
    blocker = database.connect()
    try:
        with blocker.cursor() as cursor:
            # Ends the blocker if the check ignores lock_timeout, so the test fails, not hangs.
            cursor.execute("SET idle_in_transaction_session_timeout = '30s'")
            cursor.execute("SELECT count(*) FROM items")
            cursor.execute("SELECT pg_backend_pid()")
            blocker_pid = cursor.fetchone()[0]
        with pytest.raises(ExecutionError) as caught:
            check(module_params(database, items_v1_applied, lock_timeout="500ms"))
    finally:
        blocker.close()

    assert caught.value.sqlstate == "55P03"
    message = str(caught.value)
    assert message.startswith(
        "Migration V2 (V2__items_note.sql, line 1) failed: canceling statement due to lock "
        "timeout (SQLSTATE 55P03). " + CHECK_NOTHING_WRITTEN
    ), message
    assert f"The wait exceeded lock_timeout 500ms and was blocked by pid {blocker_pid} (" in (
        message
    )
    assert message.endswith("run it again when the lock is free."), message
    assert column_names(database, "items") == ["id", "name"]
    assert history_versions(database) == ["1"]


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
def test_locked_history_table_fails_after_lock_timeout(
    database: Database, items_v1_applied: Path, check_mode: bool
) -> None:
    write_migrations(items_v1_applied, {"V2__items_note.sql": ADD_NOTE})
    blocker = database.connect()
    try:
        with blocker.cursor() as cursor:
            # Ends the blocker if the run ignores lock_timeout, so the test fails, not hangs.
            cursor.execute("SET idle_in_transaction_session_timeout = '30s'")
            cursor.execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
        params = module_params(database, items_v1_applied, lock_timeout="500ms")
        with pytest.raises(MigrationError) as caught:
            check(params) if check_mode else apply(params)
    finally:
        blocker.close()

    assert str(caught.value) == (
        "Cannot read the history table public.schema_migrations: canceling statement due to "
        "lock timeout (SQLSTATE 55P03). Another session held a lock on it for longer than "
        "lock_timeout 500ms: find it in pg_locks, or run again when it ends."
    )
    assert column_names(database, "items") == ["id", "name"]
    assert history_versions(database) == ["1"]


# --- diff


def test_diff_lists_applied_versions(database: Database) -> None:
    result, _warnings = check(module_params(database, SHIPPED_SQL))

    assert result["diff"][0] == {
        "before_header": "public.schema_migrations (applied versions)",
        "after_header": "public.schema_migrations (applied versions)",
        "before": "",
        "after": "1\n2\n3\n",
    }


def test_diff_shows_sql_of_each_pending_migration(database: Database) -> None:
    result, _warnings = check(module_params(database, SHIPPED_SQL))

    assert result["diff"][1:-1] == [
        {
            "before_header": "(not applied)",
            "after_header": f"V{version} {script}",
            "before": "",
            "after": (SHIPPED_SQL / script).read_text(encoding="utf-8"),
        }
        for version, script in ((1, V1_SCRIPT), (2, V2_SCRIPT), (3, V3_SCRIPT))
    ]


def test_diff_hides_sql_when_asked(database: Database) -> None:
    result, _warnings = check(module_params(database, SHIPPED_SQL, hide_sql_in_diff=True))

    shown = "".join(item["after"] for item in result["diff"][:-1])
    assert len(result["diff"]) == 5
    assert 'CREATE TABLE "Tenant"' not in shown
    assert "CREATE MATERIALIZED VIEW" not in shown
    assert [item["after"] for item in result["diff"][1:-1]] == [
        "-- SQL hidden (hide_sql_in_diff is set)\n"
    ] * 3


def test_diff_after_partial_apply(database: Database, shipped_v1_applied: None) -> None:
    result, _warnings = check(module_params(database, SHIPPED_SQL))

    assert result["diff"][0]["before"] == "1\n"
    assert result["diff"][0]["after"] == "1\n2\n3\n"
    assert [item["after_header"] for item in result["diff"][1:-1]] == [
        f"V2 {V2_SCRIPT}",
        f"V3 {V3_SCRIPT}",
    ]
