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
