# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the migration engine.

Every expected failure is a MigrationError whose message is complete on its
own: the glue code shows ``str(error)`` to the user and adds no traceback.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Base class of every failure the engine expects and explains.

    ``result`` contains task result keys that stay true despite the failure, such as the
    migrations a run committed before one failed.
    """

    result: dict[str, object] | None = None


class SourceError(MigrationError):
    """A migration file has an invalid name, or two files share a version."""


class ScanError(MigrationError):
    """A migration file contains SQL the engine will not run (meta-commands and the like)."""

    def __init__(self, script: str, problems: list[tuple[int, str]]) -> None:
        self.script = script
        self.problems = problems
        lines = "; ".join(f"line {line}: {text}" for line, text in problems)
        super().__init__(f"{script} cannot be run: {lines}")


class PlanError(MigrationError):
    """History and sources disagree: drift, a missing file, a failed or out-of-order migration."""


class ConnectError(MigrationError):
    """The database cannot be reached or rejected the login."""


class LockTimeoutError(MigrationError):
    """Another run held the migration lock for longer than the wait limit."""


class ExecutionError(MigrationError):
    """A migration failed on the server; nothing of it was committed."""

    def __init__(
        self,
        message: str,
        *,
        version: str | None,
        script: str,
        line: int | None,
        sqlstate: str | None,
    ) -> None:
        self.version = version
        self.script = script
        self.line = line
        self.sqlstate = sqlstate
        super().__init__(message)
