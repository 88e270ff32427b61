# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open a psycopg2 connection from community.postgresql-style options.

Options left unset fall through to libpq, so PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE, PGSSLMODE and the rest of libpq's environment apply as they do for psql.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ConnectError

try:
    import psycopg2
    from psycopg2 import sql

    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    HAS_PSYCOPG2 = False

DEFAULT_APPLICATION_NAME = "dbops.migrations"


@dataclass
class ConnectionSettings:
    """Connection options, named as community.postgresql names them."""

    login_host: str | None = None
    login_port: int | None = None
    login_user: str | None = None
    login_password: str | None = None
    login_db: str | None = None
    login_unix_socket: str | None = None
    ssl_mode: str | None = None
    ca_cert: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    connect_params: dict[str, Any] = field(default_factory=dict)
    session_role: str | None = None
    application_name: str = DEFAULT_APPLICATION_NAME

    def libpq_params(self) -> dict[str, Any]:
        """Return keyword arguments for psycopg2.connect, leaving unset options to libpq."""
        params: dict[str, Any] = {
            "host": self.login_unix_socket or self.login_host,
            "port": self.login_port,
            "user": self.login_user,
            "password": self.login_password,
            "dbname": self.login_db,
            "sslmode": self.ssl_mode,
            "sslrootcert": self.ca_cert,
            "sslcert": self.ssl_cert,
            "sslkey": self.ssl_key,
            "application_name": self.application_name,
        }
        params = {key: value for key, value in params.items() if value not in (None, "")}
        params.update(self.connect_params)
        return params


def connect(settings: ConnectionSettings) -> Any:
    """Open an autocommit connection and switch to ``session_role`` when one is set.

    Raises ConnectError with libpq's message; the password never appears in it.
    """
    try:
        connection = psycopg2.connect(**settings.libpq_params())
    except psycopg2.Error as error:
        raise ConnectError(describe_connect_failure(error, settings)) from None
    connection.autocommit = True
    if settings.session_role:
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(settings.session_role)))
        except psycopg2.Error as error:
            connection.close()
            raise ConnectError(
                f"Cannot switch to session_role {settings.session_role!r}: {_first_line(error)}"
            ) from None
    return connection


def describe_connect_failure(error: Exception, settings: ConnectionSettings) -> str:
    """Return a one-line reason for a failed connection, with a hint where one helps."""
    text = _first_line(error)
    if settings.login_password:
        text = text.replace(settings.login_password, "********")
    message = f"Cannot connect to PostgreSQL: {text}"
    if "no encryption" in text:
        message += (
            " Hint: the server requires TLS; set ssl_mode to require, or to verify-full with "
            "ca_cert."
        )
    return message


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__
