# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch which sessions block the migrating backend, so a lock timeout can name them.

Once ``lock_timeout`` cancels the waiting statement the wait is over, and
``pg_blocking_pids`` has nothing left to report. A background thread therefore polls it
from a second connection while migrations run, and keeps the last non-empty answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_POLL_SECONDS = 0.1

_BLOCKERS_QUERY = (
    "SELECT a.pid, a.application_name, a.state, a.query_start, a.xact_start"
    " FROM pg_catalog.pg_stat_activity a"
    " WHERE a.pid = ANY(pg_catalog.pg_blocking_pids(%s)) ORDER BY a.pid"
)


class BlockerWatch:
    """Poll ``pg_blocking_pids(pid)`` on a connection of its own until stopped."""

    def __init__(self, connect: Callable[[], Any] | None, pid: int) -> None:
        self._connect = connect
        self._pid = pid
        self._latest: list[tuple[Any, ...]] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._connect is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="dbops-blocker-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._guard:
            self._latest = []

    def describe(self) -> str:
        """Return the blocking sessions seen since the last reset, as one phrase."""
        with self._guard:
            rows = list(self._latest)
        if not rows:
            return "no blocking session was seen (it may have let go in the meantime)"
        return "blocked by " + "; ".join(_describe_session(row) for row in rows)

    def _poll(self) -> None:
        import psycopg2

        try:
            connection = self._connect()  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - a watch that cannot connect only loses detail
            return
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                while True:
                    cursor.execute(_BLOCKERS_QUERY, (self._pid,))
                    rows = cursor.fetchall()
                    if rows:
                        with self._guard:
                            self._latest = rows
                    if self._stop.wait(_POLL_SECONDS):
                        break
        except psycopg2.Error:
            return
        finally:
            connection.close()


def _describe_session(row: tuple[Any, ...]) -> str:
    pid, application, state, query_start, transaction_start = row
    since = transaction_start or query_start
    started = f", transaction started {since:%Y-%m-%d %H:%M:%S %Z}".rstrip() if since else ""
    return (
        f"pid {pid} ({application or 'no application_name'}, {state or 'unknown state'}{started})"
    )
