"""Tests of postgresql_migration_info through info_api against a real PostgreSQL server, and of
playbooks/migration_status.yml through ansible-playbook."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.info_api import (
    migration_info,
)
from ansible_collections.dbops.migrations.plugins.modules.postgresql_migration_info import (
    argument_spec,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SCRIPTS,
    SHIPPED_SQL,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    history_rows,
    migrate,
    migrate_params,
    module_spec_params,
    write_migrations,
)
from pgcluster import Database

pytestmark = pytest.mark.matrix

STATUS_PLAYBOOK = "playbooks/migration_status.yml"

SHIPPED_ENUMS = {
    "DispatchStatus": ["pending", "success", "failed"],
    "GatewayType": ["hotmart", "kiwify", "stripe", "pagseguro", "perfectpay"],
    "MatchStrategy": ["fbc", "fbp", "email", "unmatched"],
    "TenantStatus": ["provisioning", "active", "suspended", "retired"],
}

OBJECT_KINDS = ["foreign_keys", "indexes", "materialized_views", "tables", "types", "views"]

RESULT_KEYS = [
    "applied",
    "changed",
    "current_version",
    "drifted",
    "failed_migrations",
    "history_table",
    "history_table_exists",
    "msg",
    "objects",
    "pending",
]

RunPlaybook = Callable[..., subprocess.CompletedProcess[str]]
PlayRecap = Callable[..., dict[str, int]]


def info_params(database: Database, **overrides: Any) -> dict[str, Any]:
    """Return the module's parameters: argument-spec defaults, the connection, ``overrides``."""
    return module_spec_params(argument_spec, database, **overrides)


def info(database: Database, **overrides: Any) -> dict[str, Any]:
    return migration_info(info_params(database, **overrides))


def deploy(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))


def copy_shipped(tmp_path: Path) -> Path:
    """Copy files/sql into ``tmp_path`` and return the copy."""
    return Path(shutil.copytree(SHIPPED_SQL, tmp_path / "sql"))


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    return f"{run.stdout}\n{run.stderr}"


# --- an empty database


def test_empty_database_without_path(database: Database) -> None:
    result = info(database)

    assert sorted(result) == RESULT_KEYS
    assert result["changed"] is False
    assert result["history_table_exists"] is False
    assert result["history_table"] == "public.schema_migrations"
    assert result["applied"] == []
    assert result["failed_migrations"] == []
    assert result["pending"] == []
    assert result["drifted"] == []
    assert result["current_version"] is None
    assert result["msg"] == (
        "No history table public.schema_migrations, so no migration has been applied: 0 applied, "
        "0 failed, pending and drift not computed because path is not set."
    )
    public = result["objects"]["public"]
    assert public["exists"] is True
    for kind in OBJECT_KINDS:
        assert public[kind] == [], kind
        assert public["counts"][kind] == 0, kind


def test_empty_database_lists_pending(database: Database) -> None:
    result = info(database, path=[str(SHIPPED_SQL)])

    assert [entry["script"] for entry in result["pending"]] == list(SHIPPED_SCRIPTS)
    assert result["pending"][0]["version"] == "1"
    assert result["pending"][0]["type"] == "versioned"
    assert result["pending"][0]["description"] == "initial schema"
    assert len(result["pending"][0]["checksum"]) == 64
    assert result["drifted"] == []
    assert result["msg"].endswith("0 applied, 0 failed, 3 pending, 0 drifted.")


def test_missing_schema_reported(database: Database) -> None:
    result = info(database, schemas=["public", "no_such_schema"])

    missing = result["objects"]["no_such_schema"]
    assert missing["exists"] is False
    assert missing["counts"] == dict.fromkeys(OBJECT_KINDS, 0)


# --- after a deploy of files/sql


def test_deployed_history(database: Database) -> None:
    deploy(database)

    result = info(database, path=[str(SHIPPED_SQL)])

    assert result["history_table_exists"] is True
    assert result["current_version"] == "3"
    assert result["pending"] == []
    assert result["drifted"] == []
    assert result["failed_migrations"] == []
    assert (
        result["msg"] == "The database is at version 3: 3 applied, 0 failed, 0 pending, 0 drifted."
    )
    rows = history_rows(database)
    assert len(result["applied"]) == 3
    for entry, row in zip(result["applied"], rows, strict=True):
        for column in ("installed_rank", "version", "description", "type", "script", "checksum"):
            assert entry[column] == row[column], (entry["script"], column)
        assert entry["installed_by"] == database.env["PGUSER"]
        assert datetime.fromisoformat(entry["installed_at"]).tzinfo is not None
        assert isinstance(entry["execution_time_ms"], int)


def test_deployed_objects(database: Database) -> None:
    deploy(database)

    public = info(database)["objects"]["public"]

    assert public["tables"] == sorted(SHIPPED_TABLES | {"schema_migrations"})
    assert public["views"] == sorted(SHIPPED_VIEWS)
    assert public["materialized_views"] == [
        {"name": name, "populated": True} for name in sorted(SHIPPED_MATERIALIZED_VIEWS)
    ]
    assert public["types"] == [
        {"name": name, "labels": labels} for name, labels in sorted(SHIPPED_ENUMS.items())
    ]
    assert public["counts"]["tables"] == 14
    assert public["counts"]["materialized_views"] == 2
    assert public["counts"]["views"] == 1
    assert public["counts"]["types"] == 4


def test_deployed_indexes(database: Database) -> None:
    deploy(database)

    indexes = info(database)["objects"]["public"]["indexes"]

    names = [index["name"] for index in indexes]
    assert names == sorted(names)
    assert [index["name"] for index in indexes if not index["valid"]] == []
    by_name = {index["name"]: index for index in indexes}
    assert by_name["Tenant_slug_key"] == {
        "name": "Tenant_slug_key",
        "table": "Tenant",
        "unique": True,
        "valid": True,
        "primary": False,
    }
    assert by_name["Tenant_pkey"]["primary"] is True
    assert by_name["idx_v_dispatch_summary"]["table"] == "v_dispatch_summary"
    assert by_name["idx_v_dispatch_summary"]["unique"] is True
    assert by_name["MatchLog_conversionId_idx"]["unique"] is False


def test_deployed_foreign_keys(database: Database) -> None:
    deploy(database)

    public = info(database)["objects"]["public"]

    keys = public["foreign_keys"]
    assert public["counts"]["foreign_keys"] == len(keys)
    assert [(key["name"], key["table"]) for key in keys] == sorted(
        (key["name"], key["table"]) for key in keys
    )
    referenced = {key["referenced_table"] for key in keys}
    assert "Tenant" in referenced
    conversion_webhook = [
        key
        for key in keys
        if key["table"] == "Conversion" and key["referenced_table"] == "WebhookRaw"
    ]
    assert conversion_webhook == [
        {
            "name": conversion_webhook[0]["name"],
            "table": "Conversion",
            "referenced_schema": "public",
            "referenced_table": "WebhookRaw",
            "columns": ["webhookRawId"],
            "referenced_columns": ["id"],
        }
    ]


def test_multi_column_foreign_key_order(database: Database) -> None:
    database.query(
        "CREATE TABLE parent (a int, b int, PRIMARY KEY (b, a));"
        "CREATE TABLE child (x int, y int,"
        " CONSTRAINT child_parent FOREIGN KEY (y, x) REFERENCES parent (b, a))"
    )

    keys = info(database)["objects"]["public"]["foreign_keys"]

    assert keys == [
        {
            "name": "child_parent",
            "table": "child",
            "referenced_schema": "public",
            "referenced_table": "parent",
            "columns": ["y", "x"],
            "referenced_columns": ["b", "a"],
        }
    ]


def test_invalid_index_reported(database: Database) -> None:
    database.query("CREATE TABLE dup (id int); INSERT INTO dup VALUES (1), (1)")
    with pytest.raises(psycopg2.errors.UniqueViolation, match="could not create unique index"):
        database.query("CREATE UNIQUE INDEX CONCURRENTLY dup_id ON dup (id)")

    indexes = info(database)["objects"]["public"]["indexes"]

    assert indexes == [
        {"name": "dup_id", "table": "dup", "unique": True, "valid": False, "primary": False}
    ]


def test_unpopulated_view_reported(database: Database) -> None:
    database.query("CREATE MATERIALIZED VIEW later AS SELECT 1 AS id WITH NO DATA")

    views = info(database)["objects"]["public"]["materialized_views"]

    assert views == [{"name": "later", "populated": False}]


# --- drift, failures and pending migrations


def test_drift_reported(database: Database, tmp_path: Path) -> None:
    deploy(database)
    files = copy_shipped(tmp_path)
    views = files / "views" / "V2__analytics_views.sql"
    views.write_text(views.read_text(encoding="utf-8") + "-- edited\n", encoding="utf-8")
    (files / "matviews" / "V3__materialized_views.sql").unlink()
    write_migrations(files, {"V4__more.sql": "CREATE TABLE more (id int);\n"})
    history = {row["version"]: row for row in history_rows(database)}

    result = info(database, path=[str(files)])

    assert result["drifted"] == [
        {
            "version": "2",
            "script": "views/V2__analytics_views.sql",
            "problem": "checksum_changed",
            "history_checksum": history["2"]["checksum"],
            "file_checksum": result["drifted"][0]["file_checksum"],
        },
        {
            "version": "3",
            "script": "matviews/V3__materialized_views.sql",
            "problem": "file_missing",
            "history_checksum": history["3"]["checksum"],
            "file_checksum": None,
        },
    ]
    assert result["drifted"][0]["file_checksum"] != history["2"]["checksum"]
    assert [entry["script"] for entry in result["pending"]] == ["V4__more.sql"]
    assert result["current_version"] == "3"


def test_undone_versions_pending_again(database: Database) -> None:
    deploy(database)
    migrate(migrate_params(database, SHIPPED_SQL, target="1"))

    result = info(database, path=[str(SHIPPED_SQL)])

    assert result["current_version"] == "1"
    assert [entry["script"] for entry in result["applied"]] == ["schema/V1__initial_schema.sql"]
    assert [entry["script"] for entry in result["pending"]] == list(SHIPPED_SCRIPTS[1:])
    assert result["drifted"] == []
    assert result["objects"]["public"]["counts"]["materialized_views"] == 0


def test_failed_rows_listed(database: Database, tmp_path: Path) -> None:
    files = write_migrations(
        tmp_path / "sql",
        {
            "V1__items.sql": "CREATE TABLE items (id int PRIMARY KEY);\n",
            "V2__index.sql": "CREATE INDEX items_id ON items (id);\n",
            "R__items_view.sql": "CREATE OR REPLACE VIEW items_view AS SELECT id FROM items;\n",
        },
    )
    migrate(migrate_params(database, files))
    database.query(
        "INSERT INTO schema_migrations (installed_rank, version, description, type, script,"
        " checksum, execution_time_ms, success)"
        " VALUES (4, '3', 'broken', 'SQL_NO_TRANSACTION', 'V3__broken.sql', 'abc', 0, false)"
    )
    write_migrations(
        files,
        {
            "R__items_view.sql": (
                "CREATE OR REPLACE VIEW items_view AS SELECT id, 1 AS one FROM items;\n"
            )
        },
    )

    result = info(database, path=[str(files)])

    assert [entry["script"] for entry in result["applied"]] == [
        "V1__items.sql",
        "V2__index.sql",
        "R__items_view.sql",
    ]
    assert [(entry["version"], entry["script"]) for entry in result["failed_migrations"]] == [
        ("3", "V3__broken.sql")
    ]
    assert result["applied"][2]["type"] == "SQL_REPEATABLE"
    assert [(entry["type"], entry["script"]) for entry in result["pending"]] == [
        ("repeatable", "R__items_view.sql")
    ]
    assert result["drifted"] == []
    assert result["current_version"] == "2"


def test_custom_history_table(database: Database) -> None:
    migrate(
        migrate_params(database, SHIPPED_SQL / "schema", history_schema="ops", history_table="log")
    )

    result = info(database, history_schema="ops", history_table="log", schemas=["ops"])

    assert result["history_table"] == "ops.log"
    assert result["current_version"] == "1"
    assert result["objects"]["ops"]["tables"] == ["log"]


def test_foreign_history_table_fails(database: Database) -> None:
    database.query("CREATE TABLE schema_migrations (id int)")

    with pytest.raises(MigrationError) as error:
        info(database)

    message = str(error.value)
    assert message.startswith("Cannot read the history table public.schema_migrations: column ")
    assert "(SQLSTATE 42703)" in message


def test_history_name_taken_by_view_fails(database: Database) -> None:
    database.query("CREATE VIEW schema_migrations AS SELECT 1 AS installed_rank")

    with pytest.raises(MigrationError) as error:
        info(database)

    assert str(error.value).startswith("public.schema_migrations is a view, not a history table.")


def test_info_writes_nothing(database: Database) -> None:
    deploy(database)
    before = history_rows(database)

    info(database, path=[str(SHIPPED_SQL)])

    assert history_rows(database) == before
    assert database.query(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity"
        " WHERE application_name LIKE 'dbops.migrations postgresql_migration_info%%'"
    ) == [(0,)], "the module left its connection open"


def test_missing_path_fails(database: Database, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not found"):
        info(database, path=[str(tmp_path / "nothing")])


# --- through ansible-playbook


def test_info_module_never_changes(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    deploy(database)
    task = {
        "name": "Read the migration status",
        "dbops.migrations.postgresql_migration_info": {"path": str(SHIPPED_SQL)},
        "register": "status",
    }
    check = {
        "name": "Check the result",
        "ansible.builtin.assert": {
            "that": [
                "status.current_version == '3'",
                "status.objects.public.counts.materialized_views == 2",
                "status.pending | length == 0",
            ]
        },
    }
    play = {
        "name": "Read the status",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [task, check],
    }
    playbook = tmp_path / "info.yml"
    playbook.write_text(json.dumps([play]), encoding="utf-8")

    normal = run_playbook(playbook)
    checked = run_playbook(playbook, "--check")

    assert normal.returncode == 0, output_of(normal)
    assert play_recap(normal.stdout)["changed"] == 0, output_of(normal)
    assert checked.returncode == 0, output_of(checked)
    assert play_recap(checked.stdout)["changed"] == 0, output_of(checked)


def test_info_renders_templates(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    files = write_migrations(
        tmp_path / "sql", {"V1__items.sql.j2": "CREATE TABLE {{ items_table }} (id int);\n"}
    )
    tasks = [
        {
            "name": "Apply the template migration",
            "dbops.migrations.postgresql_migrate": {"path": str(files)},
        },
        {
            "name": "Read the migration status",
            "dbops.migrations.postgresql_migration_info": {"path": str(files)},
            "register": "status",
        },
        {
            "name": "Check that the rendered file matches the history",
            "ansible.builtin.assert": {
                "that": [
                    "status.current_version == '1'",
                    "status.drifted == []",
                    "status.pending == []",
                    "status.objects.public.tables == ['schema_migrations', 'stock_items']",
                ]
            },
        },
    ]
    play = {
        "name": "Apply and read a template migration",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {"items_table": "stock_items"},
        "tasks": tasks,
    }
    playbook = tmp_path / "templates.yml"
    playbook.write_text(json.dumps([play]), encoding="utf-8")

    run = run_playbook(playbook)

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["failed"] == 0, output_of(run)


def test_status_playbook_prints_table(
    database: Database, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    migrate(migrate_params(database, SHIPPED_SQL, target="2"))

    run = run_playbook(STATUS_PLAYBOOK)

    output = output_of(run)
    assert run.returncode == 0, output
    assert play_recap(run.stdout)["changed"] == 0, output
    assert "The database is at version 2: 2 applied, 0 failed, 1 pending, 0 drifted." in output
    assert "schema/V1__initial_schema.sql (postgres)" in output
    assert '"  V3       matviews/V3__materialized_views.sql"' in output
    assert "Drift between files and history:" in output
    assert "  public                         13        3        0        4" in output
