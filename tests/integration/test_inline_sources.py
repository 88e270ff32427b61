"""Migrations given inline in the sources option, and the errors around path and sources."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    history_rows,
    relations_by_kind,
    text_sha256,
    write_migrations,
)
from pgcluster import Database

INLINE_V1 = "CREATE TABLE inline_orders (id bigint PRIMARY KEY);\n"
INLINE_V2 = "ALTER TABLE inline_orders ADD COLUMN note text;\n"


def write_play(path: Path, module: str, arguments: dict[str, Any]) -> Path:
    """Write a playbook on localhost that runs ``module`` and saves its result as JSON in
    ``result.json`` next to the playbook."""
    play = {
        "name": "Run one migration module",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [
            {"name": "Run the module", module: arguments, "register": "outcome"},
            {
                "name": "Save the result",
                "ansible.builtin.copy": {
                    "content": "{{ outcome | to_json }}",
                    "dest": str(path.parent / "result.json"),
                    "mode": "0600",
                },
                "changed_when": False,
            },
        ],
    }
    # JSON is valid YAML, and json.dumps quotes every string safely.
    path.write_text(json.dumps([play], indent=2), encoding="utf-8")
    return path


def output_of(run: subprocess.CompletedProcess[str]) -> str:
    return f"{run.stdout}\n{run.stderr}"


def test_inline_sources_applied_with_their_script_names(
    database: Database, run_playbook, play_recap, tmp_path: Path
) -> None:
    sources = [
        {"script": "V1__inline_orders.sql", "content": INLINE_V1},
        {"script": "V2__order_note.sql", "content": INLINE_V2},
    ]
    playbook = write_play(
        tmp_path / "inline.yml", "dbops.migrations.postgresql_migrate", {"sources": sources}
    )

    run = run_playbook(playbook)

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["changed"] == 1
    rows = history_rows(database)
    assert [(row["script"], row["checksum"]) for row in rows] == [
        ("V1__inline_orders.sql", text_sha256(INLINE_V1)),
        ("V2__order_note.sql", text_sha256(INLINE_V2)),
    ]
    columns = database.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'inline_orders'::regclass"
        " AND attnum > 0 ORDER BY attnum"
    )
    assert columns == [("id",), ("note",)]


def test_inline_sources_seen_by_migration_info(
    database: Database, run_playbook, tmp_path: Path
) -> None:
    sources = [{"script": "V1__inline_orders.sql", "content": INLINE_V1}]
    playbook = write_play(
        tmp_path / "info.yml", "dbops.migrations.postgresql_migration_info", {"sources": sources}
    )

    run = run_playbook(playbook)

    assert run.returncode == 0, output_of(run)
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    assert [entry["script"] for entry in result["pending"]] == ["V1__inline_orders.sql"]
    assert relations_by_kind(database) == {}


@pytest.mark.parametrize(
    "module", ["dbops.migrations.postgresql_migrate", "dbops.migrations.postgresql_migration_info"]
)
def test_path_and_sources_together_rejected(
    database: Database, run_playbook, tmp_path: Path, module: str
) -> None:
    directory = write_migrations(tmp_path / "sql", {"V1__from_file.sql": INLINE_V1})
    arguments = {
        "path": str(directory),
        "sources": [{"script": "V1__inline_orders.sql", "content": INLINE_V1}],
    }
    playbook = write_play(tmp_path / "both.yml", module, arguments)

    run = run_playbook(playbook)

    assert run.returncode != 0
    assert "path and sources are mutually exclusive" in run.stdout, output_of(run)
    assert relations_by_kind(database) == {}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "path is required: a directory of migrations, or sources with their text."),
        (
            {"sources": [{"script": "orders.sql", "content": INLINE_V1}]},
            "orders.sql",
        ),
        (
            {"sources": [{"script": "V1__inline_orders.sql"}]},
            "missing required arguments: content found in sources",
        ),
        (
            {"sources": []},
            "sources is an empty list: give at least one migration, or set path.",
        ),
        (
            {"path": "no_such_directory"},
            "Migration directory 'no_such_directory' not found: a relative path is looked up in "
            "the role's files/ directory, then next to the playbook.",
        ),
    ],
    ids=["neither", "invalid-name", "no-content", "empty-sources", "missing-directory"],
)
def test_invalid_migrate_arguments_rejected(
    database: Database, run_playbook, tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    playbook = write_play(
        tmp_path / "invalid.yml", "dbops.migrations.postgresql_migrate", arguments
    )

    run = run_playbook(playbook)

    assert run.returncode != 0
    assert message in run.stdout, output_of(run)
    assert relations_by_kind(database) == {}


def test_path_to_file_rejected(database: Database, run_playbook, tmp_path: Path) -> None:
    directory = write_migrations(tmp_path / "sql", {"V1__from_file.sql": INLINE_V1})
    script = directory / "V1__from_file.sql"
    playbook = write_play(
        tmp_path / "file.yml", "dbops.migrations.postgresql_migrate", {"path": str(script)}
    )

    run = run_playbook(playbook)

    assert run.returncode != 0
    assert f"Migration path '{script}' is a file, not a directory" in run.stdout, output_of(run)
    assert relations_by_kind(database) == {}


@pytest.mark.parametrize(
    "module", ["dbops.migrations.postgresql_migrate", "dbops.migrations.postgresql_migration_info"]
)
def test_empty_directory_warns_in_play(
    database: Database, run_playbook, tmp_path: Path, module: str
) -> None:
    core = write_migrations(tmp_path / "core", {"V1__inline_orders.sql": INLINE_V1})
    misspelt = tmp_path / "reportng"
    misspelt.mkdir()
    playbook = write_play(tmp_path / "warn.yml", module, {"path": [str(core), str(misspelt)]})

    run = run_playbook(playbook)

    assert run.returncode == 0, output_of(run)
    assert "[WARNING]: Migration directory" in run.stdout + run.stderr, output_of(run)
    assert f"{str(misspelt)!r} contains no .sql or .sql.j2 file" in output_of(run)


def test_only_empty_directory_warns_and_applies_nothing(
    database: Database, run_playbook, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    playbook = write_play(
        tmp_path / "empty.yml", "dbops.migrations.postgresql_migrate", {"path": str(empty)}
    )

    run = run_playbook(playbook)

    assert run.returncode == 0, output_of(run)
    assert f"{str(empty)!r} contains no .sql or .sql.j2 file" in output_of(run)
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    assert result["changed"] is False
    assert result["applied"] == []


def test_directory_listed_twice_read_once(
    database: Database, run_playbook, play_recap, tmp_path: Path
) -> None:
    directory = write_migrations(tmp_path / "sql", {"V1__inline_orders.sql": INLINE_V1})
    playbook = write_play(
        tmp_path / "twice.yml",
        "dbops.migrations.postgresql_migrate",
        {"path": [str(directory), str(directory)]},
    )

    run = run_playbook(playbook)

    assert run.returncode == 0, output_of(run)
    assert play_recap(run.stdout)["changed"] == 1
    assert [row["script"] for row in history_rows(database)] == ["V1__inline_orders.sql"]
