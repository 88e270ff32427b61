"""Fixtures of the common Molecule verification, which runs under pytest-testinfra.

Molecule runs these tests with ``--connection=ansible`` and the scenario's inventory, and
testinfra runs each test once per host of group ``databases``. Each of those hosts stands for
one database: its name is the host variable ``schema_login_db``, and its connection is the
JSON file that the scenario's create.yml wrote to
``$MOLECULE_EPHEMERAL_DIRECTORY/connections/<inventory host>.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

Query = Callable[..., list[tuple[Any, ...]]]


def connection_params(host: Any) -> dict[str, Any]:
    """Return the psycopg2 keyword arguments that reach the database of testinfra ``host``."""
    ephemeral_dir = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not ephemeral_dir:
        pytest.fail("MOLECULE_EPHEMERAL_DIRECTORY is not set: run these tests with molecule verify")
    variables = host.ansible.get_variables()
    hostname = variables["inventory_hostname"]
    connection_file = Path(ephemeral_dir) / "connections" / f"{hostname}.json"
    try:
        params = json.loads(connection_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pytest.fail(f"{connection_file} not found: the scenario's create.yml writes it")
    return {**params, "dbname": variables["schema_login_db"]}


@pytest.fixture(scope="module")
def query(host: Any) -> Iterator[Query]:
    """Return query(sql, params=None), which runs one statement and returns its rows."""
    connection = psycopg2.connect(**connection_params(host), connect_timeout=10)
    connection.autocommit = True

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()

    try:
        yield run
    finally:
        connection.close()
