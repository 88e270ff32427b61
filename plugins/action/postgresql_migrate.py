# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read migration files where the playbook runs and pass their text to the module."""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    read_directories,
)

MODULE = "dbops.migrations.postgresql_migrate"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        paths = args.get("path")
        if not paths:
            return dict(result, failed=True, msg="path is required: a directory of migrations.")
        if isinstance(paths, str):
            paths = [paths]
        try:
            directories = [self._find_needle("files", str(path)) for path in paths]
            files = read_directories(directories)
        except AnsibleError as error:
            return dict(result, failed=True, msg=f"Migration directory not found: {error.message}")
        except MigrationError as error:
            return dict(result, failed=True, msg=str(error))
        args["path"] = directories
        job_id = (task_vars or {}).get("awx_job_id") or (task_vars or {}).get("tower_job_id")
        if job_id:
            args["_job_id"] = str(job_id)
        args["_sources"] = [{"script": script, "content": text} for script, text in files]
        result.update(
            self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        )
        return result
