"""Template migrations rendered per environment, and undo scripts run down to a target."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ExecutionError,
    PlanError,
    SourceError,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SQL,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    history_rows,
    migrate,
    migrate_params,
    relations_by_kind,
    text_sha256,
    write_migrations,
)
from pgcluster import Database

pytestmark = pytest.mark.matrix

TEMPLATE = (
    "CREATE TABLE audit_{{ environment_name }} (id bigint PRIMARY KEY);\n"
    "COMMENT ON TABLE audit_{{ environment_name }} IS '{{ retention_days }} days';\n"
)

PLAYBOOK = textwrap.dedent(
    """\
    - name: Apply template migrations
      hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: Apply pending migrations
          dbops.migrations.postgresql_migrate:
            path: "{{ playbook_dir }}/sql"
          register: migrate_result

        - name: Show the result
          ansible.builtin.debug:
            var: migrate_result
    """
)


@pytest.fixture
def template_play(tmp_path: Path) -> Path:
    """Write a playbook next to a directory holding one template migration."""
    write_migrations(tmp_path / "sql", {"V1__audit_table.sql.j2": TEMPLATE})
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    return playbook


def rendered(environment_name: str, retention_days: int) -> str:
    return (
        f"CREATE TABLE audit_{environment_name} (id bigint PRIMARY KEY);\n"
        f"COMMENT ON TABLE audit_{environment_name} IS '{retention_days} days';\n"
    )


@pytest.mark.parametrize(("environment_name", "retention_days"), [("staging", 7), ("prod", 90)])
def test_template_rendered_per_environment(
    database: Database,
    run_playbook,
    play_recap,
    template_play: Path,
    environment_name: str,
    retention_days: int,
) -> None:
    process = run_playbook(
        template_play,
        "-e",
        f"environment_name={environment_name}",
        "-e",
        f"retention_days={retention_days}",
    )

    assert process.returncode == 0, process.stdout + process.stderr
    assert play_recap(process.stdout)["changed"] == 1
    comment = database.query(
        "SELECT obj_description(to_regclass(%s), 'pg_class')", (f"audit_{environment_name}",)
    )
    assert comment == [(f"{retention_days} days",)]
    rows = history_rows(database)
    assert [row["script"] for row in rows] == ["V1__audit_table.sql.j2"]
    # The checksum is taken over the rendered SQL, the text that ran.
    assert rows[0]["checksum"] == text_sha256(rendered(environment_name, retention_days))


def test_template_variable_change_is_drift(
    database: Database, run_playbook, template_play: Path
) -> None:
    first = run_playbook(template_play, "-e", "environment_name=qa", "-e", "retention_days=7")
    assert first.returncode == 0, first.stdout + first.stderr

    second = run_playbook(template_play, "-e", "environment_name=qa", "-e", "retention_days=30")

    assert second.returncode != 0
    assert "V1 (V1__audit_table.sql.j2) was changed after it was applied" in second.stdout
    assert database.query("SELECT obj_description('audit_qa'::regclass, 'pg_class')") == [
        ("7 days",)
    ]


def test_template_undefined_variable_named(
    database: Database, run_playbook, template_play: Path
) -> None:
    process = run_playbook(template_play, "-e", "environment_name=qa")

    assert process.returncode != 0
    assert (
        "Template migration V1__audit_table.sql.j2 failed to render: 'retention_days' is "
        "undefined" in process.stdout
    )
    assert history_rows(database) == []


def test_template_rendering_nothing_is_empty_migration(
    database: Database, run_playbook, tmp_path: Path
) -> None:
    conditional = (
        "{% if environment_name == 'prod' %}\n"
        "CREATE INDEX audit_prod_idx ON audit_prod (id);\n"
        "{% endif %}\n"
    )
    write_migrations(tmp_path / "sql", {"V1__prod_only.sql.j2": conditional})
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")

    process = run_playbook(playbook, "-e", "environment_name=staging")

    assert process.returncode == 0, process.stdout + process.stderr
    rows = history_rows(database)
    assert [row["script"] for row in rows] == ["V1__prod_only.sql.j2"]
    assert rows[0]["checksum"] == text_sha256("")


def test_template_without_action_plugin_rejected(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "sql", {"V1__audit_table.sql.j2": TEMPLATE})

    with pytest.raises(SourceError, match="must be rendered by the postgresql_migrate action"):
        migrate(migrate_params(database, directory))


def shipped_state(database: Database) -> dict[str, set[str]]:
    kinds = relations_by_kind(database)
    kinds.pop("sequence", None)
    return kinds


def test_undo_shipped_to_v1_and_forward(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    assert shipped_state(database) == {
        "table": SHIPPED_TABLES | {"schema_migrations"},
        "view": SHIPPED_VIEWS,
        "materialized view": SHIPPED_MATERIALIZED_VIEWS,
    }

    down = migrate(migrate_params(database, SHIPPED_SQL, target="1"))

    assert down["msg"] == "Undid 2 migrations (U3, U2); the database is at version 1."
    assert [(e["version"], e["type"]) for e in down["applied"]] == [("3", "undo"), ("2", "undo")]
    assert down["current_version"] == "1"
    assert [e["version"] for e in down["pending"]] == ["2", "3"]
    assert shipped_state(database) == {
        "table": (SHIPPED_TABLES - {"materialized_view_refresh"}) | {"schema_migrations"}
    }
    rows = history_rows(database)
    assert [(row["version"], row["type"]) for row in rows] == [
        ("1", "SQL"),
        ("2", "SQL"),
        ("3", "SQL"),
        ("3", "UNDO_SQL"),
        ("2", "UNDO_SQL"),
    ]
    assert rows[3]["script"] == "matviews/U3__materialized_views.sql"
    assert rows[3]["installed_by"] == database.env["PGUSER"]

    up = migrate(migrate_params(database, SHIPPED_SQL))

    assert up["msg"] == "Applied 2 migrations (V2, V3); the database is at version 3."
    assert shipped_state(database) == {
        "table": SHIPPED_TABLES | {"schema_migrations"},
        "view": SHIPPED_VIEWS,
        "materialized view": SHIPPED_MATERIALIZED_VIEWS,
    }


def test_undo_v3_restores_v2_views(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))

    migrate(migrate_params(database, SHIPPED_SQL, target="2"))

    assert shipped_state(database)["view"] == {
        "v_dispatch_summary",
        "v_match_rate_by_tenant",
        "v_match_rate_by_tenant_aggregated",
    }
    assert "materialized view" not in shipped_state(database)


def test_undo_check_mode_verifies_and_writes_nothing(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    before = history_rows(database)
    warnings: list[str] = []

    result = api.migrate(
        migrate_params(database, SHIPPED_SQL, target="1"),
        check_mode=True,
        diff=True,
        warn=warnings.append,
    )

    assert result["changed"] is True
    assert [(e["version"], e["verified"]) for e in result["applied"]] == [("3", True), ("2", True)]
    assert result["diff"][0]["before"] == "1\n2\n3\n"
    assert result["diff"][0]["after"] == "1\n"
    assert history_rows(database) == before
    assert shipped_state(database)["materialized view"] == SHIPPED_MATERIALIZED_VIEWS


def test_undo_fails_in_check_mode_like_real_run(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "sql",
        {
            "V1__a.sql": "CREATE TABLE a (id int);\n",
            "V2__b.sql": "CREATE TABLE b (id int);\n",
            "U2__b.sql": "DROP TABLE missing_table;\n",
        },
    )
    migrate(migrate_params(database, directory))

    with pytest.raises(ExecutionError) as raised:
        api.migrate(
            migrate_params(database, directory, target="1"),
            check_mode=True,
            diff=False,
            warn=[].append,
        )

    assert str(raised.value).startswith(
        'Migration U2 (U2__b.sql, line 1) failed: table "missing_table" does not exist '
        "(SQLSTATE 42P01)."
    )
    assert [row["type"] for row in history_rows(database)] == ["SQL", "SQL"]


def test_failed_undo_names_what_stays_undone(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "sql",
        {
            "V1__a.sql": "CREATE TABLE a (id int);\n",
            "V2__b.sql": "CREATE TABLE b (id int);\n",
            "U2__b.sql": "DROP TABLE missing_table;\n",
            "V3__c.sql": "CREATE TABLE c (id int);\n",
            "U3__c.sql": "DROP TABLE c;\n",
        },
    )
    migrate(migrate_params(database, directory))

    with pytest.raises(ExecutionError) as raised:
        migrate(migrate_params(database, directory, target="1"))

    assert str(raised.value).endswith(
        "Nothing from U2 was committed; V3, undone in this run by U3, stays undone."
    )
    assert relations_by_kind(database)["table"] == {"a", "b", "schema_migrations"}


UNDO_FAILING_LATE = {
    "V1__a.sql": "CREATE TABLE a (id int);\n",
    "V2__a_index.sql": "CREATE INDEX a_id_idx ON a (id);\n",
    "U2__a_index.sql": "-- dbops:no-transaction\n"
    "SET lock_timeout = '5s';\n"
    "DROP INDEX CONCURRENTLY a_id_idx;\n"
    "SELECT 1 / 0;\n",
}


def test_failed_undo_retry_needs_target(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "sql", UNDO_FAILING_LATE)
    migrate(migrate_params(database, directory))
    with pytest.raises(ExecutionError):
        migrate(migrate_params(database, directory, target="1"))

    with pytest.raises(PlanError) as without_target:
        migrate(migrate_params(database, directory, resolve_failed="retry"))
    with pytest.raises(PlanError) as plain:
        migrate(migrate_params(database, directory))

    assert str(without_target.value).startswith(
        "U2 (U2__a_index.sql) was recorded as failed. To run it again, set resolve_failed to "
        "retry together with a target below 2"
    )
    assert str(plain.value).startswith("Migration U2 (U2__a_index.sql) is recorded as failed")
    assert [(row["type"], row["success"]) for row in history_rows(database)][-1] == (
        "UNDO_SQL",
        False,
    )


def test_failed_undo_retried_with_target(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "sql", UNDO_FAILING_LATE)
    migrate(migrate_params(database, directory))
    with pytest.raises(ExecutionError):
        migrate(migrate_params(database, directory, target="1"))
    fixed = dict(UNDO_FAILING_LATE)
    fixed["U2__a_index.sql"] = (
        "-- dbops:no-transaction\nSET lock_timeout = '5s';\n"
        "DROP INDEX CONCURRENTLY IF EXISTS a_id_idx;\n"
    )
    write_migrations(directory, fixed)

    result = migrate(migrate_params(database, directory, target="1", resolve_failed="retry"))

    assert [entry["version"] for entry in result["applied"]] == ["2"]
    assert result["current_version"] == "1"


def test_repeatable_runs_again_after_undo(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "sql",
        {
            "V1__a.sql": "CREATE TABLE a (id int);\n",
            "V2__b.sql": "CREATE TABLE b (id int);\n",
            "U2__b.sql": "DROP TABLE b CASCADE;\n",
            "R__both.sql": "CREATE OR REPLACE VIEW both_ids AS\n"
            "SELECT id FROM a UNION SELECT id FROM b;\n",
        },
    )
    migrate(migrate_params(database, directory))
    down = migrate(migrate_params(database, directory, target="1"))

    up = migrate(migrate_params(database, directory))

    assert [entry["script"] for entry in down["applied"]] == ["U2__b.sql"]
    assert [entry["script"] for entry in up["applied"]] == ["V2__b.sql", "R__both.sql"]
    assert "both_ids" in relations_by_kind(database)["view"]


def test_undo_missing_scripts_named_before_running(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(
        tmp_path / "sql",
        {
            "V1__a.sql": "CREATE TABLE a (id int);\n",
            "V2__b.sql": "CREATE TABLE b (id int);\n",
            "V3__c.sql": "CREATE TABLE c (id int);\n",
            "V4__d.sql": "CREATE TABLE d (id int);\n",
            "U4__d.sql": "DROP TABLE d;\n",
            "U3__c.sql": "DROP TABLE c;\n",
        },
    )
    migrate(migrate_params(database, directory))

    with pytest.raises(PlanError) as raised:
        migrate(migrate_params(database, directory, target="0"))

    assert str(raised.value) == (
        "Cannot undo to version 0: no undo script for V2, V1. Add a "
        "U<version>__<description>.sql file for each, or choose a higher target."
    )
    assert relations_by_kind(database)["table"] == {"a", "b", "c", "d", "schema_migrations"}


DOTTED_FILES = {
    "V1.9__first.sql": "CREATE TABLE dotted_first (id int);\n",
    "U1.9__first.sql": "DROP TABLE dotted_first;\n",
    "V1.10__second.sql": "CREATE TABLE dotted_second (id int);\n",
    "U1.10__second.sql": "DROP TABLE dotted_second;\n",
}


@pytest.mark.parametrize("option", ["target", "baseline_version"])
def test_unquoted_dotted_version_rejected(
    database: Database, run_playbook, tmp_path: Path, option: str
) -> None:
    directory = write_migrations(tmp_path / "sql", DOTTED_FILES)
    migrate(migrate_params(database, directory))
    playbook = tmp_path / "unquoted.yml"
    playbook.write_text(
        textwrap.dedent(
            f"""\
            - name: Apply migrations with an unquoted version
              hosts: localhost
              connection: local
              gather_facts: false
              tasks:
                - name: Apply pending migrations
                  dbops.migrations.postgresql_migrate:
                    path: {directory}
                    {option}: 1.10
            """
        ),
        encoding="utf-8",
    )

    run = run_playbook(playbook)

    assert run.returncode != 0
    assert f"{option} is the number 1.1, but versions are text" in run.stdout, run.stdout
    assert [row["version"] for row in history_rows(database)] == ["1.9", "1.10"]
    assert relations_by_kind(database)["table"] >= {"dotted_first", "dotted_second"}
