# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Re-apply repeatable view migrations whose change CREATE OR REPLACE VIEW refuses.

PostgreSQL replaces a view in place only when the new column list extends the old one
(SQLSTATE 42P16 otherwise), and never turns a view into a materialized view or back
(42809, or 42P07 for CREATE MATERIALIZED VIEW over a view). In those cases the views the
file defines are dropped together with the views that depend on them, the file runs again,
and the dependent views are recreated from their saved definitions, all inside the
migration's transaction. Grants (of the view and of its columns), comments, triggers and
column defaults are restored, dependent views keep their options (security_barrier,
check_option), and materialized views are repopulated when they were populated before.
Rules other than the view's own are not restored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ExecutionError
from .execution import LazyText, PreparedMigration, run_statements, server_message

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

RECREATE_SQLSTATES = {"42P16", "42809", "42P07"}

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_VIEW_STATEMENT = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:TEMP|TEMPORARY)\s+)?(?:RECURSIVE\s+)?"
    r"(?:MATERIALIZED\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME}(?:\s*\.\s*{_NAME})?)",
    re.IGNORECASE,
)

_DEPENDENTS = """
WITH RECURSIVE dependents(oid, depth) AS (
    SELECT r.ev_class, 1
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid = ANY(%(roots)s) AND r.ev_class <> d.refobjid
  UNION
    SELECT r.ev_class, dependents.depth + 1
    FROM dependents
    JOIN pg_catalog.pg_depend d ON d.refobjid = dependents.oid
    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND r.ev_class <> dependents.oid AND dependents.depth < 64
)
SELECT oid FROM dependents WHERE oid <> ALL(%(roots)s)
GROUP BY oid ORDER BY pg_catalog.max(depth), oid
"""

_RELATION = """
SELECT n.nspname, c.relname, c.relkind, pg_catalog.pg_get_viewdef(c.oid),
       c.relispopulated, pg_catalog.obj_description(c.oid, 'pg_class'),
       pg_catalog.pg_get_userbyid(c.relowner), c.reloptions
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = %s
"""

_GRANTS = """
SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
WHERE c.oid = %s AND a.grantee <> c.relowner
"""

_COLUMN_COMMENTS = """
SELECT a.attname, d.description
FROM pg_catalog.pg_description d
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
WHERE d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objoid = %s
  AND d.objsubid > 0
"""

_COLUMN_GRANTS = """
SELECT a.attname,
       CASE WHEN x.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
       x.privilege_type, x.is_grantable
FROM pg_catalog.pg_attribute a, pg_catalog.aclexplode(a.attacl) x
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
"""

_COLUMN_DEFAULTS = """
SELECT a.attname, pg_catalog.pg_get_expr(d.adbin, d.adrelid)
FROM pg_catalog.pg_attrdef d
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = %s
"""

_TRIGGERS = (
    "SELECT pg_catalog.pg_get_triggerdef(oid) FROM pg_catalog.pg_trigger"
    " WHERE tgrelid = %s AND NOT tgisinternal ORDER BY tgname"
)

_INDEXES = (
    "SELECT pg_catalog.pg_get_indexdef(indexrelid) FROM pg_catalog.pg_index WHERE indrelid = %s"
)


@dataclass
class SavedView:
    """Saved definition of a view or materialized view, with its grants and comments."""

    schema: str
    name: str
    materialized: bool
    definition: str
    populated: bool
    comment: str | None
    owner: str
    grants: list[tuple[str | None, str, bool]]
    column_comments: list[tuple[str, str]]
    indexes: list[str]
    options: list[str]
    column_grants: list[tuple[str, str | None, str, bool]]
    column_defaults: list[tuple[str, str]]
    triggers: list[str]

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


def run_repeatable(cursor: Any, item: PreparedMigration, stays: str | LazyText) -> int:
    """Run a repeatable migration, dropping and recreating views where replacing fails."""
    cursor.execute("SAVEPOINT dbops_repeatable")
    try:
        return run_statements(cursor, item, stays)
    except ExecutionError as error:
        if error.sqlstate not in RECREATE_SQLSTATES:
            raise
        cursor.execute("ROLLBACK TO SAVEPOINT dbops_repeatable")
        roots = _existing_views(cursor, item)
        if not roots:
            raise
    return _recreate(cursor, item, roots, stays)


def _recreate(cursor: Any, item: PreparedMigration, roots: list[int], stays: str | LazyText) -> int:
    import psycopg2

    dependents = _dependents(cursor, roots)
    saved_roots = [_save(cursor, oid) for oid in roots]
    saved_dependents = [_save(cursor, oid) for oid in dependents]
    for view in reversed(saved_dependents):
        _drop(cursor, view)
    for view in saved_roots:
        _drop(cursor, view)
    elapsed = run_statements(cursor, item, stays)
    try:
        for view in saved_dependents:
            _create(cursor, view)
        for view in saved_roots + saved_dependents:
            _restore_grants_and_comments(cursor, view)
            _restore_column_settings(cursor, view)
    except psycopg2.Error as error:
        raise ExecutionError(
            f"Migration {item.migration.label} ({item.migration.script}) replaced its views, "
            f"but recreating the views that depend on them failed: {server_message(error)} "
            f"{stays}",
            version=item.migration.version,
            script=item.migration.script,
            line=None,
            sqlstate=getattr(error, "pgcode", None),
        ) from None
    return elapsed


def _existing_views(cursor: Any, item: PreparedMigration) -> list[int]:
    """Return the oids of existing views and materialized views that the file defines."""
    oids: list[int] = []
    for statement in item.statements:
        match = _VIEW_STATEMENT.match(statement.text)
        if not match:
            continue
        cursor.execute(
            "SELECT c.oid FROM pg_catalog.pg_class c"
            " WHERE c.oid = pg_catalog.to_regclass(%s) AND c.relkind IN ('v', 'm')",
            (match.group("name"),),
        )
        row = cursor.fetchone()
        if row and row[0] not in oids:
            oids.append(row[0])
    return oids


def _dependents(cursor: Any, roots: list[int]) -> list[int]:
    cursor.execute(_DEPENDENTS, {"roots": roots})
    return [row[0] for row in cursor.fetchall()]


def _save(cursor: Any, oid: int) -> SavedView:
    cursor.execute(_RELATION, (oid,))
    schema, name, kind, definition, populated, comment, owner, options = cursor.fetchone()
    cursor.execute(_GRANTS, (oid,))
    grants = list(cursor.fetchall())
    cursor.execute(_COLUMN_COMMENTS, (oid,))
    column_comments = list(cursor.fetchall())
    indexes: list[str] = []
    if kind == "m":
        cursor.execute(_INDEXES, (oid,))
        indexes = [row[0] for row in cursor.fetchall()]
    cursor.execute(_COLUMN_GRANTS, (oid,))
    column_grants = list(cursor.fetchall())
    cursor.execute(_COLUMN_DEFAULTS, (oid,))
    column_defaults = list(cursor.fetchall())
    cursor.execute(_TRIGGERS, (oid,))
    triggers = [row[0] for row in cursor.fetchall()]
    return SavedView(
        schema=schema,
        name=name,
        materialized=kind == "m",
        definition=definition.rstrip().rstrip(";"),
        populated=populated,
        comment=comment,
        owner=owner,
        grants=grants,
        column_comments=column_comments,
        indexes=indexes,
        options=list(options or []),
        column_grants=column_grants,
        column_defaults=column_defaults,
        triggers=triggers,
    )


def _drop(cursor: Any, view: SavedView) -> None:
    kind = sql.SQL("MATERIALIZED VIEW" if view.materialized else "VIEW")
    cursor.execute(sql.SQL("DROP {kind} {name}").format(kind=kind, name=view.identifier))


def _create(cursor: Any, view: SavedView) -> None:
    """Create a dependent view again as it was, with its options, indexes and owner."""
    options: sql.Composable = sql.SQL("")
    if view.options:
        # pg_class.reloptions contains name=value pairs that WITH (...) accepts as written.
        options = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(map(sql.SQL, view.options)))
    if view.materialized:
        data = sql.SQL("WITH DATA" if view.populated else "WITH NO DATA")
        statement = sql.SQL("CREATE MATERIALIZED VIEW {name}{options} AS {body} {data}").format(
            name=view.identifier, options=options, body=sql.SQL(view.definition), data=data
        )
    else:
        statement = sql.SQL("CREATE VIEW {name}{options} AS {body}").format(
            name=view.identifier, options=options, body=sql.SQL(view.definition)
        )
    cursor.execute(statement)
    for index in view.indexes:
        cursor.execute(index)
    cursor.execute("SELECT CURRENT_USER")
    if cursor.fetchone()[0] != view.owner:
        kind = sql.SQL("MATERIALIZED VIEW" if view.materialized else "VIEW")
        cursor.execute(
            sql.SQL("ALTER {kind} {name} OWNER TO {owner}").format(
                kind=kind, name=view.identifier, owner=sql.Identifier(view.owner)
            )
        )


def _restore_grants_and_comments(cursor: Any, view: SavedView) -> None:
    """Grant again what was granted; put back comments the new definition did not set."""
    cursor.execute(
        "SELECT relkind FROM pg_catalog.pg_class WHERE oid = %s::pg_catalog.regclass",
        (_quoted(view),),
    )
    kind = sql.SQL("MATERIALIZED VIEW" if cursor.fetchone()[0] == "m" else "VIEW")
    for grantee, privilege, grantable in view.grants:
        cursor.execute(
            sql.SQL("GRANT {privilege} ON TABLE {name} TO {grantee}{option}").format(
                privilege=sql.SQL(privilege),
                name=view.identifier,
                grantee=sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                option=sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )
    cursor.execute(
        "SELECT pg_catalog.obj_description(%s::pg_catalog.regclass, 'pg_class')",
        (_quoted(view),),
    )
    if view.comment is not None and cursor.fetchone()[0] is None:
        cursor.execute(
            sql.SQL("COMMENT ON {kind} {name} IS %s").format(kind=kind, name=view.identifier),
            (view.comment,),
        )
    for column, comment in view.column_comments:
        cursor.execute(
            "SELECT pg_catalog.col_description(a.attrelid, a.attnum) IS NULL"
            " FROM pg_catalog.pg_attribute a"
            " WHERE a.attrelid = %s::pg_catalog.regclass AND a.attname = %s AND NOT a.attisdropped",
            (_quoted(view), column),
        )
        row = cursor.fetchone()
        if row and row[0]:
            cursor.execute(
                sql.SQL("COMMENT ON COLUMN {name}.{column} IS %s").format(
                    name=view.identifier, column=sql.Identifier(column)
                ),
                (comment,),
            )


def _restore_column_settings(cursor: Any, view: SavedView) -> None:
    """Put back column grants, column defaults and triggers, for the columns that remain.

    A view replaced in place keeps them, so a view that had to be dropped and created again
    gets them back. Settings of a column that the new definition removed are left out.
    """
    cursor.execute(
        "SELECT attname FROM pg_catalog.pg_attribute"
        " WHERE attrelid = %s::pg_catalog.regclass AND attnum > 0 AND NOT attisdropped",
        (_quoted(view),),
    )
    columns = {row[0] for row in cursor.fetchall()}
    for column, grantee, privilege, grantable in view.column_grants:
        if column not in columns:
            continue
        cursor.execute(
            sql.SQL("GRANT {privilege} ({column}) ON TABLE {name} TO {grantee}{option}").format(
                privilege=sql.SQL(privilege),
                column=sql.Identifier(column),
                name=view.identifier,
                grantee=sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                option=sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )
    for column, default in view.column_defaults:
        if column not in columns:
            continue
        cursor.execute(
            sql.SQL("ALTER VIEW {name} ALTER COLUMN {column} SET DEFAULT {default}").format(
                name=view.identifier, column=sql.Identifier(column), default=sql.SQL(default)
            )
        )
    cursor.execute(
        "SELECT tgname FROM pg_catalog.pg_trigger WHERE tgrelid = %s::pg_catalog.regclass",
        (_quoted(view),),
    )
    present = {row[0] for row in cursor.fetchall()}
    for trigger in view.triggers:
        name = _TRIGGER_NAME.match(trigger)
        if name is None or _identifier_value(name.group(1)) not in present:
            cursor.execute(trigger)


# pg_get_triggerdef output starts CREATE [CONSTRAINT] TRIGGER name.
_TRIGGER_NAME = re.compile(rf"^CREATE\s+(?:CONSTRAINT\s+)?TRIGGER\s+({_NAME})")


def _identifier_value(written: str) -> str:
    return written[1:-1].replace('""', '"') if written.startswith('"') else written


def _quoted(view: SavedView) -> str:
    return '"{}"."{}"'.format(view.schema.replace('"', '""'), view.name.replace('"', '""'))
