# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read migration files on the controller for an action plugin to pass to its module.

The module then needs no copy of the files on the managed host, and works the same when the
play delegates it or runs it on a remote host.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    read_directories,
)


def with_migration_files(action: ActionBase, args: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the module arguments with the files of ``path`` read into ``_sources``.

    Each directory in ``path`` is found as ansible.builtin.copy finds its ``src``: in the
    role's ``files/`` directory, then next to the playbook, and ``path`` is replaced by the
    directories found. Raises AnsibleActionFail when a directory is missing or a file is
    invalid.
    """
    args = dict(args)
    paths = args["path"]
    if isinstance(paths, str):
        paths = [paths]
    try:
        directories = [action._find_needle("files", str(path)) for path in paths]
        files = read_directories(directories)
    except AnsibleError as error:
        raise AnsibleActionFail(f"Migration directory not found: {error.message}") from None
    except MigrationError as error:
        raise AnsibleActionFail(str(error)) from None
    args["path"] = directories
    args["_sources"] = [{"script": script, "content": text} for script, text in files]
    return args


def with_job_id(args: dict[str, Any], task_vars: dict[str, Any] | None) -> dict[str, Any]:
    """Return a copy of the module arguments with ``_job_id`` set from the ``awx_job_id`` or
    ``tower_job_id`` variable, when AWX set one, so that application_name names the job."""
    args = dict(args)
    job_id = (task_vars or {}).get("awx_job_id") or (task_vars or {}).get("tower_job_id")
    if job_id:
        args["_job_id"] = str(job_id)
    return args
