# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration lock: a session-level PostgreSQL advisory lock, taken by polling.

A waiting run polls ``pg_try_advisory_lock`` in autocommit mode, so it holds no transaction
and no snapshot while it waits; a blocking ``pg_advisory_lock`` would hold a virtual
transaction that ``CREATE INDEX CONCURRENTLY`` in the lock holder waits for, a deadlock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import LockTimeoutError, MigrationError

_FIRST_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 1.0

_HOLDER_QUERY = (
    "SELECT a.pid, a.application_name, a.backend_start, a.state"
    " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
    " AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_catalog.pg_database"
    " WHERE datname = pg_catalog.current_database())"
)


@contextmanager
def migration_lock(connection: Any, key: int, wait_seconds: float, name: str) -> Iterator[int]:
    """Hold the advisory lock ``key`` for the block; yield the backend pid that holds it.

    Raises LockTimeoutError naming the holder when the lock is not free within
    ``wait_seconds``.
    """
    with connection.cursor() as cursor:
        pid = _acquire(cursor, key, wait_seconds, name)
    try:
        yield pid
    except BaseException:
        # The failure that ended the block is the one to report: behind a pooling proxy the
        # release fails too, and its error would replace the more precise first one.
        _release_quietly(connection, key)
        raise
    _release(connection, key, name)


def _acquire(cursor: Any, key: int, wait_seconds: float, name: str) -> int:
    """Take the lock and return the pid of the server process that holds it.

    The pid comes from the same statement as the lock, so it names the process that holds
    the lock even where a proxy hands each statement to another process.
    """
    deadline = time.monotonic() + wait_seconds
    delay = _FIRST_POLL_SECONDS
    while True:
        cursor.execute(
            "SELECT pg_catalog.pg_try_advisory_lock(%s), pg_catalog.pg_backend_pid()", (key,)
        )
        row: tuple[bool, int] = cursor.fetchone()
        locked, pid = row
        if locked:
            return pid
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeoutError(_timeout_message(cursor, key, wait_seconds, name))
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL_SECONDS)


def _release(connection: Any, key: int, name: str) -> None:
    if connection.closed:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (key,))
        released = cursor.fetchone()[0]
    if not released:
        raise MigrationError(
            f"The migration lock for {name} was not held by this session when it was "
            "released. A transaction-pooling proxy (such as PgBouncer in transaction mode) "
            "may have moved the session: connect directly or through session pooling."
        )


def _release_quietly(connection: Any, key: int) -> None:
    import psycopg2

    try:
        _release(connection, key, "")
    except (MigrationError, psycopg2.Error):
        return


def _timeout_message(cursor: Any, key: int, wait_seconds: float, name: str) -> str:
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    cursor.execute(_HOLDER_QUERY, (classid, objid))
    holders = [
        f"pid {pid} ({application or 'no application_name'}, {state or 'unknown state'}, "
        f"connected since {started:%Y-%m-%d %H:%M:%S %Z})".replace(" )", ")")
        for pid, application, started, state in cursor.fetchall()
    ]
    held_by = "; ".join(holders) if holders else "a session that has since let go"
    return (
        f"Timed out after {wait_seconds:g} s waiting for the migration lock on {name}, held by "
        f"{held_by}. Wait for that run to finish, or stop it, then run again."
    )
