"""Tests of postgresql_matview_refresh through refresh_api against a real PostgreSQL server.

The first test walks through the conditions under which PostgreSQL accepts
REFRESH MATERIALIZED VIEW CONCURRENTLY, asserting the server's own SQLSTATE at each step and
then what ``concurrently=auto`` and ``always`` choose. The playbook test runs
playbooks/refresh_matviews.yml.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.refresh import (
    RefreshError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.refresh_api import (
    refresh_materialized_views,
)
from ansible_collections.dbops.migrations.plugins.modules.postgresql_matview_refresh import (
    argument_spec,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_SQL,
    migrate,
    migrate_params,
    module_spec_params,
)
from pgcluster import Database

pytestmark = pytest.mark.matrix

REFRESH_PLAYBOOK = "playbooks/refresh_matviews.yml"

TRACKING_TABLE = (
    "CREATE TABLE refresh_log ("
    " view_name varchar(100) PRIMARY KEY,"
    " last_refreshed_at timestamp DEFAULT now(),"
    " refresh_interval_minutes int DEFAULT 5)"
)

# mv_a reads a table, and v_a is a plain view over mv_a. mv_b reads mv_a through v_a, and mv_c
# reads mv_b directly. They are created in that order, as PostgreSQL requires.
CHAIN = (
    "CREATE TABLE events (id integer PRIMARY KEY, kind text NOT NULL)",
    "INSERT INTO events SELECT g, 'k' || (g % 3) FROM generate_series(1, 30) g",
    "CREATE MATERIALIZED VIEW mv_a AS SELECT kind, count(*) AS n FROM events GROUP BY kind",
    "CREATE VIEW v_a AS SELECT kind, n FROM mv_a",
    "CREATE MATERIALIZED VIEW mv_b AS SELECT sum(n) AS total FROM v_a",
    "CREATE MATERIALIZED VIEW mv_c AS SELECT total FROM mv_b",
)

RunPlaybook = Callable[..., subprocess.CompletedProcess[str]]
PlayRecap = Callable[..., dict[str, int]]


def refresh_params(database: Database, **overrides: Any) -> dict[str, Any]:
    """Return the module's parameters: argument-spec defaults, the connection, ``overrides``."""
    return module_spec_params(argument_spec, database, **overrides)


def run_refresh(database: Database, check_mode: bool = False, **options: Any) -> dict[str, Any]:
    return refresh_materialized_views(refresh_params(database, **options), check_mode)


def execute(database: Database, *statements: str) -> None:
    for statement in statements:
        database.query(statement)


def concurrent_refresh_sqlstate(database: Database, name: str) -> str | None:
    """Run REFRESH MATERIALIZED VIEW CONCURRENTLY directly and return its SQLSTATE, or None."""
    try:
        database.query(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {name}")
    except psycopg2.Error as error:
        return error.pgcode
    return None


def is_populated(database: Database, name: str) -> bool:
    rows = database.query(
        "SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = %s::regclass", [name]
    )
    return rows[0][0]


def refreshed_names(result: dict[str, Any]) -> list[str]:
    return [entry["name"] for entry in result["refreshed"]]


def last_refreshed(database: Database) -> dict[str, Any]:
    rows = database.query("SELECT view_name, last_refreshed_at FROM refresh_log")
    return dict(rows)


@pytest.fixture
def chain(database: Database) -> Database:
    """Return the database with the CHAIN of materialized views."""
    execute(database, *CHAIN)
    return database


@pytest.fixture
def held_lock(chain: Database) -> Iterator[None]:
    """Hold ACCESS SHARE on mv_a in an open transaction of another session, which a plain
    refresh must wait for. LOCK TABLE rejects materialized views, so a SELECT takes the lock."""
    connection = chain.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM mv_a")
        yield
    finally:
        connection.rollback()
        connection.close()


# --- choosing CONCURRENTLY


def test_concurrently_follows_server_rules(database: Database) -> None:
    execute(
        database,
        "CREATE TABLE items (id integer NOT NULL, name text NOT NULL)",
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g",
        "CREATE MATERIALIZED VIEW mv AS SELECT id, name FROM items WITH NO DATA",
    )

    # Not populated: the server rejects CONCURRENTLY with 0A000.
    assert concurrent_refresh_sqlstate(database, "mv") == "0A000"
    preview = run_refresh(database, check_mode=True, names=["mv"])
    assert preview["changed"] is True
    assert preview["refreshed"][0]["concurrently"] is False
    assert "not populated" in preview["refreshed"][0]["reason"]
    assert is_populated(database, "mv") is False, "check mode refreshed the view"
    with pytest.raises(RefreshError, match="public.mv is not populated"):
        run_refresh(database, check_mode=True, names=["mv"], concurrently="always")
    with pytest.raises(RefreshError) as always_error:
        run_refresh(database, names=["mv"], concurrently="always")
    assert "public.mv is not populated" in str(always_error.value)
    assert "Nothing was refreshed" in str(always_error.value)
    assert is_populated(database, "mv") is False, "always refreshed the view before failing"

    first = run_refresh(database, names=["mv"])
    assert first["refreshed"][0]["concurrently"] is False
    assert is_populated(database, "mv") is True

    # Populated, without a unique index: the server rejects CONCURRENTLY with 55000.
    assert concurrent_refresh_sqlstate(database, "mv") == "55000"
    no_index = run_refresh(database, names=["mv"])
    assert no_index["refreshed"][0]["concurrently"] is False
    assert "no usable unique index" in no_index["refreshed"][0]["reason"]

    # A partial unique index and an expression index do not count, for the server or auto.
    execute(
        database,
        "CREATE UNIQUE INDEX mv_partial ON mv (id) WHERE id > 0",
        "CREATE UNIQUE INDEX mv_expression ON mv (lower(name))",
    )
    assert concurrent_refresh_sqlstate(database, "mv") == "55000"
    ignored = run_refresh(database, names=["mv"])
    assert ignored["refreshed"][0]["concurrently"] is False
    assert "no usable unique index" in ignored["refreshed"][0]["reason"]

    # A unique index on a plain column: the server accepts CONCURRENTLY, and auto chooses it.
    execute(database, "CREATE UNIQUE INDEX mv_id ON mv (id)")
    assert concurrent_refresh_sqlstate(database, "mv") is None
    usable = run_refresh(database, names=["mv"])
    assert usable["refreshed"][0]["concurrently"] is True
    assert "usable unique index mv_id" in usable["refreshed"][0]["reason"]


def test_never_uses_plain_refresh(database: Database) -> None:
    execute(
        database,
        "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS id",
        "CREATE UNIQUE INDEX mv_id ON mv (id)",
    )

    result = run_refresh(database, names=["mv"], concurrently="never")

    assert result["refreshed"][0]["concurrently"] is False
    assert result["refreshed"][0]["reason"] == "plain refresh because concurrently is never"


def test_shipped_views_refresh_concurrently(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))

    result = run_refresh(database, schema="public")

    assert refreshed_names(result) == ["public.v_dispatch_summary", "public.v_match_rate_by_tenant"]
    assert [entry["concurrently"] for entry in result["refreshed"]] == [True, True]
    for entry in result["refreshed"]:
        assert isinstance(entry["duration_ms"], int), entry
        assert entry["duration_ms"] >= 0, entry
    assert result["msg"] == (
        "Refreshed public.v_dispatch_summary (concurrently), "
        "public.v_match_rate_by_tenant (concurrently)."
    )


# --- selecting and ordering views


def test_dependency_order_from_names(chain: Database) -> None:
    execute(chain, "INSERT INTO events SELECT g, 'k9' FROM generate_series(31, 40) g")

    result = run_refresh(chain, names=["mv_c", "mv_b", "mv_a"])

    assert refreshed_names(result) == ["public.mv_a", "public.mv_b", "public.mv_c"]
    # mv_c contains the new events only if mv_a and mv_b were refreshed before it.
    assert chain.query("SELECT total FROM mv_c") == [(40,)]


def test_dependency_order_in_schema(chain: Database) -> None:
    execute(chain, "CREATE MATERIALIZED VIEW mv_0 AS SELECT total FROM mv_c")

    result = run_refresh(chain, schema="public")

    assert refreshed_names(result) == [
        "public.mv_a",
        "public.mv_b",
        "public.mv_c",
        "public.mv_0",
    ]


def test_unselected_source_does_not_block(chain: Database) -> None:
    result = run_refresh(chain, names=["mv_c", "mv_a"])

    assert refreshed_names(result) == ["public.mv_a", "public.mv_c"]


def test_unknown_names_fail_naming_them(chain: Database) -> None:
    with pytest.raises(RefreshError) as error:
        run_refresh(chain, names=["mv_a", "no_such_view", "events", "v_a", "a.b.c.d"])

    message = str(error.value)
    assert "not found: 'no_such_view', 'a.b.c.d'" in message
    assert "not materialized views: 'events' (a table), 'v_a' (a view)" in message


def test_quoted_and_qualified_names(database: Database) -> None:
    execute(
        database,
        'CREATE SCHEMA "Reports"',
        'CREATE MATERIALIZED VIEW "Reports"."Daily" AS SELECT 1 AS id',
    )

    result = run_refresh(database, names=['"Reports"."Daily"', '"Reports"."Daily"'])

    assert refreshed_names(result) == ["Reports.Daily"]


def test_missing_schema_fails(database: Database) -> None:
    with pytest.raises(RefreshError, match=r"^Schema 'no_such_schema' not found\.$"):
        run_refresh(database, schema="no_such_schema")


def test_empty_schema_changes_nothing(database: Database) -> None:
    result = run_refresh(database, schema="public")

    assert result == {
        "changed": False,
        "msg": "No materialized view to refresh.",
        "refreshed": [],
        "not_refreshed": [],
    }


def test_empty_schema_needs_no_tracking_table(database: Database) -> None:
    """A database migrated to a version before the one that creates the materialized views
    and their tracking table refreshes nothing, rather than failing on the missing table."""
    result = run_refresh(
        database, schema="public", tracking_table="materialized_view_refresh", only_due=True
    )

    assert result["changed"] is False
    assert result["msg"] == "No materialized view to refresh."


def test_empty_names_fail(database: Database) -> None:
    with pytest.raises(RefreshError, match="names is an empty list"):
        run_refresh(database, names=[])


# --- tracking table and only_due


def test_only_due_four_steps(chain: Database) -> None:
    execute(
        chain,
        TRACKING_TABLE,
        "INSERT INTO refresh_log VALUES ('mv_a', now() - interval '1 hour', 5),"
        " ('public.mv_b', now() - interval '1 hour', 5), ('mv_c', now(), 5)",
        "INSERT INTO events SELECT g, 'k9' FROM generate_series(31, 40) g",
    )
    before = last_refreshed(chain)
    options = {"schema": "public", "tracking_table": "refresh_log", "only_due": True}

    check = run_refresh(chain, check_mode=True, **options)
    assert check["changed"] is True
    assert refreshed_names(check) == ["public.mv_a", "public.mv_b"]
    assert [entry["duration_ms"] for entry in check["refreshed"]] == [0, 0]
    assert [entry["name"] for entry in check["not_refreshed"]] == ["public.mv_c"]
    assert check["msg"] == (
        "Check mode: would refresh public.mv_a, public.mv_b; 1 not due; nothing was refreshed."
    )
    assert last_refreshed(chain) == before, "check mode wrote the tracking table"
    assert chain.query("SELECT total FROM mv_b") == [(30,)], "check mode refreshed mv_b"

    applied = run_refresh(chain, **options)
    assert applied["changed"] is True
    assert refreshed_names(applied) == ["public.mv_a", "public.mv_b"]
    after = last_refreshed(chain)
    assert after["mv_a"] > before["mv_a"]
    assert after["public.mv_b"] > before["public.mv_b"]
    assert after["mv_c"] == before["mv_c"]
    assert chain.query("SELECT total FROM mv_b") == [(40,)]

    check_again = run_refresh(chain, check_mode=True, **options)
    assert check_again["changed"] is False
    assert check_again["refreshed"] == []
    assert len(check_again["not_refreshed"]) == 3

    apply_again = run_refresh(chain, **options)
    assert apply_again["changed"] is False
    assert last_refreshed(chain) == after


def test_not_due_reason_names_times(chain: Database) -> None:
    execute(
        chain,
        TRACKING_TABLE,
        "INSERT INTO refresh_log VALUES ('mv_a', '2999-01-01 10:00:00', 30)",
    )

    result = run_refresh(chain, names=["mv_a"], tracking_table="refresh_log", only_due=True)

    assert result["not_refreshed"] == [
        {
            "name": "public.mv_a",
            "reason": "not due: last refreshed at 2999-01-01 10:00:00, every 30 minutes, "
            "next due at 2999-01-01 10:30:00",
        }
    ]


def test_untracked_view_is_due_and_not_added(chain: Database) -> None:
    execute(
        chain,
        TRACKING_TABLE,
        "INSERT INTO refresh_log VALUES ('mv_b', NULL, 5), ('mv_c', now(), NULL)",
    )
    options = {"tracking_table": "public.refresh_log", "only_due": True}

    result = run_refresh(chain, names=["mv_a", "mv_b", "mv_c"], **options)

    assert refreshed_names(result) == ["public.mv_a", "public.mv_b", "public.mv_c"]
    assert sorted(last_refreshed(chain)) == ["mv_b", "mv_c"]
    assert last_refreshed(chain)["mv_b"] is not None


def test_tracking_updated_without_only_due(chain: Database) -> None:
    execute(
        chain,
        TRACKING_TABLE,
        "INSERT INTO refresh_log VALUES ('mv_a', '2000-01-01', 5)",
    )

    run_refresh(chain, names=["mv_a"], tracking_table="refresh_log")

    assert last_refreshed(chain)["mv_a"].year > 2000


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ((), "Tracking table 'refresh_log' not found."),
        (
            ("CREATE TABLE refresh_log (view_name text, last_refreshed_at timestamp)",),
            "Tracking table public.refresh_log has no column refresh_interval_minutes",
        ),
        (
            ("CREATE VIEW refresh_log AS SELECT 'x'::text AS view_name",),
            "Tracking table 'refresh_log' not found.",
        ),
    ],
    ids=["missing", "missing column", "a view"],
)
def test_invalid_tracking_table(chain: Database, setup: tuple[str, ...], message: str) -> None:
    execute(chain, *setup)

    with pytest.raises(RefreshError) as error:
        run_refresh(chain, names=["mv_a"], tracking_table="refresh_log", only_due=True)

    assert message in str(error.value)


# --- failures


def test_lock_timeout_names_view(chain: Database, held_lock: None) -> None:
    with pytest.raises(RefreshError) as error:
        run_refresh(chain, names=["mv_c", "mv_a"], lock_timeout="100ms")

    message = str(error.value)
    assert message.startswith("REFRESH MATERIALIZED VIEW public.mv_a failed: ")
    assert "(SQLSTATE 55P03)" in message
    assert "raise lock_timeout" in message
    assert message.endswith("No view was refreshed.")


def test_failure_names_views_already_refreshed(chain: Database) -> None:
    # Division by zero happens only when the view's query runs, at refresh time.
    execute(
        chain,
        "CREATE MATERIALIZED VIEW mv_z AS SELECT 1 / (count(*) - 30) AS x FROM events WITH NO DATA",
    )

    with pytest.raises(RefreshError) as error:
        run_refresh(chain, names=["mv_a", "mv_z"])

    message = str(error.value)
    assert message.startswith("REFRESH MATERIALIZED VIEW public.mv_z failed: division by zero")
    assert message.endswith("Refreshed before it, and still refreshed: public.mv_a.")


def test_failure_result_lists_refreshed(chain: Database) -> None:
    execute(
        chain,
        "CREATE MATERIALIZED VIEW mv_z AS SELECT 1 / (count(*) - 30) AS x FROM events WITH NO DATA",
    )

    with pytest.raises(RefreshError) as error:
        run_refresh(chain, names=["mv_z", "mv_b", "mv_a"])

    result = error.value.result
    assert result is not None, "the error carries no result"
    assert result["changed"] is True
    assert refreshed_names(result) == ["public.mv_a", "public.mv_b"]
    assert [sorted(entry) for entry in result["refreshed"]] == [
        ["concurrently", "duration_ms", "name", "reason"],
        ["concurrently", "duration_ms", "name", "reason"],
    ]
    assert result["refreshed"][0]["concurrently"] is False
    assert result["refreshed"][0]["reason"].startswith("plain refresh because the view ")
    assert result["not_refreshed"] == []


def test_first_failure_result_unchanged(chain: Database, held_lock: None) -> None:
    with pytest.raises(RefreshError) as error:
        run_refresh(chain, names=["mv_a", "mv_b"], lock_timeout="100ms")

    result = error.value.result
    assert result is not None, "the error carries no result"
    assert result["changed"] is False
    assert result["refreshed"] == []


def test_failure_result_keeps_not_due(chain: Database) -> None:
    execute(
        chain,
        TRACKING_TABLE,
        "INSERT INTO refresh_log (view_name) VALUES ('mv_a')",
        "CREATE MATERIALIZED VIEW mv_z AS SELECT 1 / (count(*) - 30) AS x FROM events WITH NO DATA",
    )

    with pytest.raises(RefreshError) as error:
        run_refresh(
            chain, names=["mv_a", "mv_c", "mv_z"], tracking_table="refresh_log", only_due=True
        )

    result = error.value.result
    assert result is not None, "the error carries no result"
    assert refreshed_names(result) == ["public.mv_c"]
    assert [entry["name"] for entry in result["not_refreshed"]] == ["public.mv_a"]


def test_invalid_lock_timeout(chain: Database) -> None:
    with pytest.raises(RefreshError, match=r"^Invalid lock_timeout '5 parsecs': "):
        run_refresh(chain, names=["mv_a"], lock_timeout="5 parsecs")


def test_connection_failure_is_migration_error(database: Database) -> None:
    with pytest.raises(MigrationError, match="^Cannot connect to PostgreSQL: "):
        run_refresh(database, names=["mv"], login_db="no_such_database")


# --- the playbook

FAILING_REFRESH_PLAYBOOK = """\
- name: Refresh a view that succeeds, then one that fails
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Refresh mv_a and mv_z
      dbops.migrations.postgresql_matview_refresh:
        names: [mv_a, mv_z]
"""


def test_failed_task_reports_refreshed(
    chain: Database, run_playbook: RunPlaybook, play_recap: PlayRecap, tmp_path: Path
) -> None:
    execute(
        chain,
        "CREATE MATERIALIZED VIEW mv_z AS SELECT 1 / (count(*) - 30) AS x FROM events WITH NO DATA",
    )
    playbook = tmp_path / "refresh.yml"
    playbook.write_text(FAILING_REFRESH_PLAYBOOK, encoding="utf-8")

    process = run_playbook(playbook)

    output = f"{process.stdout}\n{process.stderr}"
    assert process.returncode != 0, output
    assert play_recap(process.stdout)["failed"] == 1, output
    fatal = next(line for line in process.stdout.splitlines() if line.startswith("fatal:"))
    result = json.loads(fatal.split(" => ", 1)[1])
    assert result["changed"] is True
    assert refreshed_names(result) == ["public.mv_a"]
    assert result["msg"].startswith("REFRESH MATERIALIZED VIEW public.mv_z failed: ")


def test_refresh_playbook_refreshes_due_views(
    database: Database, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    execute(
        database,
        "UPDATE materialized_view_refresh SET last_refreshed_at = now() - interval '1 hour'"
        " WHERE view_name = 'v_dispatch_summary'",
    )

    first = run_playbook(REFRESH_PLAYBOOK)
    second = run_playbook(REFRESH_PLAYBOOK)

    output = f"{first.stdout}\n{first.stderr}"
    assert first.returncode == 0, output
    assert play_recap(first.stdout)["changed"] == 1, output
    assert "Refreshed public.v_dispatch_summary (concurrently); 1 not due." in first.stdout
    assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
    assert play_recap(second.stdout)["changed"] == 0, second.stdout
