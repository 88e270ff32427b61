"""The safety lint inside postgresql_migrate runs: warnings, the lint result and fail mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    PlanError,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    history_versions,
    migrate,
    migrate_params,
    write_migrations,
)
from pgcluster import Database

ORDERS = (
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint);\n"
    "INSERT INTO orders SELECT n, n % 10 FROM generate_series(1, 100) AS n;\n"
)
INDEX = "CREATE INDEX orders_customer_idx ON orders (customer_id);\n"


@pytest.fixture
def orders_applied(database: Database, tmp_path: Path) -> Path:
    directory = write_migrations(tmp_path / "sql", {"V1__orders.sql": ORDERS})
    migrate(migrate_params(database, directory))
    return directory


def test_lint_finding_is_warning_and_result(database: Database, orders_applied: Path) -> None:
    write_migrations(orders_applied, {"V2__orders_index.sql": INDEX})
    warnings: list[str] = []

    result = migrate(migrate_params(database, orders_applied), warnings)

    assert [finding["rule"] for finding in result["lint"]] == ["create-index-not-concurrently"]
    assert result["lint"][0]["script"] == "V2__orders_index.sql"
    assert result["lint"][0]["line"] == 1
    assert len(warnings) == 1
    assert warnings[0].startswith("V2__orders_index.sql, line 1: create-index-not-concurrently: ")
    assert history_versions(database) == ["1", "2"]


def test_lint_fail_mode_stops_before_running(database: Database, orders_applied: Path) -> None:
    write_migrations(orders_applied, {"V2__orders_index.sql": INDEX})

    with pytest.raises(PlanError) as raised:
        migrate(migrate_params(database, orders_applied, safety_lint="fail"))

    assert str(raised.value).startswith(
        "The safety lint found 1 problem(s) before anything ran: V2__orders_index.sql, line 1: "
        "create-index-not-concurrently: "
    )
    assert history_versions(database) == ["1"]
    assert database.query("SELECT to_regclass('orders_customer_idx')") == [(None,)]


def test_lint_silenced_with_reason(database: Database, orders_applied: Path) -> None:
    silenced = "-- dbops:lint-ignore create-index-not-concurrently orders holds 100 rows\n" + INDEX
    write_migrations(orders_applied, {"V2__orders_index.sql": silenced})
    warnings: list[str] = []

    result = migrate(migrate_params(database, orders_applied, safety_lint="fail"), warnings)

    assert result["lint"] == []
    assert warnings == []
    assert history_versions(database) == ["1", "2"]


def test_lint_off_checks_nothing(database: Database, orders_applied: Path) -> None:
    write_migrations(orders_applied, {"V2__orders_index.sql": INDEX})

    result = migrate(migrate_params(database, orders_applied, safety_lint="off"))

    assert result["lint"] == []
    assert history_versions(database) == ["1", "2"]
