#!/usr/bin/python
# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_migrate
short_description: Apply versioned SQL migrations to a PostgreSQL database
description:
  - Applies the pending migrations from one or more directories, each in its own transaction
    together with its row in a history table, so a migration is applied exactly once and a
    failed one leaves nothing behind.
  - Migration files are named C(V<version>__<description>.sql), applied once in version order
    (versions compare numerically by dotted parts, so V(1.10) comes after V(1.9)), and
    C(R__<description>.sql), re-applied after the versioned ones whenever their checksum changes.
  - Runs hold a PostgreSQL advisory lock keyed on the history table, so concurrent runs against
    one database apply each migration once.
  - An action plugin reads the migration files where the playbook runs and passes their text to
    the module, so the files never need copying to the managed host.
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
      - Directory, or list of directories, searched recursively for C(*.sql) and C(*.sql.j2)
        migration files.
      - A C(.sql.j2) file is a template, rendered with the play's variables where the playbook
        runs, before its checksum is taken. The checksum is therefore that of the rendered SQL,
        so a variable that later changes the rendered text makes the applied migration look
        edited, and the run stops as it does for any changed file.
      - Relative paths are found as M(ansible.builtin.copy) finds its
        O(ansible.builtin.copy#module:src), in the role's C(files/) directory, then next to the
        playbook.
      - A file is named in results and messages by its path relative to the directory it was
        found in, for example C(views/V2__analytics_views.sql).
      - Required unless O(sources) is set, and mutually exclusive with it.
    type: list
    elements: path
  history_schema:
    description:
      - Schema of the history table. It is created when missing.
    type: str
    default: public
  history_table:
    description:
      - Name of the history table. It is created when missing.
    type: str
    default: schema_migrations
  target:
    description:
      - Apply versioned migrations up to and including this version, and no further.
      - A target below the current version runs the undo scripts
        (C(U<version>__<description>.sql)) of every applied version above it, newest first,
        each in a transaction with a C(UNDO_SQL) history row. A missing undo script stops
        the run before anything executes, naming every version that lacks one.
      - Quote a dotted version in YAML, writing V('1.10') for version 1.10. Unquoted, YAML
        reads it as the number 1.1, and the task fails rather than pick another version.
    type: str
  lock_timeout:
    description:
      - PostgreSQL C(lock_timeout) for each migration, as an interval such as V(5s) or V(500ms).
      - A migration that waits longer for a table lock fails with SQLSTATE 55P03 instead of
        queueing every later query on that table behind it.
    type: str
    default: 5s
  statement_timeout:
    description:
      - PostgreSQL C(statement_timeout) for each migration statement. V(0) means no limit.
      - It is set for every migration, so a C(statement_timeout) configured on the role or the
        database does not cancel a long migration.
    type: str
    default: '0'
  lock_wait_timeout:
    description:
      - Seconds to wait for the migration lock held by another run before failing.
    type: int
    default: 300
  lock_retries:
    description:
      - How many times to retry a migration that failed because O(lock_timeout) expired
        (SQLSTATE 55P03). The migration rolls back before each retry, and each retry is a
        warning naming the sessions that held the lock.
      - In a migration marked C(-- dbops:no-transaction), only the statement that timed out
        is retried.
      - Check mode does not retry.
    type: int
    default: 3
  lock_retry_delay:
    description:
      - Seconds to wait before the first retry after a lock timeout; the wait doubles with
        each further retry.
    type: float
    default: 2
  baseline_version:
    description:
      - Adopt a database that was migrated by hand, such as through a console. Every
        versioned migration up to and including this version is recorded as applied, with
        type C(BASELINE), without running its SQL; later versions are applied as usual.
      - Applies only while the history table records no versioned migration. Once the
        baseline is recorded the option has no further effect, so it can stay in the play.
      - A version above the newest versioned file is rejected before anything is recorded,
        because a file added later up to that version could never be applied.
    type: str
  baseline_verify:
    description:
      - Before recording a baseline, check that every table, view, materialized view,
        index, type, sequence and schema that the baselined migrations create exists, and
        fail naming the missing ones, so a half-migrated database is refused.
    type: bool
    default: false
  allow_out_of_order:
    description:
      - Apply a pending migration whose version is below the current version, as when a
        branch merged late, instead of failing. Each such migration is reported as a warning.
    type: bool
    default: false
  ignore_missing_files:
    description:
      - Ignore applied migrations whose files are gone, instead of failing. Each is reported
        as a warning.
    type: bool
    default: false
  accept_checksums:
    description:
      - Versions of applied migrations whose changed files are accepted as they are now. The
        history records the new checksum; no SQL runs. Each is reported as a warning.
      - Use it after a harmless edit, such as a comment, to an applied migration.
    type: list
    elements: str
    default: []
  safety_lint:
    description:
      - Before anything runs, check every pending migration for statements that lock or
        rewrite existing tables, such as C(CREATE INDEX) without C(CONCURRENTLY) on a table
        with rows, C(ADD COLUMN ... NOT NULL) without a default, or a foreign key without
        C(NOT VALID). The rules read the catalog and know the server's version.
      - V(warn) reports each finding as a warning and in RV(lint); V(fail) fails the task
        before anything runs; V(off) skips the check.
      - A comment line C(-- dbops:lint-ignore <rule> <reason>) directly before a statement
        silences one rule for that statement.
    type: str
    choices: [warn, fail, "off"]
    default: warn
  lint_large_table_rows:
    description:
      - Estimated row count (C(pg_class.reltuples)) from which the safety lint counts a table
        as large, for rules such as C(SET NOT NULL) that scan the whole table.
    type: int
    default: 100000
  check_strategy:
    description:
      - What check mode does with pending migrations.
      - V(execute) runs every pending migration that can run in a transaction block inside one
        transaction that is always rolled back, so check mode fails where the real run would,
        against the real data. It takes the same locks as the real run, for at most O(lock_timeout)
        per wait.
      - V(plan) only reads the history and compares it with the files. It executes no migration
        SQL, so it cannot catch a migration that would fail on the server.
    type: str
    choices: [execute, plan]
    default: execute
  resolve_failed:
    description:
      - What to do with a migration recorded as failed. Only a migration marked
        C(-- dbops:no-transaction) can be recorded so, because its statements commit one by
        one and a failure part-way leaves the earlier ones in place. Until it is resolved,
        every run stops before applying anything.
      - V(retry) deletes the failed record, so the migration runs again from its first
        statement. Use it when the statements are safe to repeat, for example
        C(CREATE INDEX CONCURRENTLY IF NOT EXISTS) after dropping an invalid index.
      - V(mark_applied) records the migration as applied, with the current file's checksum,
        without running it. Use it after finishing the migration by hand.
      - Each use is reported as a warning.
    type: str
    choices: [retry, mark_applied]
  hide_sql_in_diff:
    description:
      - Leave the SQL of pending migrations out of the diff, for migrations that carry secrets.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details:
      - With O(check_strategy=execute), pending migrations run inside a transaction that is
        always rolled back. Nothing is written, not even the history table.
  diff_mode:
    support: full
    details:
      - Shows the applied versions before and after, and the SQL of each pending migration
        unless O(hide_sql_in_diff) is set.
      - In check mode with O(check_strategy=execute), also shows the changes to tables, views,
        indexes, constraints and types that the pending migrations make, read from the
        catalog before the rollback.
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - dbops.migrations.postgresql
  action:
    support: full
    details:
      - The action plugin reads the migration files, and renders C(.sql.j2) templates, where
        the playbook runs.
  async:
    support: none
    details:
      - The action plugin runs the module synchronously; a task with C(async) fails.
  bypass_host_loop:
    support: none
notes:
  - Statements that PostgreSQL refuses inside a transaction block, such as
    C(CREATE INDEX CONCURRENTLY), need the line C(-- dbops:no-transaction) in their file. Such a
    file runs statement by statement outside a transaction; check mode does not execute it.
  - Check mode does not execute a migration that calls C(setval()) on a sequence that existed
    before the check, because a rollback does not restore a sequence. Inserts in check mode
    still advance sequences, which leaves gaps.
  - psql meta-commands such as C(\set) or C(\connect), and top-level C(BEGIN) or C(COMMIT), are
    rejected before anything runs.
  - In check mode all pending migrations share one transaction, so two things can fail that
    succeed in a real run, where each migration commits before the next starts. A later
    migration cannot use an enum value that an earlier one added (SQLSTATE 55P04), and
    C(ALTER TABLE) fails after rows were inserted under a deferred constraint (SQLSTATE
    55006). Such a migration is returned with C(verified) false and a warning, and does not
    fail the task.
  - A C(.sql.j2) template is rendered only by the action plugin. Run as a bare module, for
    example through C(ansible -m), the module rejects templates.
seealso:
  - name: PostgreSQL advisory locks
    description: How the migration lock works.
    link: https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
"""

EXAMPLES = r"""
- name: Apply the migrations shipped next to the playbook
  dbops.migrations.postgresql_migrate:
    path: files/sql
    login_host: db.example.com
    login_user: app_owner
    login_password: "{{ vault_app_owner_password }}"
    login_db: tracking_hub
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/rds-global-bundle.pem

- name: Preview with --check --diff; the same task, nothing written
  dbops.migrations.postgresql_migrate:
    path: files/sql
    login_db: tracking_hub
  check_mode: true
  diff: true

- name: Stop at version 2, with the connection taken from PGHOST, PGUSER and the rest
  dbops.migrations.postgresql_migrate:
    path:
      - files/sql/schema
      - files/sql/views
    target: "2"

# Several databases: each host of the inventory group databases stands for one database,
# for example with this inventory (inventory.yml):
#
#   databases:
#     hosts:
#       tenant_eu: {login_host: db-eu.example.com, login_db: tracking_hub}
#       tenant_us: {login_host: db-us.example.com, login_db: tracking_hub}
#
# The module runs on the controller and connects to each server over the network. Each
# database has its own history table and migration lock, so the hosts migrate in parallel,
# up to the number of forks. Run it with --check --diff first to preview every database.
- name: Migrate every database of the inventory
  hosts: databases
  connection: local
  gather_facts: false
  module_defaults:
    group/dbops.migrations.postgresql:
      login_host: "{{ login_host }}"
      login_db: "{{ login_db }}"
      login_user: app_owner
      login_password: "{{ vault_app_owner_password }}"
      ssl_mode: verify-full
      ca_cert: /etc/ssl/certs/rds-global-bundle.pem
  tasks:
    - name: Apply the pending migrations of this host's database
      dbops.migrations.postgresql_migrate:
        path: files/sql
      register: migration

    - name: Show what ran
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }}: {{ migration.msg }}"
"""

RETURN = r"""
applied:
  description:
    - Migrations applied by this run, in the order they ran. In check mode, the migrations that
      would be applied.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Version of a versioned migration or undo script; null for a repeatable one.
      type: str
      sample: "1"
    description:
      description: Description from the file name, with underscores as spaces.
      type: str
      sample: initial schema
    type:
      description: V(versioned), V(repeatable) or V(undo).
      type: str
      sample: versioned
    script:
      description: Path of the file, relative to the directory of O(path) it was found in.
      type: str
      sample: schema/V1__initial_schema.sql
    checksum:
      description: SHA-256 of the file text, with a UTF-8 byte-order mark removed and CRLF as LF.
      type: str
      sample: 5b0a6c0d1b2f4f0b8e8f6cbb1a1d2e3f4a5b6c7d8e9f00112233445566778899
    execution_time_ms:
      description: Milliseconds the migration took to run; 0 in check mode.
      type: int
      sample: 84
    verified:
      description:
        - True when the migration's SQL ran. In check mode, false for a migration that was
          not executed, such as one marked C(-- dbops:no-transaction), or any migration with
          O(check_strategy=plan).
      type: bool
      sample: true
  sample:
    - version: "1"
      description: initial schema
      type: versioned
      script: schema/V1__initial_schema.sql
      checksum: 5b0a6c0d1b2f4f0b8e8f6cbb1a1d2e3f4a5b6c7d8e9f00112233445566778899
      execution_time_ms: 84
      verified: true
pending:
  description:
    - Versioned migrations left pending after the run, such as those above O(target), with
      the keys of RV(applied) except RV(applied[].execution_time_ms) and RV(applied[].verified).
  returned: always
  type: list
  elements: dict
  sample:
    - version: "4"
      description: orders customer index
      type: versioned
      script: schema/V4__orders_customer_index.sql
      checksum: 0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091
current_version:
  description: Highest applied version after the run (in check mode, after the run would end).
  returned: always
  type: str
  sample: "3"
history_table:
  description: Qualified name of the history table.
  returned: always
  type: str
  sample: public.schema_migrations
history_table_created:
  description: Whether the run created the history table (in check mode, would create it).
  returned: always
  type: bool
  sample: false
baselined:
  description:
    - Versions recorded as applied by O(baseline_version) in this run (in check mode, that
      would be).
  returned: always
  type: list
  elements: str
  sample: ["1", "2", "3"]
accepted_checksums:
  description: Versions whose new checksum O(accept_checksums) recorded in this run.
  returned: always
  type: list
  elements: str
  sample: []
resolved_failed:
  description: Versions of failed migrations that O(resolve_failed) settled in this run.
  returned: always
  type: list
  elements: str
  sample: []
lint:
  description:
    - Findings of the safety lint on the pending migrations; see O(safety_lint).
  returned: always
  type: list
  elements: dict
  contains:
    rule:
      description: Name of the rule, which a C(-- dbops:lint-ignore) comment can name.
      type: str
      sample: create-index-not-concurrently
    script:
      description: Path of the migration file, as in RV(applied[].script).
      type: str
      sample: V4__orders_customer_index.sql
    line:
      description: Line of the statement in the file, counting from 1.
      type: int
      sample: 3
    why:
      description: What the statement locks or rewrites.
      type: str
      sample: CREATE INDEX blocks writes to public.orders, which has rows, until the build ends.
    instead:
      description: What to write instead.
      type: str
      sample: Use CREATE INDEX CONCURRENTLY in a migration marked -- dbops:no-transaction.
  sample:
    - rule: create-index-not-concurrently
      script: V4__orders_customer_index.sql
      line: 3
      why: CREATE INDEX blocks writes to public.orders, which has rows, until the build ends.
      instead: Use CREATE INDEX CONCURRENTLY in a migration marked -- dbops:no-transaction.
msg:
  description: One line saying what was applied, or would be, and the version now.
  returned: always
  type: str
  sample: Applied 3 migrations (V1, V2, V3); the database is at version 3.
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
        target=dict(type="str"),
        lock_timeout=dict(type="str", default="5s"),
        statement_timeout=dict(type="str", default="0"),
        lock_wait_timeout=dict(type="int", default=300),
        check_strategy=dict(type="str", default="execute", choices=["execute", "plan"]),
        resolve_failed=dict(type="str", choices=["retry", "mark_applied"]),
        lock_retries=dict(type="int", default=3),
        lock_retry_delay=dict(type="float", default=2),
        baseline_version=dict(type="str"),
        baseline_verify=dict(type="bool", default=False),
        allow_out_of_order=dict(type="bool", default=False),
        ignore_missing_files=dict(type="bool", default=False),
        accept_checksums=dict(type="list", elements="str", default=[]),
        hide_sql_in_diff=dict(type="bool", default=False),
        safety_lint=dict(type="str", default="warn", choices=["warn", "fail", "off"]),
        lint_large_table_rows=dict(type="int", default=100000),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[("path", "sources")],
        mutually_exclusive=[("path", "sources")],
        supports_check_mode=True,
    )
    hide_secret_connect_params(module)
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"))
    from ansible_collections.dbops.migrations.plugins.module_utils._migrations.api import migrate

    try:
        result = migrate(module.params, module.check_mode, module._diff, module.warn)
    except MigrationError as error:
        module.fail_json(msg=str(error), **(error.result or {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
