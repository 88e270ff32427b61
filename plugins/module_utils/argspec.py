# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the options documented in the ``connection`` and ``sources`` doc
fragments."""

from __future__ import annotations


def connection_argument_spec():
    return dict(
        login_host=dict(type="str", aliases=["host"]),
        login_port=dict(type="int", aliases=["port"]),
        login_user=dict(type="str", aliases=["login"]),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str", aliases=["db"]),
        login_unix_socket=dict(type="str"),
        ssl_mode=dict(
            type="str",
            choices=["allow", "disable", "prefer", "require", "verify-ca", "verify-full"],
        ),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        ssl_cert=dict(type="path"),
        ssl_key=dict(type="path"),
        connect_params=dict(type="dict", default={}),
        session_role=dict(type="str"),
        application_name=dict(type="str"),
    )


def sources_argument_spec():
    return dict(
        sources=dict(
            type="list",
            elements="dict",
            no_log=False,
            options=dict(
                script=dict(type="str", required=True),
                content=dict(type="str", required=True),
            ),
        ),
    )


# libpq connection parameters whose values are secrets. login_password is no_log already;
# these can arrive through connect_params instead.
SECRET_CONNECT_PARAMS = ("password", "sslpassword")


def hide_secret_connect_params(module):
    """Add the secret values of ``connect_params`` to the module's no_log values, so that
    Ansible masks them in the result and in the invocation it prints at high verbosity."""
    connect_params = module.params.get("connect_params") or {}
    for name in SECRET_CONNECT_PARAMS:
        value = connect_params.get(name)
        if value:
            module.no_log_values.add(str(value))
