"""Check each database after converge: the shipped schema is complete and recorded.

files/sql creates, in schema public, 13 tables (12 in version 1 and materialized_view_refresh
in version 3), 1 view in version 2 and 2 materialized views in version 3. The history table
public.schema_migrations is not counted among the tables.
"""

from __future__ import annotations

import pytest

# testinfra runs every test once per host in this inventory group.
testinfra_hosts = ["ansible://databases"]

HISTORY_TABLE = "schema_migrations"

# (test id, pg_class.relkind, names in schema public)
RELATIONS_BY_KIND = [
    (
        "tables",
        "r",
        {
            "Checkout",
            "Click",
            "Conversion",
            "DedupeRegistry",
            "DispatchAttempt",
            "Funnel",
            "Identity",
            "MatchLog",
            "Pageview",
            "SetupSession",
            "Tenant",
            "WebhookRaw",
            "materialized_view_refresh",
        },
    ),
    ("views", "v", {"v_match_rate_by_tenant_aggregated"}),
    ("materialized-views", "m", {"v_dispatch_summary", "v_match_rate_by_tenant"}),
]

EXPECTED_HISTORY = [
    (1, "1", "schema/V1__initial_schema.sql", True),
    (2, "2", "views/V2__analytics_views.sql", True),
    (3, "3", "matviews/V3__materialized_views.sql", True),
]


@pytest.mark.parametrize(
    ("relkind", "expected"),
    [pytest.param(relkind, names, id=label) for label, relkind, names in RELATIONS_BY_KIND],
)
def test_public_relations_of_kind(query, relkind: str, expected: set[str]) -> None:
    rows = query(
        "SELECT c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = %s AND c.relname <> %s",
        [relkind, HISTORY_TABLE],
    )

    assert {name for (name,) in rows} == expected


def test_history_records_each_migration(query) -> None:
    rows = query(
        "SELECT installed_rank, version, script, success FROM public.schema_migrations"
        " ORDER BY installed_rank"
    )

    assert rows == EXPECTED_HISTORY


def test_no_invalid_indexes(query) -> None:
    rows = query(
        "SELECT i.indexrelid::regclass::text FROM pg_catalog.pg_index i"
        " JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND NOT (i.indisvalid AND i.indisready)"
    )

    assert rows == []


def test_public_schema_has_indexes(query) -> None:
    rows = query(
        "SELECT count(*) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'i'"
    )

    assert rows[0][0] > 0


def test_materialized_views_populated(query) -> None:
    rows = query(
        "SELECT matviewname FROM pg_catalog.pg_matviews"
        " WHERE schemaname = 'public' AND NOT ispopulated"
    )

    assert rows == []
