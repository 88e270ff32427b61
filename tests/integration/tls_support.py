"""Helpers for the TLS tests: a throwaway certificate authority and a TLS-only server.

Certificates use P-256 keys and are valid for one day. PgCluster cannot take a custom
pg_hba.conf, so ``require_hostssl`` rewrites the file after the server started and reloads it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgcluster import PgCluster

# Server log lines start with the SQLSTATE, role and database of the session that logged
# them, so a test can find the line of its own rejected connection.
LOG_LINE_PREFIX = "sqlstate=%e user=%u db=%d "


@dataclass(frozen=True)
class Authority:
    """A self-signed certificate authority: its certificate, key and PEM file."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1)
    )


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` unencrypted, created with mode 0600 as libpq and the server require."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as output:
        output.write(pem)


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def create_authority(directory: Path, common_name: str) -> Authority:
    """Create a self-signed CA and write its certificate to ``directory/<common_name>.crt``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    certificate = _validity(builder).sign(key, hashes.SHA256())
    cert_file = directory / f"{common_name}.crt"
    _write_certificate(cert_file, certificate)
    return Authority(certificate, key, cert_file)


def issue_certificate(
    authority: Authority,
    directory: Path,
    common_name: str,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    client: bool = False,
) -> KeyPair:
    """Issue a server (or, with ``client``, a client) certificate signed by ``authority``.

    Writes ``<common_name>.crt`` and ``<common_name>.key`` into ``directory``. For a client
    certificate that PostgreSQL's ``cert`` method accepts, ``common_name`` is the role name.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative_names), critical=False
        )
    certificate = _validity(builder).sign(authority.key, hashes.SHA256())
    pair = KeyPair(directory / f"{common_name}.crt", directory / f"{common_name}.key")
    _write_certificate(pair.cert_file, certificate)
    _write_private_key(pair.key_file, key)
    return pair


def give_to_os_user(paths: Sequence[Path], os_user: str | None) -> None:
    """Give ``paths`` to the account that runs the server, unless that is the current user."""
    if os_user is None:
        return
    account = pwd.getpwnam(os_user)
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)


def tls_settings(server: KeyPair, authority: Authority) -> dict[str, str]:
    """Return postgresql.conf settings that turn TLS on and set LOG_LINE_PREFIX.

    The server trusts client certificates that ``authority`` signed.
    """
    return {
        "ssl": "on",
        "ssl_cert_file": str(server.cert_file),
        "ssl_key_file": str(server.key_file),
        "ssl_ca_file": str(authority.cert_file),
        "log_line_prefix": LOG_LINE_PREFIX,
    }


def hostssl_rules(cert_roles: Sequence[str]) -> str:
    """Return a pg_hba.conf that accepts TCP connections from 127.0.0.1 only over TLS.

    Roles in ``cert_roles`` log in with a client certificate whose CN is the role name,
    every other role with a SCRAM-SHA-256 password. Logins over the Unix socket stay trusted.
    """
    lines = ["local all all trust"]
    lines += [f"hostssl all {role} 127.0.0.1/32 cert" for role in cert_roles]
    lines.append("hostssl all all 127.0.0.1/32 scram-sha-256")
    return "\n".join(lines) + "\n"


def require_hostssl(cluster: PgCluster, cert_roles: Sequence[str] = ()) -> None:
    """Replace the server's pg_hba.conf with ``hostssl_rules`` and wait until it applies.

    pg_reload_conf() only signals the postmaster, so this waits until a plaintext login is
    rejected before returning. Raises AssertionError if that does not happen within 30 s.
    """
    (cluster.data_dir / "pg_hba.conf").write_text(hostssl_rules(cert_roles), encoding="utf-8")
    cluster.execute("SELECT pg_catalog.pg_reload_conf()")
    deadline = time.monotonic() + 30.0
    while plaintext_login_accepted(cluster):
        if time.monotonic() > deadline:
            raise AssertionError("the server still accepts plaintext logins after a reload")
        time.sleep(0.05)


def plaintext_login_accepted(cluster: PgCluster) -> bool:
    """Return whether the superuser can log in over TCP without TLS."""
    try:
        psycopg2.connect(cluster.dsn("postgres"), sslmode="disable", connect_timeout=10).close()
    except psycopg2.OperationalError as error:
        if "no pg_hba.conf entry" not in str(error):
            raise
        return False
    return True


def server_log_lines(cluster: PgCluster, database: str) -> list[str]:
    """Return the lines of the server log that sessions on ``database`` wrote."""
    text = cluster.log_file.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if f" db={database} " in line]
