"""TLS connections and least-privilege deploys, through api.migrate on a real server.

The TLS tests start a server of their own that accepts TCP logins only over TLS
(``hostssl`` lines in pg_hba.conf), with a server certificate for ``localhost`` and
127.0.0.1 issued by a throwaway CA. The privilege tests run as a role that owns its
database but is no superuser, as the master user of a managed database such as Amazon RDS is.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import api
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    ConnectError,
    ExecutionError,
)
from ansible_collections.dbops.migrations.tests.integration.check_support import (
    CHECK_NOTHING_WRITTEN,
)
from ansible_collections.dbops.migrations.tests.integration.migrate_support import (
    SHIPPED_MATERIALIZED_VIEWS,
    SHIPPED_SQL,
    SHIPPED_TABLES,
    SHIPPED_VIEWS,
    history_rows,
    history_versions,
    migrate,
    migrate_params,
    write_migrations,
)
from ansible_collections.dbops.migrations.tests.integration.tls_support import (
    Authority,
    KeyPair,
    create_authority,
    give_to_os_user,
    issue_certificate,
    require_hostssl,
    server_log_lines,
    tls_settings,
)
from pgcluster import Database, PgCluster

pytestmark = pytest.mark.matrix

# The role that logs in to the TLS server with a client certificate instead of a password.
CERT_ROLE = "cert_deployer"

TLS_HINT = "Hint: the server requires TLS; set ssl_mode to require, or to verify-full with ca_cert."


@dataclass(frozen=True)
class TlsServer:
    """A running TLS-only server and the certificates the tests connect with."""

    cluster: PgCluster
    authority: Authority
    unrelated_authority: Authority
    client: KeyPair


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    """Start a server with TLS on and pg_hba.conf rewritten to accept only hostssl logins.

    The files live in a folder given to the server's OS user, because pytest's tmp_path is
    not searchable by that user, and the server reads its key file only when that user owns
    it with no group or other access (mode 0600), or root owns it with mode 0640.
    """
    directory = Path(tempfile.mkdtemp(prefix="dbops-tls-"))
    try:
        authority = create_authority(directory, "dbops-test-ca")
        unrelated = create_authority(directory, "unrelated-ca")
        server = issue_certificate(
            authority,
            directory,
            "localhost",
            dns_names=("localhost",),
            ip_addresses=("127.0.0.1",),
        )
        client = issue_certificate(authority, directory, CERT_ROLE, client=True)
        cluster = PgCluster(settings=tls_settings(server, authority))
        give_to_os_user([directory, server.cert_file, server.key_file], cluster.os_user)
        with cluster:
            cluster.create_role(CERT_ROLE, uuid.uuid4().hex)
            require_hostssl(cluster, cert_roles=[CERT_ROLE])
            yield TlsServer(cluster, authority, unrelated, client)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def new_database(cluster: PgCluster, owner: str | None = None) -> Database:
    return cluster.create_database(f"tls_{uuid.uuid4().hex[:12]}", owner=owner)


@pytest.fixture
def tls_database(tls_server: TlsServer) -> Iterator[Database]:
    """Create an empty database on the TLS server, owned by the superuser."""
    database = new_database(tls_server.cluster)
    try:
        yield database
    finally:
        tls_server.cluster.drop_database(database.name)


@pytest.fixture
def cert_role_database(tls_server: TlsServer) -> Iterator[Database]:
    """Create an empty database on the TLS server, owned by CERT_ROLE."""
    database = new_database(tls_server.cluster, owner=CERT_ROLE)
    try:
        yield database
    finally:
        tls_server.cluster.drop_database(database.name)


def history_table_exists(database: Database) -> bool:
    rows = database.query("SELECT pg_catalog.to_regclass('public.schema_migrations')")
    return rows[0][0] is not None


# --- TLS


@pytest.mark.parametrize(
    ("ssl_mode", "login_host", "verified"),
    [
        pytest.param("verify-full", "localhost", True, id="verify-full-localhost"),
        pytest.param("verify-full", "127.0.0.1", True, id="verify-full-ip"),
        pytest.param("require", "127.0.0.1", False, id="require"),
    ],
)
def test_tls_login_applies(
    tls_server: TlsServer, tls_database: Database, ssl_mode: str, login_host: str, verified: bool
) -> None:
    params = migrate_params(
        tls_database,
        SHIPPED_SQL,
        login_host=login_host,
        ssl_mode=ssl_mode,
        ca_cert=str(tls_server.authority.cert_file) if verified else None,
    )

    result = migrate(params)

    assert [entry["version"] for entry in result["applied"]] == ["1", "2", "3"]
    assert history_versions(tls_database) == ["1", "2", "3"]


@pytest.mark.parametrize("ssl_mode", ["verify-ca", "verify-full"])
def test_tls_unknown_authority_rejected(
    tls_server: TlsServer, tls_database: Database, ssl_mode: str
) -> None:
    params = migrate_params(
        tls_database,
        SHIPPED_SQL,
        login_host="localhost",
        ssl_mode=ssl_mode,
        ca_cert=str(tls_server.unrelated_authority.cert_file),
    )

    with pytest.raises(ConnectError) as raised:
        migrate(params)

    message = str(raised.value)
    assert message.startswith("Cannot connect to PostgreSQL: "), message
    assert "certificate verify failed" in message
    assert not history_table_exists(tls_database), "a rejected login created the history table"


def test_tls_plaintext_rejected_with_hint(tls_server: TlsServer, tls_database: Database) -> None:
    params = migrate_params(tls_database, SHIPPED_SQL, ssl_mode="disable")

    with pytest.raises(ConnectError) as raised:
        migrate(params)

    message = str(raised.value)
    assert (
        f'no pg_hba.conf entry for host "127.0.0.1", user "{tls_server.cluster.superuser}", '
        f'database "{tls_database.name}", no encryption'
    ) in message
    assert message.endswith(TLS_HINT), message
    assert params["login_password"] not in message
    # libpq reports no SQLSTATE for a failed login, so the server log supplies it.
    rejections = [
        line for line in server_log_lines(tls_server.cluster, tls_database.name) if "FATAL" in line
    ]
    assert len(rejections) == 1, rejections
    assert rejections[0].startswith("sqlstate=28000 "), rejections[0]
    assert not history_table_exists(tls_database)


def test_require_against_plaintext_server_fails(database: Database) -> None:
    params = migrate_params(database, SHIPPED_SQL, ssl_mode="require")

    with pytest.raises(ConnectError) as raised:
        migrate(params)

    assert "server does not support SSL, but SSL was required" in str(raised.value)
    assert not history_table_exists(database), "ssl_mode require fell back to plaintext"


def test_client_certificate_login_applies(
    tls_server: TlsServer, cert_role_database: Database
) -> None:
    params = migrate_params(
        cert_role_database,
        SHIPPED_SQL,
        login_host="localhost",
        login_user=CERT_ROLE,
        login_password=None,
        ssl_mode="verify-full",
        ca_cert=str(tls_server.authority.cert_file),
        ssl_cert=str(tls_server.client.cert_file),
        ssl_key=str(tls_server.client.key_file),
    )

    result = migrate(params)

    assert [entry["version"] for entry in result["applied"]] == ["1", "2", "3"]
    rows = history_rows(cert_role_database)
    assert [row["installed_by"] for row in rows] == [CERT_ROLE] * 3


def test_client_certificate_missing_rejected(
    tls_server: TlsServer, cert_role_database: Database
) -> None:
    params = migrate_params(
        cert_role_database,
        SHIPPED_SQL,
        login_host="localhost",
        login_user=CERT_ROLE,
        login_password=None,
        ssl_mode="verify-full",
        ca_cert=str(tls_server.authority.cert_file),
    )

    with pytest.raises(ConnectError) as raised:
        migrate(params)

    assert "connection requires a valid client certificate" in str(raised.value)
    assert not history_table_exists(cert_role_database)


# --- least privilege


@dataclass(frozen=True)
class OwnedDatabase:
    """A database owned by a login role that is no superuser."""

    database: Database
    role: str
    password: str

    def params(self, path: Path, **overrides: Any) -> dict[str, Any]:
        """Return module parameters that log in as the owner role."""
        return migrate_params(
            self.database, path, login_user=self.role, login_password=self.password, **overrides
        )


@pytest.fixture
def owned_database(pg_cluster: PgCluster) -> Iterator[OwnedDatabase]:
    """Create role app_owner_<hex> with LOGIN and a password, and a database it owns."""
    suffix = uuid.uuid4().hex[:10]
    role, password = f"app_owner_{suffix}", uuid.uuid4().hex
    pg_cluster.create_role(role, password)
    database = pg_cluster.create_database(f"owned_{suffix}", owner=role)
    try:
        yield OwnedDatabase(database, role, password)
    finally:
        pg_cluster.drop_database(database.name)
        pg_cluster.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# Relations and enum types of schema public with their owners.
OWNERS_QUERY = """
SELECT c.relname, pg_catalog.pg_get_userbyid(c.relowner)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
UNION ALL
SELECT t.typname, pg_catalog.pg_get_userbyid(t.typowner)
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype = 'e'
"""


def test_owner_role_deploys_shipped_sql(owned_database: OwnedDatabase) -> None:
    database, role = owned_database.database, owned_database.role
    superuser = database.query(
        "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s", [role]
    )
    assert superuser == [(False,)], f"{role} must not be a superuser"

    result = migrate(owned_database.params(SHIPPED_SQL))

    assert [entry["version"] for entry in result["applied"]] == ["1", "2", "3"]
    owners = dict(database.query(OWNERS_QUERY))
    expected = SHIPPED_TABLES | SHIPPED_VIEWS | SHIPPED_MATERIALIZED_VIEWS | {"schema_migrations"}
    assert expected <= set(owners), f"missing: {sorted(expected - set(owners))}"
    assert "TenantStatus" in owners, "the enum types are missing"
    others = {name: owner for name, owner in owners.items() if owner != role}
    assert others == {}, f"objects not owned by {role}"
    assert [row["installed_by"] for row in history_rows(database)] == [role] * 3


@dataclass(frozen=True)
class PrivilegedMigration:
    """A V4 that only a superuser can run, and the line of its privileged statement."""

    text: str
    line: int


# Each V4 starts with a CREATE TABLE of v4_marker, so a committed part of it would show.
EVENT_TRIGGER = PrivilegedMigration(
    text=(
        "CREATE TABLE v4_marker (command_tag text NOT NULL);\n"
        "\n"
        "CREATE FUNCTION v4_log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  INSERT INTO v4_marker VALUES (tg_tag);\n"
        "END;\n"
        "$$;\n"
        "\n"
        "CREATE EVENT TRIGGER v4_log_ddl ON ddl_command_end\n"
        "  EXECUTE FUNCTION v4_log_ddl();\n"
    ),
    line=9,
)
REPLICATION = PrivilegedMigration(
    text=(
        "CREATE TABLE v4_marker (id integer);\n"
        "-- Lets the owner stream changes to a replica.\n"
        "ALTER ROLE CURRENT_USER WITH REPLICATION;\n"
    ),
    line=3,
)
V4_SCRIPT = "V4__privileged.sql"
V5_SCRIPT = "V5__after_privileged.sql"


@dataclass(frozen=True)
class PrivilegedFailure:
    """The outcome of deploying V1..V3 with a privileged V4 and a V5 as the owner role."""

    owned: OwnedDatabase
    directory: Path
    migration: PrivilegedMigration
    error: ExecutionError


@pytest.fixture(
    params=[
        pytest.param(EVENT_TRIGGER, id="event-trigger"),
        pytest.param(REPLICATION, id="replication"),
    ]
)
def privileged_failure(
    request: pytest.FixtureRequest, owned_database: OwnedDatabase, tmp_path: Path
) -> PrivilegedFailure:
    migration: PrivilegedMigration = request.param
    directory = tmp_path / "sql"
    shutil.copytree(SHIPPED_SQL, directory)
    write_migrations(
        directory,
        {V4_SCRIPT: migration.text, V5_SCRIPT: "CREATE TABLE v5_marker (id integer);\n"},
    )
    with pytest.raises(ExecutionError) as raised:
        migrate(owned_database.params(directory))
    return PrivilegedFailure(owned_database, directory, migration, raised.value)


def test_privileged_migration_fails_with_42501(privileged_failure: PrivilegedFailure) -> None:
    error = privileged_failure.error
    line = privileged_failure.migration.line

    assert error.sqlstate == "42501"
    assert (error.version, error.script, error.line) == ("4", V4_SCRIPT, line)
    message = str(error)
    assert message.startswith(f"Migration V4 ({V4_SCRIPT}, line {line}) failed: "), message
    assert "(SQLSTATE 42501)." in message
    assert message.endswith(
        "Nothing from V4 was committed; V1, V2, V3, applied in this run, stay applied."
    ), message


def test_privileged_migration_commits_nothing(privileged_failure: PrivilegedFailure) -> None:
    owned = privileged_failure.owned
    database = owned.database

    assert history_versions(database) == ["1", "2", "3"]
    assert database.query("SELECT pg_catalog.to_regclass('v4_marker')") == [(None,)]
    assert database.query("SELECT pg_catalog.to_regclass('v5_marker')") == [(None,)]
    assert database.query("SELECT evtname FROM pg_catalog.pg_event_trigger") == []
    replication = database.query(
        "SELECT rolreplication FROM pg_catalog.pg_roles WHERE rolname = %s", [owned.role]
    )
    assert replication == [(False,)]


def test_privileged_migration_leaves_rest_pending(privileged_failure: PrivilegedFailure) -> None:
    owned = privileged_failure.owned
    plan_params = owned.params(privileged_failure.directory, check_strategy="plan")

    planned = api.migrate(plan_params, check_mode=True, diff=False, warn=lambda _: None)

    assert [(entry["version"], entry["verified"]) for entry in planned["applied"]] == [
        ("4", False),
        ("5", False),
    ]
    assert planned["current_version"] == "5"
    assert planned["msg"] == (
        "Check mode: would apply 2 migrations (V4, V5), planned only, no SQL executed; "
        "nothing was written."
    )
    with pytest.raises(ExecutionError) as in_check:
        api.migrate(
            owned.params(privileged_failure.directory),
            check_mode=True,
            diff=False,
            warn=lambda _: None,
        )
    assert in_check.value.sqlstate == "42501"
    assert str(in_check.value).endswith(CHECK_NOTHING_WRITTEN), str(in_check.value)
    assert history_versions(owned.database) == ["1", "2", "3"]
