"""The schema diff that check mode with --diff shows, for the shipped migrations."""

from __future__ import annotations

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_SQL,
    migrate,
    migrate_params,
    user_relations,
)
from pgcluster import Database

HEADING = "Schema changes of the pending migrations (verified, then rolled back):"


def check_with_diff(database: Database, **overrides: object) -> dict:
    warnings: list[str] = []
    params = migrate_params(database, SHIPPED_SQL, **overrides)
    return api.migrate(params, check_mode=True, diff=True, warn=warnings.append)


def schema_lines(result: dict) -> list[str]:
    prepared = [item["prepared"] for item in result["diff"] if "prepared" in item]
    assert len(prepared) == 1, result["diff"]
    lines = prepared[0].splitlines()
    assert lines[0] == HEADING
    return lines[1:]


def test_schema_diff_of_shipped_sql(database: Database) -> None:
    lines = schema_lines(check_with_diff(database))

    assert all(line.startswith("+ ") for line in lines), [line for line in lines if line[0] != "+"]
    assert sum(line.startswith("+ table ") for line in lines) == 13
    assert sum(line.startswith("+ view ") for line in lines) == 1
    assert sum(line.startswith("+ materialized view ") for line in lines) == 2
    assert sum(line.startswith("+ type ") for line in lines) == 4
    assert sum(line.startswith("+ foreign key ") for line in lines) == 13
    assert '+ type public."TenantStatus" enum (provisioning, active, suspended, retired)' in lines
    assert "+ table public.materialized_view_refresh (3 columns)" in lines
    assert not any("schema_migrations" in line for line in lines)
    assert user_relations(database) == set()


def test_schema_diff_of_v3_after_v2(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL, target="2"))

    lines = schema_lines(check_with_diff(database))

    assert "- view public.v_dispatch_summary" in lines
    assert "+ materialized view public.v_dispatch_summary" in lines
    assert "- view public.v_match_rate_by_tenant" in lines
    assert "+ materialized view public.v_match_rate_by_tenant" in lines
    assert (
        "~ view public.v_match_rate_by_tenant_aggregated: dropped and recreated, definition changed"
    ) in lines
    assert ("public", "materialized_view_refresh") not in user_relations(database)


def test_schema_diff_absent_from_real_runs(database: Database) -> None:
    warnings: list[str] = []
    params = migrate_params(database, SHIPPED_SQL)

    result = api.migrate(params, check_mode=False, diff=True, warn=warnings.append)

    assert not any("prepared" in item for item in result["diff"])


def test_schema_diff_when_nothing_pending(database: Database) -> None:
    migrate(migrate_params(database, SHIPPED_SQL))

    result = check_with_diff(database)

    assert result["changed"] is False
    assert not any("prepared" in item for item in result["diff"])
