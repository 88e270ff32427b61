"""Tests of the role dbops.migrations.schema through ansible-playbook against a real PostgreSQL.

Each test writes a small play into ``tmp_path`` that includes the role, and runs it with the
libpq environment of the test's database unless the test sets connection variables.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    checksum,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SCRIPTS,
    SHIPPED_SQL,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    history_rows,
    history_versions,
    migrate,
    migrate_params,
    relations_by_kind,
    user_relations,
)
from pgcluster import Database, PgCluster

DEPLOY_PLAYBOOK = "playbooks/deploy_schema.yml"

V1_TABLES = SHIPPED_TABLES - {"materialized_view_refresh"}
APPLY_TASK = "TASK [dbops.migrations.schema : Apply the pending migrations of step"

RunPlaybook = Callable[..., subprocess.CompletedProcess[str]]
PlayRecap = Callable[..., dict[str, int]]


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    return f"{run.stdout}\n{run.stderr}"


def write_play(
    tmp_path: Path,
    role_vars: dict[str, Any] | None = None,
    hosts: str = "localhost",
    action: str = "ansible.builtin.include_role",
) -> Path:
    """Write a play that includes the role on ``hosts`` with ``role_vars``, and return its path.

    ``action`` is include_role or import_role. An include is tagged ``always`` so that
    ``--tags`` selects among the role's own tags. An import passes its tags on to every task
    of the role, so it gets none.
    """
    include: dict[str, Any] = {
        "name": "Include the schema role",
        action: {"name": "dbops.migrations.schema"},
    }
    if action == "ansible.builtin.include_role":
        include["tags"] = ["always"]
    if role_vars:
        include["vars"] = role_vars
    play = {
        "name": "Deploy with the schema role",
        "hosts": hosts,
        "connection": "local",
        "gather_facts": False,
        "tasks": [include],
    }
    playbook = tmp_path / "role_play.yml"
    # JSON is valid YAML, and json.dumps quotes every string safely.
    playbook.write_text(json.dumps([play], indent=2), encoding="utf-8")
    return playbook


def expected_history() -> list[dict[str, Any]]:
    """Return the history rows that one postgresql_migrate run over files/sql writes."""
    rows = []
    for rank, script in enumerate(SHIPPED_SCRIPTS, start=1):
        text = (SHIPPED_SQL / script).read_text(encoding="utf-8")
        rows.append(
            {
                "installed_rank": rank,
                "version": str(rank),
                "type": "SQL",
                "script": script,
                "checksum": checksum(text),
                "success": True,
            }
        )
    return rows


def compared_history(database: Database) -> list[dict[str, Any]]:
    keys = ("installed_rank", "version", "type", "script", "checksum", "success")
    return [{key: row[key] for key in keys} for row in history_rows(database)]


@pytest.fixture
def second_database(pg_cluster: PgCluster) -> Iterator[Database]:
    """Create one more empty database, and drop it after the test."""
    name = f"test_second_{uuid.uuid4().hex[:12]}"
    created = pg_cluster.create_database(name)
    try:
        yield created
    finally:
        pg_cluster.drop_database(name)


def test_role_four_steps(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    playbook = write_play(tmp_path)

    check = run_playbook(playbook, "--check")
    assert check.returncode == 0, output_of(check)
    assert play_recap(check.stdout)["changed"] == 3, output_of(check)
    assert "verification is skipped" in check.stdout, output_of(check)
    assert user_relations(database) == set(), "check mode wrote to the database"

    apply = run_playbook(playbook)
    assert apply.returncode == 0, output_of(apply)
    assert play_recap(apply.stdout)["changed"] == 3, output_of(apply)
    assert "1 schema(s) contain the expected objects." in apply.stdout, output_of(apply)
    relations = relations_by_kind(database)
    assert relations["table"] == SHIPPED_TABLES | {"schema_migrations"}
    assert relations["materialized view"] == SHIPPED_MATERIALIZED_VIEWS
    assert relations["view"] == SHIPPED_VIEWS
    assert compared_history(database) == expected_history()

    check_again = run_playbook(playbook, "--check")
    assert check_again.returncode == 0, output_of(check_again)
    assert play_recap(check_again.stdout)["changed"] == 0, output_of(check_again)

    apply_again = run_playbook(playbook)
    assert apply_again.returncode == 0, output_of(apply_again)
    assert play_recap(apply_again.stdout)["changed"] == 0, output_of(apply_again)
    assert compared_history(database) == expected_history()


def test_role_imported_statically(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    playbook = write_play(tmp_path, action="ansible.builtin.import_role")

    first = run_playbook(playbook)
    second = run_playbook(playbook, "--tags", "verify")

    assert first.returncode == 0, output_of(first)
    assert play_recap(first.stdout)["changed"] == 3, output_of(first)
    assert compared_history(database) == expected_history()
    assert APPLY_TASK in first.stdout, output_of(first)
    assert second.returncode == 0, output_of(second)
    assert APPLY_TASK not in second.stdout, output_of(second)
    assert "1 schema(s) contain the expected objects." in second.stdout, output_of(second)


def test_role_tags_select_steps(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    playbook = write_play(tmp_path)

    schema = run_playbook(playbook, "--tags", "schema")
    assert schema.returncode == 0, output_of(schema)
    assert play_recap(schema.stdout)["changed"] == 1, output_of(schema)
    assert history_versions(database) == ["1"]
    relations = relations_by_kind(database)
    assert relations["table"] == V1_TABLES | {"schema_migrations"}
    assert "view" not in relations

    # schema_target caps every step, so the matviews step stops at V2 too. The refresh step
    # finds no materialized view, and no tracking table yet, and refreshes nothing.
    views = run_playbook(playbook, "--tags", "views,matviews,refresh", "-e", "schema_target=2")
    assert views.returncode == 0, output_of(views)
    assert play_recap(views.stdout)["changed"] == 1, output_of(views)
    assert history_versions(database) == ["1", "2"]
    assert "TASK [dbops.migrations.schema : Refresh the materialized views]" in views.stdout

    rest = run_playbook(playbook, "--tags", "matviews,refresh,verify")
    assert rest.returncode == 0, output_of(rest)
    assert history_versions(database) == ["1", "2", "3"]
    assert compared_history(database) == expected_history()


def test_role_with_own_migrations(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "V1__orders.sql").write_text(
        "CREATE TABLE orders (id int PRIMARY KEY, total numeric);\n", encoding="utf-8"
    )
    (sql_dir / "V2__order_totals.sql").write_text(
        "CREATE MATERIALIZED VIEW order_totals AS SELECT sum(total) AS total FROM orders;\n",
        encoding="utf-8",
    )
    role_vars = {
        "schema_migrations_path": str(sql_dir),
        "schema_refresh_tracking_table": None,
        "schema_expected_objects": {
            "public": {"tables": ["orders"], "materialized_views": ["order_totals"]}
        },
    }

    run = run_playbook(write_play(tmp_path, role_vars))

    assert run.returncode == 0, output_of(run)
    # One migration step applies both files, and the refresh step refreshes order_totals.
    assert play_recap(run.stdout)["changed"] == 2, output_of(run)
    assert history_versions(database) == ["1", "2"]
    assert "1 schema(s) contain the expected objects." in run.stdout, output_of(run)
    assert "TASK [dbops.migrations.schema : Refresh the materialized views]" in run.stdout


def test_verify_lists_missing_and_extra(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    database.query("DROP VIEW v_match_rate_by_tenant_aggregated")
    database.query("CREATE TABLE scratch (id int)")

    run = run_playbook(write_play(tmp_path), "--tags", "verify")

    assert run.returncode != 0, output_of(run)
    assert play_recap(run.stdout)["failed"] == 1, output_of(run)
    assert (
        "Schema verification failed: extra table public.scratch; "
        "missing view public.v_match_rate_by_tenant_aggregated. schema_expected_objects lists"
        in run.stdout
    ), output_of(run)


def test_drift_stops_step_with_nothing_to_apply(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    files = Path(shutil.copytree(SHIPPED_SQL, tmp_path / "sql"))
    edited = files / "schema" / "V1__initial_schema.sql"
    edited.write_text(edited.read_text(encoding="utf-8") + "-- edited\n", encoding="utf-8")
    playbook = write_play(tmp_path, {"schema_migrations_path": str(files)})

    run = run_playbook(playbook, "--tags", "schema")

    assert run.returncode != 0, output_of(run)
    assert play_recap(run.stdout)["failed"] == 1, output_of(run)
    assert (
        "Migration files do not match the history table public.schema_migrations: "
        "V1 (schema/V1__initial_schema.sql) checksum changed." in run.stdout
    ), output_of(run)


def test_step_never_undoes_for_older_file(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))
    files = Path(shutil.copytree(SHIPPED_SQL, tmp_path / "sql"))
    (files / "views" / "V2.5__late_view.sql").write_text(
        "CREATE VIEW late AS SELECT 1 AS one;\n", encoding="utf-8"
    )
    playbook = write_play(tmp_path, {"schema_migrations_path": str(files)})

    run = run_playbook(playbook, "--tags", "views")

    assert run.returncode != 0, output_of(run)
    assert play_recap(run.stdout)["failed"] == 1, output_of(run)
    assert "V2.5 (views/V2.5__late_view.sql) is older than the current version 3" in run.stdout
    assert compared_history(database) == expected_history()


def test_role_one_database_per_host(
    database: Database,
    second_database: Database,
    tmp_path: Path,
    run_playbook: RunPlaybook,
    play_recap: PlayRecap,
) -> None:
    inventory = tmp_path / "inventory.json"
    hosts = {
        "db_one": {"schema_login_db": database.name},
        "db_two": {"schema_login_db": second_database.name},
    }
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        # Only the password comes from a variable; the rest comes from the libpq environment.
        "schema_login_password": database.env["PGPASSWORD"],
    }
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": common}}), encoding="utf-8")
    playbook = write_play(tmp_path, hosts="all")

    run = run_playbook(
        playbook,
        "-i",
        str(inventory),
        "--tags",
        "schema,views,matviews",
        env={"PGPASSWORD": "not-the-password"},
    )

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout, "db_one")["changed"] == 3, output_of(run)
    assert play_recap(run.stdout, "db_two")["changed"] == 3, output_of(run)
    assert history_versions(database) == ["1", "2", "3"]
    assert history_versions(second_database) == ["1", "2", "3"]
    assert database.env["PGPASSWORD"] not in run.stdout


def test_argument_spec_rejects_invalid_value(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook
) -> None:
    run = run_playbook(write_play(tmp_path), "-e", "schema_refresh_concurrently=sometimes")

    assert run.returncode != 0, output_of(run)
    assert "value of schema_refresh_concurrently must be one of: auto, always, never" in (
        run.stdout
    ), output_of(run)
    assert user_relations(database) == set()


@pytest.mark.parametrize("variable", ["schema_target", "schema_baseline_version"])
def test_unquoted_dotted_version_rejected(
    database: Database, tmp_path: Path, run_playbook: RunPlaybook, variable: str
) -> None:
    run = run_playbook(write_play(tmp_path, {variable: 1.10}))

    assert run.returncode != 0, output_of(run)
    assert f"{variable} is the number 1.1, but versions are text" in run.stdout, output_of(run)
    assert user_relations(database) == set()


def test_deploy_playbook_target(
    database: Database, run_playbook: RunPlaybook, play_recap: PlayRecap
) -> None:
    run = run_playbook(DEPLOY_PLAYBOOK, "-e", '{"deploy_schema_target": 2}')

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["changed"] == 1, output_of(run)
    assert "Applied 2 migrations (V1, V2); the database is at version 2." in run.stdout
    # The note on a complete deploy is left out, because version 3 is not applied.
    assert "A complete deploy of the shipped SQL" not in run.stdout
    assert history_versions(database) == ["1", "2"]


@pytest.mark.parametrize(
    ("answer", "versions"),
    [("", ["1", "2", "3"]), ("  ", ["1", "2", "3"]), (0, []), ("0", [])],
    ids=["empty", "blank", "number-zero", "text-zero"],
)
def test_deploy_playbook_survey_answers(
    database: Database, run_playbook: RunPlaybook, answer: Any, versions: list[str]
) -> None:
    run = run_playbook(DEPLOY_PLAYBOOK, "-e", json.dumps({"deploy_schema_target": answer}))

    assert run.returncode == 0, output_of(run)
    assert history_versions(database) == versions
