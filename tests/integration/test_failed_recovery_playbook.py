"""A migration recorded as failed, seen and resolved through the playbooks."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    history_rows,
    write_migrations,
)
from pgcluster import Database

ITEMS = "CREATE TABLE items (id integer PRIMARY KEY, name text);\n"
BROKEN_INDEXES = (
    "-- dbops:no-transaction\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_idx ON items (name);\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_sku_idx ON items (sku);\n"
)
FIXED_INDEXES = (
    "-- dbops:no-transaction\n"
    "ALTER TABLE items ADD COLUMN IF NOT EXISTS sku text;\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_idx ON items (name);\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_sku_idx ON items (sku);\n"
)


def test_failed_migration_seen_and_retried(
    database: Database, run_playbook, play_recap, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "sql", {"V1__items.sql": ITEMS, "V2__items_indexes.sql": BROKEN_INDEXES}
    )
    path = f"deploy_schema_path={directory}"

    failed = run_playbook("playbooks/deploy_schema.yml", "-e", path)
    assert failed.returncode != 0
    assert "V2__items_indexes.sql, line 3" in failed.stdout

    status = run_playbook(
        "playbooks/migration_status.yml", "-e", f"migration_status_path={directory}"
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "1 failed" in status.stdout

    stopped = run_playbook("playbooks/deploy_schema.yml", "-e", path)
    assert stopped.returncode != 0
    assert "is recorded as failed in an earlier run" in stopped.stdout

    write_migrations(directory, {"V2__items_indexes.sql": FIXED_INDEXES})
    retried = run_playbook(
        "playbooks/deploy_schema.yml", "-e", path, "-e", "schema_resolve_failed=retry"
    )

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert play_recap(retried.stdout)["changed"] >= 1
    assert [(row["version"], row["success"]) for row in history_rows(database)] == [
        ("1", True),
        ("2", True),
    ]


def test_partial_run_reports_changed_and_applied(
    database: Database, run_playbook, play_recap, tmp_path: Path
) -> None:
    directory = write_migrations(
        tmp_path / "sql",
        {
            "V1__items.sql": ITEMS,
            "V2__bad.sql": "SELECT no_such_column FROM items;\n",
        },
    )

    process = run_playbook(
        "playbooks/deploy_schema.yml", "-e", f"deploy_schema_path={directory}", "-v"
    )

    assert process.returncode != 0
    assert play_recap(process.stdout)["failed"] == 1
    fatal = next(line for line in process.stdout.splitlines() if line.startswith("fatal:"))
    # The recap counts failed tasks only as failures, so the task result itself must say
    # that V1 was committed.
    assert '"changed": true' in fatal
    assert '"version": "1"' in fatal
    assert [row["version"] for row in history_rows(database)] == ["1"]
