"""A concurrent index build in one run while another run waits for the migration lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    history_versions,
    migrate,
    migrate_params,
    write_migrations,
)
from pgcluster import Database

MIGRATIONS = {
    "V1__city.sql": "CREATE TABLE city (id serial PRIMARY KEY, name text NOT NULL);\n",
    "V2__city_name_idx.sql": (
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY city_name_idx ON city (name);\n"
    ),
}
DEADLINE_SECONDS = 60


def wait_for(database: Database, query: str, params: tuple[Any, ...] = ()) -> None:
    """Poll ``query`` until it returns a row, or fail after DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not database.query(query, params):
        assert time.monotonic() < deadline, f"timed out waiting for: {query}"
        time.sleep(0.05)


def test_index_build_does_not_wait_for_lock_waiter(database: Database, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "sql", MIGRATIONS)
    migrate(migrate_params(database, directory, target="1"))
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            params = migrate_params(
                database, directory, application_name=f"run {name}", lock_timeout="60s"
            )
            results[name] = migrate(params)
        except Exception as error:  # noqa: BLE001 - reported by the assertions below
            results[name] = error

    # A repeatable-read transaction keeps its snapshot, which CREATE INDEX CONCURRENTLY waits
    # for, so run A is still building the index while run B starts waiting for the lock.
    snapshot_holder = database.connect()
    snapshot_holder.set_session(isolation_level="REPEATABLE READ", autocommit=False)
    snapshot_holder.cursor().execute("SELECT count(*) FROM city")
    first = threading.Thread(target=run, args=("A",))
    second = threading.Thread(target=run, args=("B",))
    started: list[threading.Thread] = []
    try:
        first.start()
        started.append(first)
        wait_for(
            database,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'run A'"
            " AND query LIKE 'CREATE INDEX CONCURRENTLY%%' AND wait_event_type = 'Lock'",
        )
        second.start()
        started.append(second)
        wait_for(
            database,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'run B'"
            " AND query LIKE '%%pg_try_advisory_lock%%'",
        )
        # Run B polls in autocommit and holds no transaction, so the build waits only for
        # the snapshot holder; a blocking lock wait inside a transaction would deadlock here.
        assert database.query(
            "SELECT backend_xid IS NULL AND backend_xmin IS NULL FROM pg_stat_activity"
            " WHERE application_name = 'run B'"
        ) in ([(True,)], [])
    finally:
        snapshot_holder.rollback()
        snapshot_holder.close()
        for thread in started:
            thread.join(DEADLINE_SECONDS)

    assert not first.is_alive() and not second.is_alive(), "a run hung"
    assert not isinstance(results["A"], Exception), results["A"]
    assert not isinstance(results["B"], Exception), results["B"]
    assert [entry["version"] for entry in results["A"]["applied"]] == ["2"]
    assert results["B"]["applied"] == []
    assert history_versions(database) == ["1", "2"]
    assert database.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'city_name_idx'::regclass"
    ) == [(True,)]
