# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read migration files on the controller for an action plugin to pass to its module.

The module then needs no copy of the files on the managed host, and works the same when the
play delegates it or runs it on a remote host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.application_name import (
    default_application_name,
    job_application_name,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    TEMPLATE_SUFFIX,
    read_directories,
)


def with_migration_files(
    action: ActionBase,
    args: dict[str, Any],
    task_vars: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Return a copy of the module arguments with the files of ``path`` read into ``sources``.

    Each directory in ``path`` is found as ansible.builtin.copy finds its ``src``: in the
    role's ``files/`` directory, then next to the playbook. ``path`` leaves the arguments, so
    the module reads nothing on the managed host. Files ending in ``.sql.j2`` are rendered
    with the play's variables here, so checksums are taken over the rendered SQL. Raises
    AnsibleActionFail when ``sources`` is set too, a directory is missing, a file is invalid
    or a template fails to render. A directory without migration files is reported to
    ``warn``.
    """
    args = dict(args)
    if args.get("sources") is not None:
        raise AnsibleActionFail(
            "path and sources are mutually exclusive: set path to read migration files, "
            "or sources to give migrations inline."
        )
    paths = args.pop("path")
    if isinstance(paths, str):
        paths = [paths]
    # A directory listed twice is read once, rather than reported as duplicate versions.
    directories = list(dict.fromkeys(_find_directory(action, str(path)) for path in paths))
    try:
        files = read_directories(directories, warn)
    except MigrationError as error:
        raise AnsibleActionFail(str(error)) from None
    args["sources"] = [
        {"script": script, "content": _render(action, script, text, task_vars)}
        for script, text in files
    ]
    return args


def _find_directory(action: ActionBase, path: str) -> str:
    """Return the directory that ``path`` names, found as ansible.builtin.copy finds its src.

    Raises AnsibleActionFail when nothing is found or the path is not a directory.
    """
    try:
        found = action._find_needle("files", path)
    except AnsibleError:
        raise AnsibleActionFail(
            f"Migration directory {path!r} not found: a relative path is looked up in the "
            "role's files/ directory, then next to the playbook."
        ) from None
    if not os.path.isdir(found):
        raise AnsibleActionFail(
            f"Migration path {found!r} is a file, not a directory: set path to the directory "
            "that contains the migration files."
        )
    return found


def _render(action: ActionBase, script: str, text: str, task_vars: dict[str, Any] | None) -> str:
    """Render a ``.sql.j2`` migration with the play's variables; return other files as read."""
    if not script.endswith(TEMPLATE_SUFFIX):
        return text
    templar = action._templar.copy_with_new_env(available_variables=task_vars or {})
    try:
        rendered = templar.template(trust_as_template(text))
    except AnsibleError as error:
        raise AnsibleActionFail(
            f"Template migration {script} failed to render: {error.message}"
        ) from None
    # A template whose blocks all evaluate to false renders to None: an empty migration.
    return "" if rendered is None else str(rendered)


def with_awx_job(
    args: dict[str, Any], task_vars: dict[str, Any] | None, module: str
) -> dict[str, Any]:
    """Return a copy of the module arguments whose ``application_name`` names the AWX job,
    when AWX set the ``awx_job_id`` or ``tower_job_id`` variable."""
    args = dict(args)
    job_id = (task_vars or {}).get("awx_job_id") or (task_vars or {}).get("tower_job_id")
    if job_id:
        name = args.get("application_name") or default_application_name(module)
        args["application_name"] = job_application_name(name, str(job_id))
    return args


# Options that name versions. YAML reads an unquoted 1.10 as the number 1.1, which would name
# another version, so a number with a fraction is rejected instead of converted.
VERSION_OPTIONS = ("target", "baseline_version")


def reject_fractional_versions(args: dict[str, Any]) -> None:
    """Raise AnsibleActionFail when a version option, or an entry of ``accept_checksums``, is
    a floating-point number rather than a string."""
    named = [(name, args.get(name)) for name in VERSION_OPTIONS]
    named += [("accept_checksums", entry) for entry in args.get("accept_checksums") or []]
    for name, value in named:
        if isinstance(value, float):
            raise AnsibleActionFail(
                f"{name} is the number {value!r}, but versions are text: YAML reads an unquoted "
                "1.10 as 1.1. Quote the version, for example target: '1.10'."
            )


def without_source_text(result: dict[str, Any]) -> dict[str, Any]:
    """Return the module result with the SQL in ``invocation.module_args.sources`` replaced by
    its length.

    Ansible prints the invocation at verbosity 3 and above. The SQL may carry secrets, which
    hide_sql_in_diff keeps out of the diff, and at a thousand files it runs to megabytes.
    """
    module_args = (result.get("invocation") or {}).get("module_args") or {}
    sources = module_args.get("sources")
    if not isinstance(sources, list):
        return result
    shortened = [
        dict(source, content=f"({len(str(source.get('content', '')))} characters not shown)")
        for source in sources
        if isinstance(source, dict)
    ]
    invocation = dict(result["invocation"], module_args=dict(module_args, sources=shortened))
    return dict(result, invocation=invocation)
