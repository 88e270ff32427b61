# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The history table: which migrations ran, with their checksums, who ran them and when."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import MigrationError

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

# Row types written to the history table's "type" column.
TYPE_SQL = "SQL"
TYPE_SQL_NO_TRANSACTION = "SQL_NO_TRANSACTION"
TYPE_REPEATABLE = "SQL_REPEATABLE"
TYPE_BASELINE = "BASELINE"
TYPE_UNDO = "UNDO_SQL"

_COLUMNS = (
    "installed_rank",
    "version",
    "description",
    "type",
    "script",
    "checksum",
    "installed_by",
    "installed_at",
    "execution_time_ms",
    "success",
)


@dataclass(frozen=True)
class HistoryRow:
    """One row of the history table."""

    installed_rank: int
    version: str | None
    description: str
    type: str
    script: str
    checksum: str
    installed_by: str
    installed_at: datetime
    execution_time_ms: int
    success: bool


# pg_class.relkind of an ordinary and of a partitioned table.
TABLE_KINDS = ("r", "p")
RELATION_KIND_NAMES = {
    "i": "index",
    "S": "sequence",
    "v": "view",
    "m": "materialized view",
    "c": "composite type",
    "f": "foreign table",
    "I": "partitioned index",
}


class HistoryTable:
    """The history table of one database, by schema and name."""

    def __init__(self, schema: str, table: str) -> None:
        self.schema = schema
        self.table = table
        self.identifier = sql.Identifier(schema, table)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    def lock_key(self) -> int:
        """Return the advisory lock key for this table: a signed 64-bit hash of its name."""
        digest = hashlib.sha256(f"dbops.migrations:{self.qualified_name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def exists(self, cursor: Any) -> bool:
        """Return whether the history table exists.

        Raises MigrationError when another kind of relation, such as a view, has its name.
        """
        cursor.execute(
            "SELECT c.relkind::text FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, self.table),
        )
        row = cursor.fetchone()
        if row is None:
            return False
        if row[0] not in TABLE_KINDS:
            kind = RELATION_KIND_NAMES.get(row[0], f"relation of kind {row[0]!r}")
            raise MigrationError(
                f"{self.qualified_name} is a {kind}, not a history table. Set history_table "
                "to a name that no other relation uses."
            )
        return True

    def create(self, cursor: Any) -> None:
        """Create the schema when missing, then the table. Call while holding the lock."""
        cursor.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (self.schema,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        cursor.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {table} ("
                " installed_rank integer PRIMARY KEY,"
                " version text,"
                " description text NOT NULL,"
                " type text NOT NULL,"
                " script text NOT NULL,"
                " checksum text NOT NULL,"
                " installed_by text NOT NULL DEFAULT CURRENT_USER,"
                " installed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
                " execution_time_ms integer NOT NULL,"
                " success boolean NOT NULL)"
            ).format(table=self.identifier)
        )

    def rows(self, cursor: Any) -> list[HistoryRow]:
        cursor.execute(
            sql.SQL("SELECT {columns} FROM {table} ORDER BY installed_rank").format(
                columns=sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
                table=self.identifier,
            )
        )
        return [HistoryRow(*row) for row in cursor.fetchall()]

    def resolve_failed(
        self, cursor: Any, ranks: list[int], decision: str, checksums: dict[str, str]
    ) -> None:
        """Delete the failed rows (``retry``) or mark them applied with current checksums."""
        if decision == "retry":
            cursor.execute(
                sql.SQL("DELETE FROM {table} WHERE installed_rank = ANY(%s)").format(
                    table=self.identifier
                ),
                (ranks,),
            )
            return
        for rank in ranks:
            cursor.execute(
                sql.SQL(
                    "UPDATE {table} SET success = true,"
                    " checksum = COALESCE((%s::jsonb) ->> script, checksum)"
                    " WHERE installed_rank = %s"
                ).format(table=self.identifier),
                (json.dumps(checksums), rank),
            )

    def update_checksum(self, cursor: Any, rank: int, checksum: str) -> None:
        cursor.execute(
            sql.SQL("UPDATE {table} SET checksum = %s WHERE installed_rank = %s").format(
                table=self.identifier
            ),
            (checksum, rank),
        )

    def insert_statement(self) -> sql.Composed:
        """Return the INSERT for one row; its parameters are those of ``insert_parameters``.

        The rank is computed in the statement, which is safe because only the holder of the
        migration lock writes to the table.
        """
        return sql.SQL(
            "INSERT INTO {table} (installed_rank, version, description, type, script,"
            " checksum, execution_time_ms, success)"
            " SELECT COALESCE(pg_catalog.max(installed_rank), 0) + 1,"
            " %s, %s, %s, %s, %s, %s, %s FROM {table}"
        ).format(table=self.identifier)


def insert_parameters(
    version: str | None,
    description: str,
    row_type: str,
    script: str,
    checksum: str,
    execution_time_ms: int,
    success: bool,
) -> tuple[Any, ...]:
    return (version, description, row_type, script, checksum, execution_time_ms, success)
