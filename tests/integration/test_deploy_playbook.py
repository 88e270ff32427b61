"""Tests of postgresql_migrate through ansible-playbook: the shipped deploy playbook and a
playbook that passes the connection options explicitly."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    ORIGINAL_SQL,
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SQL,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    history_rows,
    relations_by_kind,
    user_enum_types,
    user_relations,
)
from pgcluster import Database, free_tcp_port

DEPLOY_PLAYBOOK = "playbooks/deploy_schema.yml"

RunPlaybook = Callable[..., subprocess.CompletedProcess[str]]
PlayRecap = Callable[..., dict[str, int]]


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    """Return a finished ansible-playbook run's stdout and stderr, for assertion messages."""
    return f"{run.stdout}\n{run.stderr}"


def test_deploy_playbook_applies_then_idles(
    database: Database, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    first = run_playbook(DEPLOY_PLAYBOOK)
    second = run_playbook(DEPLOY_PLAYBOOK)

    assert first.returncode == 0, output_of(first)
    assert play_recap(first.stdout)["changed"] == 1, output_of(first)
    assert play_recap(first.stdout)["failed"] == 0, output_of(first)
    assert second.returncode == 0, output_of(second)
    assert play_recap(second.stdout)["changed"] == 0, output_of(second)
    assert play_recap(second.stdout)["failed"] == 0, output_of(second)
    relations = relations_by_kind(database)
    assert relations["table"] == SHIPPED_TABLES | {"schema_migrations"}
    assert relations["materialized view"] == SHIPPED_MATERIALIZED_VIEWS
    assert relations["view"] == SHIPPED_VIEWS
    assert [row["version"] for row in history_rows(database)] == ["1", "2", "3"]


def test_deploy_playbook_reports_failure(
    database: Database, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    run = run_playbook(DEPLOY_PLAYBOOK, "-e", f"deploy_schema_path={ORIGINAL_SQL}")

    assert run.returncode != 0, output_of(run)
    assert play_recap(run.stdout)["failed"] == 1, output_of(run)
    assert "Migration V1 (schema/V1__initial_schema.sql, line 238) failed: " in run.stdout, (
        output_of(run)
    )
    assert "(SQLSTATE 42804)" in run.stdout, output_of(run)
    assert "Nothing from V1 was committed" in run.stdout, output_of(run)
    assert user_relations(database) == {("public", "schema_migrations")}
    assert user_enum_types(database) == set()


def test_module_explicit_connection_and_paths(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    env = database.env
    connection = {
        "login_host": env["PGHOST"],
        "login_port": int(env["PGPORT"]),
        "login_user": env["PGUSER"],
        "login_password": env["PGPASSWORD"],
        "login_db": env["PGDATABASE"],
    }
    task = {
        "name": "Apply V1 and V2 from two directories",
        "dbops.migrations.postgresql_migrate": {
            **connection,
            "path": [str(SHIPPED_SQL / "schema"), str(SHIPPED_SQL / "views")],
        },
    }
    play = {
        "name": "Apply migrations with explicit connection options",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [task],
    }
    playbook = tmp_path / "explicit_connection.yml"
    # JSON is valid YAML, and json.dumps quotes every string safely.
    playbook.write_text(json.dumps([play], indent=2), encoding="utf-8")
    # A libpq environment that cannot connect, so the run succeeds only through the options.
    unusable = {
        "PGPORT": str(free_tcp_port()),
        "PGUSER": "no_such_role",
        "PGPASSWORD": "not-the-password",
        "PGDATABASE": "no_such_database",
    }

    run = run_playbook(playbook, env=unusable)

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["changed"] == 1, output_of(run)
    assert play_recap(run.stdout)["failed"] == 0, output_of(run)
    assert [(row["version"], row["script"]) for row in history_rows(database)] == [
        ("1", "V1__initial_schema.sql"),
        ("2", "V2__analytics_views.sql"),
    ]
    assert env["PGPASSWORD"] not in run.stdout
