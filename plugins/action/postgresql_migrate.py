# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read migration files where the playbook runs, render templates, and pass the text to the
module in its sources option."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.dbops.migrations.plugins.plugin_utils.migration_files import (
    reject_fractional_versions,
    with_awx_job,
    with_migration_files,
    without_source_text,
)

MODULE = "dbops.migrations.postgresql_migrate"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        warnings: list[str] = []
        args = with_awx_job(self._task.args, task_vars, "postgresql_migrate")
        if args.get("sources") == [] and not args.get("path"):
            return dict(
                result,
                failed=True,
                msg="sources is an empty list: give at least one migration, or set path.",
            )
        try:
            reject_fractional_versions(args)
            if args.get("path"):
                args = with_migration_files(self, args, task_vars, warnings.append)
        except AnsibleActionFail as error:
            return dict(result, failed=True, msg=error.message)
        if args.get("sources") is None:
            return dict(
                result,
                failed=True,
                msg="path is required: a directory of migrations, or sources with their text.",
            )
        module_result = self._execute_module(
            module_name=MODULE, module_args=args, task_vars=task_vars
        )
        result.update(without_source_text(module_result))
        if warnings:
            result["warnings"] = warnings + list(result.get("warnings") or [])
        return result
