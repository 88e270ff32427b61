#!/usr/bin/python
# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_migration_info
short_description: Report the migration status and schema objects of a PostgreSQL database
description:
  - Reads the history table that M(dbops.migrations.postgresql_migrate) writes and returns the
    applied and failed migrations and the current version.
  - With O(path), also compares the migration files with the history and returns the pending
    migrations and the applied ones whose file changed or is gone.
  - Returns an inventory of the tables, views, materialized views, enum types, indexes and
    foreign keys of each schema in O(schemas), for verifying a deploy.
  - Only reads. The session is read-only, and every query runs in one C(REPEATABLE READ)
    transaction, so the history and the inventory describe the same moment.
  - An action plugin reads the migration files where the playbook runs, as for
    M(dbops.migrations.postgresql_migrate).
version_added: 0.1.0
author: dbops.migrations contributors (!UNKNOWN)
extends_documentation_fragment:
  - dbops.migrations.connection
  - dbops.migrations.sources
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.flow
options:
  path:
    description:
      - Directory, or list of directories, searched recursively for C(*.sql) and
        C(*.sql.j2) migration files to compare with the history table. Templates are
        rendered with the play's variables, as M(dbops.migrations.postgresql_migrate) renders
        them.
      - Relative paths are found as M(dbops.migrations.postgresql_migrate) finds them, in the
        role's C(files/) directory, then next to the playbook.
      - Without it or O(sources), RV(pending) and RV(drifted) are empty lists.
    type: list
    elements: path
  history_schema:
    description:
      - Schema of the history table.
    type: str
    default: public
  history_table:
    description:
      - Name of the history table. A missing table is not an error; RV(history_table_exists)
        is then false.
    type: str
    default: schema_migrations
  schemas:
    description:
      - Schemas whose objects RV(objects) lists.
    type: list
    elements: str
    default: [public]
attributes:
  check_mode:
    support: full
    details:
      - The module never writes, so check mode returns the same result as a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - dbops.migrations.postgresql
  action:
    support: full
    details:
      - With O(path), the action plugin reads the migration files where the playbook runs.
  async:
    support: none
    details:
      - The action plugin runs the module synchronously; a task with C(async) fails.
  bypass_host_loop:
    support: none
notes:
  - RV(objects) lists the history table among the tables of its schema.
  - A pending versioned migration older than RV(current_version) is listed in RV(pending),
    although M(dbops.migrations.postgresql_migrate) rejects it unless
    O(dbops.migrations.postgresql_migrate#module:allow_out_of_order) is set.
seealso:
  - module: dbops.migrations.postgresql_migrate
  - module: dbops.migrations.postgresql_matview_refresh
"""

EXAMPLES = r"""
- name: Read the migration status, comparing the files shipped next to the playbook
  dbops.migrations.postgresql_migration_info:
    path: files/sql
    login_db: tracking_hub
  register: migration_info

- name: Stop when the database does not match the files
  ansible.builtin.assert:
    that:
      - migration_info.drifted | length == 0
      - migration_info.failed | length == 0
    fail_msg: "Drifted: {{ migration_info.drifted }}; failed: {{ migration_info.failed }}"

- name: List the objects of two schemas, with the connection taken from PGHOST and the rest
  dbops.migrations.postgresql_migration_info:
    schemas:
      - public
      - reporting
  register: schema_inventory

- name: Show the number of tables in schema public
  ansible.builtin.debug:
    msg: "{{ schema_inventory.objects.public.counts.tables }} tables"

# The status of several databases, one per host of the inventory group databases, whose
# host variables login_host and login_db name the server and the database.
- name: Report the migration status of every database
  hosts: databases
  connection: local
  gather_facts: false
  module_defaults:
    group/dbops.migrations.postgresql:
      login_host: "{{ login_host }}"
      login_db: "{{ login_db }}"
  tasks:
    - name: Read the status against the files shipped next to the playbook
      dbops.migrations.postgresql_migration_info:
        path: files/sql
        schemas: []
      register: status

    - name: Show each database's version and what is pending
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }}: {{ status.msg }}"
"""

RETURN = r"""
applied:
  description:
    - Successful rows of the history table whose migration is still applied, in the order they
      were applied. A versioned migration that an undo script reverted later is left out, and
      so are the C(UNDO_SQL) rows of the undo scripts.
    - RV(applied[].type) is the history table's C(type) column, V(SQL), V(SQL_NO_TRANSACTION),
      V(SQL_REPEATABLE) or V(BASELINE).
  returned: always
  type: list
  elements: dict
  contains:
    installed_rank:
      description: Number of the row in the history table, in the order rows were written.
      type: int
      sample: 1
    version:
      description: Version of a versioned migration; null for a repeatable one.
      type: str
      sample: "1"
    description:
      description: Description from the file name, with underscores as spaces.
      type: str
      sample: initial schema
    type:
      description: The history table's C(type) column.
      type: str
      sample: SQL
    script:
      description: Path of the file as recorded when it was applied.
      type: str
      sample: schema/V1__initial_schema.sql
    checksum:
      description: Checksum of the file recorded when it was applied.
      type: str
      sample: 5b0a6c0d1b2f4f0b8e8f6cbb1a1d2e3f4a5b6c7d8e9f00112233445566778899
    installed_by:
      description: Database role that applied the migration.
      type: str
      sample: app_owner
    installed_at:
      description: When the migration was applied, in ISO 8601 with its UTC offset.
      type: str
      sample: "2026-03-02T09:14:07.512031+00:00"
    execution_time_ms:
      description: Milliseconds the migration took to run.
      type: int
      sample: 84
  sample:
    - installed_rank: 1
      version: "1"
      description: initial schema
      type: SQL
      script: schema/V1__initial_schema.sql
      checksum: 5b0a6c0d1b2f4f0b8e8f6cbb1a1d2e3f4a5b6c7d8e9f00112233445566778899
      installed_by: app_owner
      installed_at: "2026-03-02T09:14:07.512031+00:00"
      execution_time_ms: 84
failed_migrations:
  description:
    - Rows recorded as failed, with the keys of RV(applied). The key is not C(failed),
      which Ansible reserves for the task's own outcome. Until they are resolved with
      O(dbops.migrations.postgresql_migrate#module:resolve_failed), every run of
      M(dbops.migrations.postgresql_migrate) stops before applying anything.
  returned: always
  type: list
  elements: dict
  sample: []
pending:
  description:
    - Migration files a run would apply, in the order it applies them. Empty without O(path).
    - A versioned file is pending when its version is not in RV(applied), including one whose
      earlier attempt is in RV(failed_migrations) or that an undo script reverted. A repeatable
      file is pending when its checksum differs from its latest successful row. Undo scripts
      (C(U<version>__<description>.sql)) are never pending.
    - RV(pending[].type) is V(versioned) or V(repeatable).
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Version of a versioned migration; null for a repeatable one.
      type: str
      sample: "3"
    description:
      description: Description from the file name, with underscores as spaces.
      type: str
      sample: materialized views
    type:
      description: V(versioned) or V(repeatable).
      type: str
      sample: versioned
    script:
      description: Path of the file, relative to the directory of O(path) it was found in.
      type: str
      sample: matviews/V3__materialized_views.sql
    checksum:
      description: Checksum of the file as it is now.
      type: str
      sample: 0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091
  sample:
    - version: "3"
      description: materialized views
      type: versioned
      script: matviews/V3__materialized_views.sql
      checksum: 0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091
drifted:
  description:
    - Applied versioned migrations whose file no longer matches the history, by version.
      Empty without O(path).
    - RV(drifted[].problem) is V(checksum_changed), with both checksums, or V(file_missing),
      with RV(drifted[].file_checksum) null and the script name from the history.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Version of the applied migration.
      type: str
      sample: "2"
    script:
      description: Path of the file now, or as recorded in the history when the file is gone.
      type: str
      sample: views/V2__analytics_views.sql
    problem:
      description: V(checksum_changed) or V(file_missing).
      type: str
      sample: checksum_changed
    history_checksum:
      description: Checksum recorded when the migration was applied.
      type: str
      sample: 9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100
    file_checksum:
      description: Checksum of the file as it is now; null when the file is gone.
      type: str
      sample: 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809
  sample:
    - version: "2"
      script: views/V2__analytics_views.sql
      problem: checksum_changed
      history_checksum: 9f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100
      file_checksum: 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809
current_version:
  description: Highest version in RV(applied), or null when none is applied.
  returned: always
  type: str
  sample: "3"
history_table:
  description: Qualified name of the history table.
  returned: always
  type: str
  sample: public.schema_migrations
history_table_exists:
  description:
    - Whether the history table exists. When false, RV(applied) and RV(failed_migrations) are
      empty.
  returned: always
  type: bool
  sample: true
objects:
  description:
    - For each schema in O(schemas), its objects. Each list is sorted by name.
    - C(exists) is false for a schema that does not exist, whose lists are then empty.
    - C(tables) lists ordinary and partitioned tables; C(views) plain views; and
      C(materialized_views) each view's C(name) and whether it is C(populated).
    - C(types) lists enum types with their C(labels) in sort order.
    - C(indexes) lists indexes on tables and materialized views, with the C(table) they
      belong to and whether they are C(unique), C(valid) (false after a failed
      C(CREATE INDEX CONCURRENTLY)) and C(primary).
    - C(foreign_keys) lists each constraint's C(name), C(table), C(columns), and the
      C(referenced_schema), C(referenced_table) and C(referenced_columns) in the same order.
    - C(counts) gives the length of each list.
  returned: always
  type: dict
  sample:
    public:
      exists: true
      tables: [Checkout, Click, Conversion, schema_migrations]
      views: [v_match_rate_by_tenant_aggregated]
      materialized_views:
        - name: v_dispatch_summary
          populated: true
      types:
        - name: DispatchStatus
          labels: [pending, success, failed]
      indexes:
        - name: Checkout_pkey
          table: Checkout
          unique: true
          valid: true
          primary: true
      foreign_keys:
        - name: Checkout_tenantId_fkey
          table: Checkout
          columns: [tenantId]
          referenced_schema: public
          referenced_table: Tenant
          referenced_columns: [id]
      counts:
        tables: 4
        views: 1
        materialized_views: 1
        types: 1
        indexes: 1
        foreign_keys: 1
msg:
  description: One line with the current version and the length of each list.
  returned: always
  type: str
  sample: "The database is at version 3: 3 applied, 0 failed, 0 pending, 0 drifted."
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.connection import (
    HAS_PSYCOPG2,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    MigrationError,
)
from ansible_collections.dbops.migrations.plugins.module_utils.argspec import (
    connection_argument_spec,
    hide_secret_connect_params,
    sources_argument_spec,
)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(sources_argument_spec())
    spec.update(
        path=dict(type="list", elements="path"),
        history_schema=dict(type="str", default="public"),
        history_table=dict(type="str", default="schema_migrations"),
        schemas=dict(type="list", elements="str", default=["public"]),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("path", "sources")],
        supports_check_mode=True,
    )
    hide_secret_connect_params(module)
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"))
    from ansible_collections.dbops.migrations.plugins.module_utils._migrations.info_api import (
        migration_info,
    )

    try:
        result = migration_info(module.params)
    except MigrationError as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
