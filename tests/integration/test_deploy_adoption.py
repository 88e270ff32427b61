"""Adopting a hand-migrated database through the deploy playbook and the schema role."""

from __future__ import annotations

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_SQL,
    history_rows,
)
from pgcluster import Database


def apply_by_hand(database: Database, *scripts: str) -> None:
    """Run shipped files with plain psycopg2, one transaction each, as a console would."""
    connection = database.connect()
    try:
        for script in scripts:
            with connection, connection.cursor() as cursor:
                cursor.execute((SHIPPED_SQL / script).read_text(encoding="utf-8"))
    finally:
        connection.close()


def test_deploy_baselines_then_applies_rest(database: Database, run_playbook, play_recap) -> None:
    apply_by_hand(database, "schema/V1__initial_schema.sql", "views/V2__analytics_views.sql")

    process = run_playbook(
        "playbooks/deploy_schema.yml",
        "-e",
        "schema_baseline_version=2",
        "-e",
        "schema_baseline_verify=true",
    )

    assert process.returncode == 0, process.stdout + process.stderr
    assert "Baselined V1, V2: recorded as applied without running their SQL" in process.stderr
    assert [(row["version"], row["type"]) for row in history_rows(database)] == [
        ("1", "BASELINE"),
        ("2", "BASELINE"),
        ("3", "SQL"),
    ]


def test_status_marks_baselined_versions(database: Database, run_playbook) -> None:
    apply_by_hand(database, "schema/V1__initial_schema.sql", "views/V2__analytics_views.sql")
    deploy = run_playbook("playbooks/deploy_schema.yml", "-e", "schema_baseline_version=2")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr

    status = run_playbook("playbooks/migration_status.yml")

    assert status.returncode == 0, status.stdout + status.stderr
    lines = [line for line in status.stdout.splitlines() if "__" in line and "(" in line]
    baselined = [line for line in lines if "baseline: recorded, not run" in line]
    assert len(baselined) == 2, status.stdout
    assert "V1__initial_schema.sql" in baselined[0]
    assert "V2__analytics_views.sql" in baselined[1]
    assert any("V3__materialized_views.sql" in line for line in lines if line not in baselined)


def test_deploy_refuses_half_migrated_baseline(database: Database, run_playbook) -> None:
    apply_by_hand(database, "schema/V1__initial_schema.sql")

    process = run_playbook(
        "playbooks/deploy_schema.yml",
        "-e",
        "schema_baseline_version=2",
        "-e",
        "schema_baseline_verify=true",
    )

    assert process.returncode != 0
    assert "baseline_verify found objects missing" in process.stdout
    assert "V2 view v_dispatch_summary" in process.stdout
    assert history_rows(database) == []
