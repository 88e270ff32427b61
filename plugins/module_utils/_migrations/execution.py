# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prepare migrations for execution and run their statements on an open connection."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ExecutionError, ScanError
from .scanner import Statement, needs_autocommit, scan
from .sources import Migration

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

NO_TRANSACTION_DIRECTIVE = "-- dbops:no-transaction"
# SQLSTATE of a statement canceled by lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
_DIRECTIVE = re.compile(r"^[ \t]*--[ \t]*dbops:no-transaction[ \t]*$", re.MULTILINE | re.IGNORECASE)


@dataclass
class PreparedMigration:
    """A pending migration split into statements, with how it must run."""

    migration: Migration
    statements: list[Statement]
    no_transaction: bool


def prepare(
    migration: Migration, server_version: int, standard_conforming_strings: bool = True
) -> PreparedMigration:
    """Scan a migration and raise ScanError, before anything runs, if it cannot be run.

    The directive counts only in the comments before the first statement.
    """
    result = scan(migration.text, standard_conforming_strings)
    header_end = result.statements[0].offset if result.statements else len(migration.text)
    no_transaction = bool(_DIRECTIVE.search(migration.text, 0, header_end))
    problems = list(result.problems)
    if not no_transaction:
        problems.extend(
            (
                statement.line,
                f"{statement.summary} cannot run inside a transaction block; put the line "
                f"{NO_TRANSACTION_DIRECTIVE} at the top of the file to run it statement by "
                "statement outside a transaction",
            )
            for statement in result.statements
            if needs_autocommit(statement, server_version)
        )
    if problems:
        raise ScanError(migration.script, sorted(problems))
    return PreparedMigration(migration, result.statements, no_transaction)


def session_reset(session_role: str | None) -> sql.Composable:
    """Return SQL that undoes session state left by a migration.

    It resets settings, the session user and role, drops temporary tables and deallocates
    prepared statements. DISCARD ALL would do more, but it cannot run inside a transaction
    block, and it would release the migration lock.
    """
    parts: list[sql.Composable] = [
        sql.SQL("RESET SESSION AUTHORIZATION; RESET ALL; RESET ROLE; DISCARD TEMP; DEALLOCATE ALL")
    ]
    if session_role:
        parts.append(sql.SQL("SET ROLE {}").format(sql.Identifier(session_role)))
    return sql.SQL("; ").join(parts)


def timeouts(lock_timeout: str, statement_timeout: str, local: bool) -> sql.Composable:
    """Return SET commands for the two timeouts, transaction-local or for the session."""
    scope = sql.SQL("SET LOCAL" if local else "SET")
    return sql.SQL("{scope} lock_timeout = {lock}; {scope} statement_timeout = {statement}").format(
        scope=scope, lock=sql.Literal(lock_timeout), statement=sql.Literal(statement_timeout)
    )


class LazyText:
    """Text that is built when a message formats it, for notes that only a failure needs."""

    def __init__(self, build: Callable[[], str]) -> None:
        self._build = build

    def __str__(self) -> str:
        return self._build()


def run_statements(cursor: Any, prepared: PreparedMigration, stays: str | LazyText) -> int:
    """Execute every statement of a migration; return the elapsed time in milliseconds.

    Raises ExecutionError naming the migration, the file line, the server's message and
    SQLSTATE; ``stays`` ends the message and says what remains applied.
    """
    import psycopg2

    started = time.monotonic()
    for statement in prepared.statements:
        try:
            if statement.copy_data is not None:
                cursor.copy_expert(statement.text, io.StringIO(statement.copy_data))
            else:
                cursor.execute(statement.text)
        except psycopg2.Error as error:
            raise execution_error(prepared.migration, statement, error, stays) from None
    return int((time.monotonic() - started) * 1000)


def execution_error(
    migration: Migration, statement: Statement, error: Any, stays: str | LazyText
) -> ExecutionError:
    """Build the ExecutionError for a server error raised by one statement."""
    diag = getattr(error, "diag", None)
    sqlstate = getattr(error, "pgcode", None)
    primary = (diag.message_primary if diag else None) or _first_line(error)
    line = statement.line + _lines_before(statement.text, diag.statement_position if diag else None)
    context = (diag.context if diag else None) or ""
    line = _do_block_line(statement, context) or line
    where = f"{migration.script}, line {line}"
    if migration.script.endswith(".j2"):
        where += " of the rendered SQL"
    message = f"Migration {migration.label} ({where}) failed: {primary}"
    message += f" (SQLSTATE {sqlstate})." if sqlstate else "."
    detail = diag.message_detail if diag else None
    hint = diag.message_hint if diag else None
    if detail:
        message += f" Detail: {_sentence(detail)}"
    if hint:
        message += f" Hint: {_sentence(hint)}"
    locations = _routine_locations(context)
    if locations:
        message += f" Context: {_sentence('; '.join(locations))}"
    message += f" {stays}"
    return ExecutionError(
        message, version=migration.version, script=migration.script, line=line, sqlstate=sqlstate
    )


# PL/pgSQL names an anonymous DO block "inline_code_block" in an error's context, and counts
# its lines from the start of the body, the text right after the opening quote.
_DO_BLOCK_CONTEXT = re.compile(r"PL/pgSQL function inline_code_block line (\d+)")
_DO_BODY_START = re.compile(r"^\s*DO\b[^$']*(\$[A-Za-z_0-9]*\$|')", re.IGNORECASE)


def _routine_locations(context: str) -> list[str]:
    """Return the lines of an error context that name a routine and a line, such as
    "PL/pgSQL function inline_code_block line 3 at RAISE".

    Other lines are left out: they can quote SQL, such as 'SQL statement "..."' from
    EXECUTE, and that SQL may carry a password that hide_sql_in_diff keeps out of the output.
    """
    return [
        line.strip()
        for line in context.splitlines()
        if line.strip().startswith(("PL/pgSQL function", "SQL function"))
    ]


def _do_block_line(statement: Statement, context: str) -> int | None:
    """Return the file line of an error inside a DO block's body, from the line that PL/pgSQL
    names in ``context``, or None when the error is not in a DO block."""
    where = _DO_BLOCK_CONTEXT.search(context)
    body = _DO_BODY_START.search(statement.text)
    if where is None or body is None:
        return None
    body_line = statement.line + statement.text.count("\n", 0, body.end())
    return body_line + int(where.group(1)) - 1


def server_message(error: Any) -> str:
    """Return the server's primary message and SQLSTATE of a psycopg2 error, on one line."""
    diag = getattr(error, "diag", None)
    primary = (diag.message_primary if diag else None) or _first_line(error)
    sqlstate = getattr(error, "pgcode", None)
    return f"{primary} (SQLSTATE {sqlstate})." if sqlstate else _sentence(primary)


def _lines_before(text: str, position: str | None) -> int:
    """Count the newlines before the server's 1-based character position in ``text``."""
    if not position:
        return 0
    try:
        index = int(position) - 1
    except ValueError:
        return 0
    return text.count("\n", 0, max(0, index))


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith(".") else text + "."


def _first_line(error: Any) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
