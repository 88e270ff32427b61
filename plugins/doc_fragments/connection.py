# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - When unset, libpq uses E(PGHOST), then a local Unix socket.
    type: str
    aliases: [host]
  login_port:
    description:
      - TCP port of the server. When unset, libpq uses E(PGPORT), then 5432.
    type: int
    aliases: [port]
  login_user:
    description:
      - Role to log in as. When unset, libpq uses E(PGUSER), then the operating system user.
    type: str
    aliases: [login]
  login_password:
    description:
      - Password of O(login_user). When unset, libpq uses E(PGPASSWORD) or E(PGPASSFILE).
    type: str
  login_db:
    description:
      - Database to connect to. When unset, libpq uses E(PGDATABASE), then the user name.
    type: str
    aliases: [db]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket; takes the place of O(login_host).
    type: str
  ssl_mode:
    description:
      - How the connection uses TLS, as libpq's C(sslmode). When unset, libpq uses
        E(PGSSLMODE), then V(prefer).
      - V(verify-full) with O(ca_cert) checks the server certificate and host name, which is
        what a managed service such as Amazon RDS should get.
    type: str
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of the certificate authorities that signed the server certificate
        (libpq's C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  ssl_cert:
    description:
      - Client certificate file (libpq's C(sslcert)).
    type: path
  ssl_key:
    description:
      - Private key file of O(ssl_cert) (libpq's C(sslkey)).
    type: path
  connect_params:
    description:
      - Further libpq connection parameters, such as C(connect_timeout) or C(options).
      - They override the options above.
      - The values of C(password) and C(sslpassword) are masked in the task's output, as the
        value of O(login_password) is.
    type: dict
    default: {}
  application_name:
    description:
      - The C(application_name) that identifies the session in C(pg_stat_activity), and, for
        M(dbops.migrations.postgresql_migrate), in the messages of other runs waiting for the
        migration lock.
      - Defaults to C(dbops.migrations) followed by the module's name, and by the AWX job id
        when the job runs in AWX.
    type: str
  session_role:
    description:
      - Role to switch to with C(SET ROLE) right after connecting. Objects that migrations
        create belong to this role.
    type: str
requirements:
  - Python 3.11 or later on the host that runs the module
  - psycopg2 on the host that runs the module
"""
