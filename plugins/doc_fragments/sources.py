# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sources option of the modules that read migration files."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  sources:
    description:
      - Migrations given as text instead of files, each with the file name that O(path) would
        have found and the SQL.
      - The action plugin sets this option from O(path), with the files read and the templates
        rendered where the playbook runs, and then leaves O(path) out, so the module reads no
        file on the host that runs it.
      - A task may set it to give its migrations inline, for example SQL generated earlier in
        the play. Ansible has already templated the task's arguments, so the action plugin does
        not render them again.
      - Mutually exclusive with O(path).
    type: list
    elements: dict
    suboptions:
      script:
        description:
          - File name of the migration, which follows the same naming rules as a file under
            O(path), for example C(V4__add_index.sql) or C(views/R__reports.sql). Results and
            messages name the migration by it.
        type: str
        required: true
      content:
        description:
          - The migration's SQL.
        type: str
        required: true
"""
