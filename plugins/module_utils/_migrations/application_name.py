# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The application_name that identifies a run in pg_stat_activity and in lock messages."""

from __future__ import annotations

import os

# PostgreSQL truncates application_name to NAMEDATALEN - 1 bytes.
MAX_LENGTH = 63


def default_application_name(module: str) -> str:
    """Return the name used when the task sets none: the collection and the module."""
    return f"dbops.migrations {module}"


def job_application_name(name: str, job_id: str) -> str:
    """Return ``name`` followed by the AWX job id, unless it already ends with it."""
    suffix = f" awx job {job_id}"
    return name if name.endswith(suffix) else name + suffix


def application_name(requested: str | None, module: str) -> str:
    """Return the application_name for a run of ``module``.

    ``requested`` is the task's option, which the action plugins extend with the AWX job id
    from the play's variables. AWX also sets ``JOB_ID`` in the environment of the job, which
    covers modules without an action plugin.
    """
    name = requested or default_application_name(module)
    job_id = os.environ.get("JOB_ID")
    if job_id:
        name = job_application_name(name, job_id)
    return name[:MAX_LENGTH]
