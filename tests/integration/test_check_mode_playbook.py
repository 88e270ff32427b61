"""Check mode of playbooks/deploy_schema.yml, through ansible-playbook --check."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from ansible_collections.dbops.migrations.tests.integration.check_support import (
    ORIGINAL_SQL,
    history_versions,
    schema_objects,
)
from pgcluster import Database

PLAYBOOK = "playbooks/deploy_schema.yml"

# The first lines of the diff that --diff prints for an empty database and the shipped SQL.
VERSIONS_DIFF = (
    "--- before: public.schema_migrations (applied versions)\n"
    "+++ after: public.schema_migrations (applied versions)\n"
    "@@ -0,0 +1,3 @@\n"
    "+1\n"
    "+2\n"
    "+3\n"
)


def output_of(completed: subprocess.CompletedProcess[str]) -> str:
    """Return stdout and stderr of an ansible-playbook run, for asserts and their messages."""
    return completed.stdout + completed.stderr


def test_check_diff_on_empty_database_reports_changed(
    run_playbook: Callable, play_recap: Callable
) -> None:
    completed = run_playbook(PLAYBOOK, "--check", "--diff")

    recap = play_recap(completed.stdout)
    assert recap["changed"] == 1, output_of(completed)
    assert recap["failed"] == 0, output_of(completed)


def test_check_diff_shows_versions_and_sql(run_playbook: Callable) -> None:
    completed = run_playbook(PLAYBOOK, "--check", "--diff")

    assert VERSIONS_DIFF in completed.stdout, output_of(completed)
    assert "+++ after: V1 schema/V1__initial_schema.sql\n" in completed.stdout
    assert '\n+CREATE TABLE "Tenant" (\n' in completed.stdout


def test_check_diff_leaves_database_empty(run_playbook: Callable, database: Database) -> None:
    completed = run_playbook(PLAYBOOK, "--check", "--diff")

    assert completed.returncode == 0, output_of(completed)
    assert schema_objects(database) == []


def test_check_after_real_run_reports_unchanged(
    run_playbook: Callable, play_recap: Callable, database: Database
) -> None:
    deployed = run_playbook(PLAYBOOK)
    assert play_recap(deployed.stdout)["changed"] == 1, output_of(deployed)

    completed = run_playbook(PLAYBOOK, "--check")

    recap = play_recap(completed.stdout)
    assert recap["changed"] == 0, output_of(completed)
    assert recap["failed"] == 0, output_of(completed)
    assert history_versions(database) == ["1", "2", "3"]


def test_check_of_original_sql_fails_at_v1(run_playbook: Callable, play_recap: Callable) -> None:
    completed = run_playbook(PLAYBOOK, "--check", "-e", f"deploy_schema_path={ORIGINAL_SQL}")

    output = output_of(completed)
    assert play_recap(completed.stdout)["failed"] == 1, output
    assert "Migration V1 (schema/V1__initial_schema.sql, line 238) failed" in output
    assert "(SQLSTATE 42804)" in output
    assert "Check mode: nothing was written, and the database is unchanged." in output


def test_check_of_original_sql_leaves_database_empty(
    run_playbook: Callable, database: Database
) -> None:
    completed = run_playbook(PLAYBOOK, "--check", "-e", f"deploy_schema_path={ORIGINAL_SQL}")

    assert completed.returncode != 0, output_of(completed)
    assert schema_objects(database) == []
