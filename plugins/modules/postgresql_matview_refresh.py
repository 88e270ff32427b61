#!/usr/bin/python
# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgresql_matview_refresh
short_description: Refresh PostgreSQL materialized views in dependency order
description:
  - Refreshes the materialized views named in O(names), or every materialized view in
    O(schema), each in its own transaction.
  - A materialized view that reads another one, directly or through plain views, is refreshed
    after it, so it reads fresh data. Views that do not depend on each other are refreshed in
    alphabetical order of their qualified names.
  - With O(concurrently=auto), a view is refreshed with C(CONCURRENTLY), which lets queries
    read it during the refresh, when PostgreSQL allows that. Each entry of RV(refreshed) says
    which method was used and why.
  - With O(tracking_table), each refresh also sets the view's C(last_refreshed_at) in that
    table, in the same transaction. With O(only_due), views whose interval has not yet passed
    are skipped, which suits a frequent schedule.
version_added: 0.1.0
author: dbops.migrations contributors (!UNKNOWN)
extends_documentation_fragment:
  - dbops.migrations.connection
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
options:
  names:
    description:
      - Materialized views to refresh, optionally schema-qualified, such as
        V(v_dispatch_summary) or V(reporting.daily_totals).
      - Names are read as in SQL. Unqualified names are found through the C(search_path),
        and unquoted names fold to lower case, so quote mixed-case names, for example
        V('"Sales"."Daily"').
      - A name that is not found, or is not a materialized view, fails the task before
        anything is refreshed, and the message lists every such name.
    type: list
    elements: str
  schema:
    description:
      - Refresh every materialized view in this schema.
    type: str
  concurrently:
    description:
      - V(auto) uses C(REFRESH MATERIALIZED VIEW CONCURRENTLY) when the view is populated and
        has a valid unique btree index on plain columns, without a C(WHERE) clause or
        expressions, which is what PostgreSQL requires. Otherwise it uses a plain refresh,
        which blocks readers of the view until it commits.
      - V(always) uses C(CONCURRENTLY) for every view. If a selected view does not meet the
        requirements, the task fails before anything is refreshed and names each such view.
      - V(never) always uses a plain refresh.
    type: str
    choices: [auto, always, never]
    default: auto
  tracking_table:
    description:
      - Table, optionally schema-qualified, with the columns C(view_name),
        C(last_refreshed_at) and C(refresh_interval_minutes), such as
        V(public.materialized_view_refresh) that the shipped migration V3 creates.
      - After each refresh, C(last_refreshed_at) of the view's row is set to C(now()). A row
        matches a view by its schema-qualified name, else by its bare name. No row is added
        for a view that has none.
      - The table is read only when there is a view to refresh, so a schema without
        materialized views, such as one migrated only to V2 of the shipped SQL, needs no
        tracking table either.
    type: str
  only_due:
    description:
      - Refresh only the views that are due. A view is due when C(last_refreshed_at) plus
        C(refresh_interval_minutes) is not in the future, when either column is null, or when
        the view has no row in O(tracking_table).
      - Views that are not due are listed in RV(not_refreshed).
    type: bool
    default: false
  lock_timeout:
    description:
      - PostgreSQL C(lock_timeout) for each refresh, as an interval such as V(5s) or V(500ms).
      - A refresh that waits longer for its lock on the view fails with SQLSTATE 55P03 instead
        of making every later query on the view wait behind it.
    type: str
    default: 5s
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be refreshed, by which method, and what is not due. Nothing
        is refreshed and the tracking table is not written.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    support: full
    membership:
      - dbops.migrations.postgresql
notes:
  - Refreshing needs ownership of the view, or on PostgreSQL 17 and later the C(MAINTAIN)
    privilege.
  - A failed refresh fails the task. Views refreshed before it stay refreshed, the message
    names them, and the result lists them in RV(refreshed) with C(changed) true.
  - Only the selected views are refreshed. A materialized view that a selected one reads is
    not refreshed unless it is selected too.
  - C(last_refreshed_at) is compared with C(now()). When the column is a C(timestamp) without
    time zone, as in the shipped migration, PostgreSQL converts it with the session's
    C(TimeZone), so every job that writes or reads the table should use the same setting.
seealso:
  - module: dbops.migrations.postgresql_migration_info
  - name: REFRESH MATERIALIZED VIEW
    description: The statement, and the requirements of CONCURRENTLY.
    link: https://www.postgresql.org/docs/current/sql-refreshmaterializedview.html
"""

EXAMPLES = r"""
- name: Refresh the materialized views that are due, for a schedule that runs every minute
  dbops.migrations.postgresql_matview_refresh:
    schema: public
    tracking_table: public.materialized_view_refresh
    only_due: true
    login_db: tracking_hub

- name: Refresh two views now, never blocking readers
  dbops.migrations.postgresql_matview_refresh:
    names:
      - v_dispatch_summary
      - reporting.v_match_rate_by_tenant
    concurrently: always
    lock_timeout: 30s

- name: Preview which views are due and how each would be refreshed, refreshing nothing
  dbops.migrations.postgresql_matview_refresh:
    schema: public
    tracking_table: public.materialized_view_refresh
    only_due: true
  check_mode: true
  register: refresh_preview
"""

RETURN = r"""
refreshed:
  description:
    - Views refreshed, in the order they ran. In check mode, the views that would be
      refreshed, with RV(refreshed[].duration_ms) 0.
    - RV(refreshed[].reason) says why the method was chosen.
    - When a refresh fails, the views refreshed before it, which stay refreshed. C(changed)
      is then true if there is at least one.
  returned: success, and when a refresh fails
  type: list
  elements: dict
  contains:
    name:
      description: Schema-qualified name of the view.
      type: str
      sample: public.v_dispatch_summary
    concurrently:
      description: Whether the view was refreshed with C(CONCURRENTLY).
      type: bool
      sample: true
    reason:
      description: Why that method was chosen.
      type: str
      sample: "concurrent refresh: populated, with usable unique index idx_v_dispatch_summary"
    duration_ms:
      description: Milliseconds the refresh took; 0 in check mode.
      type: int
      sample: 412
  sample:
    - name: public.v_dispatch_summary
      concurrently: true
      reason: "concurrent refresh: populated, with usable unique index idx_v_dispatch_summary"
      duration_ms: 412
    - name: public.v_match_rate_by_tenant
      concurrently: false
      reason: >-
        plain refresh because the view is not populated (created or last refreshed WITH NO
        DATA)
      duration_ms: 1530
not_refreshed:
  description:
    - Views left alone because O(only_due) is set and they are not due, and why.
    - The key is not named C(skipped) because Ansible would then report the task as skipped.
  returned: success, and when a refresh fails
  type: list
  elements: dict
  contains:
    name:
      description: Schema-qualified name of the view.
      type: str
      sample: public.v_dispatch_summary
    reason:
      description: When the view was last refreshed, its interval, and when it is next due.
      type: str
      sample: >-
        not due: last refreshed at 2026-03-02 09:14:07, every 5 minutes, next due at
        2026-03-02 09:19:07
  sample:
    - name: public.v_dispatch_summary
      reason: >-
        not due: last refreshed at 2026-03-02 09:14:07, every 5 minutes, next due at
        2026-03-02 09:19:07
msg:
  description: One line naming the views refreshed, or that would be, and how many are not due.
  returned: always
  type: str
  sample: Refreshed public.v_dispatch_summary (concurrently), public.v_match_rate_by_tenant.
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
)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        names=dict(type="list", elements="str"),
        schema=dict(type="str"),
        concurrently=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        tracking_table=dict(type="str"),
        only_due=dict(type="bool", default=False),
        lock_timeout=dict(type="str", default="5s"),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("names", "schema")],
        required_one_of=[("names", "schema")],
        required_if=[("only_due", True, ("tracking_table",))],
        supports_check_mode=True,
    )
    hide_secret_connect_params(module)
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"))
    from ansible_collections.dbops.migrations.plugins.module_utils._migrations.refresh_api import (
        refresh_materialized_views,
    )

    try:
        result = refresh_materialized_views(module.params, module.check_mode)
    except MigrationError as error:
        module.fail_json(msg=str(error), **(error.result or {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
