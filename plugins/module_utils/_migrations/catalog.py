# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot the schema catalog, compare two snapshots, and render the difference as text.

Check mode can take a snapshot before and after it runs the pending migrations in its
transaction, so that the difference shows what the migrations would change. Every query is
a read-only SELECT on ``pg_catalog``, so a snapshot works inside that transaction.

A snapshot covers schemas, extensions, enum, domain, composite and range types, sequences,
tables with their columns, constraints and indexes, views, materialized views, functions,
procedures and aggregates. It leaves out triggers, rules, policies, privileges, comments,
foreign tables, base types and the objects that belong to an extension (the extension itself
is listed). It needs PostgreSQL 12 or later, for ``pg_attribute.attgenerated``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import MigrationError
from .execution import server_message

# Imported only where installed, so that the file imports without psycopg2. The modules
# check connection.HAS_PSYCOPG2 before they call in here.
try:
    import psycopg2
    from psycopg2 import extensions
except ImportError:  # pragma: no cover - reported by the module as a missing requirement
    pass

__all__ = [
    "ACTIONS",
    "KINDS",
    "RECREATED",
    "Alteration",
    "CatalogError",
    "CatalogObject",
    "Column",
    "Constraint",
    "Extension",
    "Index",
    "Relation",
    "Routine",
    "SchemaDiff",
    "Sequence",
    "Snapshot",
    "Table",
    "Type",
    "diff",
    "render",
    "snapshot",
    "summary",
]

# Object kinds in the order ``summary`` lists them. A rendered line shows the kind with
# spaces in place of underscores ("materialized view", "foreign key").
KINDS = (
    "schema",
    "extension",
    "type",
    "sequence",
    "table",
    "column",
    "primary_key",
    "unique_constraint",
    "check_constraint",
    "exclusion_constraint",
    "foreign_key",
    "index",
    "view",
    "materialized_view",
    "function",
    "procedure",
    "aggregate",
)
ACTIONS = ("created", "altered", "dropped")

# (kind, schema, relation, name): relation is the owning table or view of a column,
# constraint or index and "" for other objects. Names are the raw catalog names.
ObjectKey = tuple[str, str, str, str]

RECREATED = "dropped and recreated"

_CONSTRAINT_KINDS = {
    "p": "primary_key",
    "u": "unique_constraint",
    "c": "check_constraint",
    "x": "exclusion_constraint",
    "f": "foreign_key",
}
# The keyword that starts pg_get_constraintdef's text, which a rendered line leaves out
# because the line names the kind already.
_CONSTRAINT_KEYWORDS = {
    "primary_key": "PRIMARY KEY ",
    "unique_constraint": "UNIQUE ",
    "check_constraint": "CHECK ",
    "exclusion_constraint": "EXCLUDE ",
    "foreign_key": "FOREIGN KEY ",
}
_ROUTINE_KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "function"}
_TYPE_VARIETIES = {"e": "enum", "d": "domain", "c": "composite", "r": "range"}
_RELATION_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized_view"}

# Enum labels are shown bare when they are words separated by single spaces, without commas,
# parentheses or quotes. Other labels are shown as SQL string literals.
_PLAIN_LABEL = re.compile(r"[^\s,()'\"]+(?: [^\s,()'\"]+)*")


class CatalogError(MigrationError):
    """The schema catalog could not be read."""


# ---------------------------------------------------------------------------------------
# Catalog objects
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CatalogObject:
    """A schema object, identified by its kind, schema, owning relation and name.

    ``label`` is the quoted, schema-qualified name that rendered lines show, as
    ``quote_ident`` spells it. For tables, views, materialized views, sequences and types a
    changed ``oid`` shows that the object was dropped and recreated, so snapshots that are
    compared must come from the same database.
    """

    kind: str
    schema: str
    name: str
    label: str
    relation: str = ""
    relation_kind: str = ""
    oid: int = 0

    @property
    def key(self) -> ObjectKey:
        return (self.kind, self.schema, self.relation, self.name)

    @property
    def display_kind(self) -> str:
        return self.kind.replace("_", " ")

    @property
    def position(self) -> int:
        """Return the place among the relation's members, for ordering rendered lines."""
        return 0

    def describe(self) -> str:
        """Return the text that follows the label in a created or dropped line."""
        return ""

    def changes_from(self, old: CatalogObject) -> list[str]:
        """List how this object differs from ``old``, which has the same key."""
        return []


@dataclass(frozen=True, kw_only=True)
class Extension(CatalogObject):
    """An installed extension. ``schema`` is the schema that contains its objects."""

    kind: str = "extension"
    version: str

    def describe(self) -> str:
        return f"version {self.version} in schema {self.schema}"

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Extension):
            raise AssertionError
        return _value_changes("version", old.version, self.version)


@dataclass(frozen=True, kw_only=True)
class Type(CatalogObject):
    """An enum, domain, composite or range type.

    ``labels`` lists an enum's labels in sort order. ``definition`` describes the other
    varieties: the base type and constraints of a domain, the attributes of a composite
    type, the subtype of a range.
    """

    kind: str = "type"
    variety: str
    labels: tuple[str, ...] = ()
    definition: str = ""

    def describe(self) -> str:
        if self.variety == "enum":
            return f"enum ({_label_list(self.labels)})"
        return f"{self.variety} {self.definition}"

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Type):
            raise AssertionError
        changes = _recreated(old, self)
        if self.variety == "enum" and old.variety == "enum":
            changes += _label_changes(old.labels, self.labels)
        elif old.describe() != self.describe():
            changes.append(f"{old.describe()} -> {self.describe()}")
        return changes


@dataclass(frozen=True, kw_only=True)
class Sequence(CatalogObject):
    """A sequence, except one that an identity column owns, with its options.

    ``owned_by`` is the column, as ``schema.table.column``, that owns a serial sequence.
    """

    kind: str = "sequence"
    data_type: str
    start: int
    increment: int
    minimum: int
    maximum: int
    cache: int
    cycle: bool
    owned_by: str | None = None

    def clauses(self) -> list[str]:
        """Return the options as CREATE SEQUENCE and ALTER SEQUENCE clauses."""
        return [
            f"AS {self.data_type}",
            f"START {self.start}",
            f"INCREMENT {self.increment}",
            f"MINVALUE {self.minimum}",
            f"MAXVALUE {self.maximum}",
            f"CACHE {self.cache}",
            "CYCLE" if self.cycle else "NO CYCLE",
            f"OWNED BY {self.owned_by or 'NONE'}",
        ]

    def describe(self) -> str:
        return " ".join(clause for clause in self.clauses() if clause != "OWNED BY NONE")

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Sequence):
            raise AssertionError
        changes = _recreated(old, self)
        pairs = zip(old.clauses(), self.clauses(), strict=True)
        return changes + [f"{before} -> {after}" for before, after in pairs if before != after]


@dataclass(frozen=True, kw_only=True)
class Table(CatalogObject):
    """A table. Its columns, constraints and indexes are objects of their own.

    ``options`` lists what the table line shows besides the column count: UNLOGGED, the
    partition key, or the parent and bounds of a partition.
    """

    kind: str = "table"
    columns: int
    options: str = ""

    def describe(self) -> str:
        noun = "column" if self.columns == 1 else "columns"
        details = ", ".join(part for part in (f"{self.columns} {noun}", self.options) if part)
        return f"({details})"

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Table):
            raise AssertionError
        changes = _recreated(old, self)
        return changes + _value_changes("options", old.options or None, self.options or None)


@dataclass(frozen=True, kw_only=True)
class Relation(CatalogObject):
    """A view or materialized view, with the query that ``pg_get_viewdef`` returns."""

    definition: str

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Relation):
            raise AssertionError
        changes = _recreated(old, self)
        if old.definition != self.definition:
            changes.append("definition changed")
        return changes


@dataclass(frozen=True, kw_only=True)
class Column(CatalogObject):
    """A table column.

    ``identity`` is ALWAYS or BY DEFAULT for an identity column, and ``generated`` is the
    expression of a stored generated column, whose ``default`` is then None.
    """

    kind: str = "column"
    relation_kind: str = "table"
    number: int
    type: str
    not_null: bool
    default: str | None = None
    identity: str | None = None
    generated: str | None = None

    @property
    def position(self) -> int:
        return self.number

    def describe(self) -> str:
        parts = [self.type]
        if self.not_null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.identity is not None:
            parts.append(f"GENERATED {self.identity} AS IDENTITY")
        if self.generated is not None:
            parts.append(f"GENERATED ALWAYS AS ({self.generated}) STORED")
        return " ".join(parts)

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Column):
            raise AssertionError
        changes = _value_changes("type", old.type, self.type)
        if old.not_null != self.not_null:
            changes.append("NOT NULL added" if self.not_null else "NOT NULL removed")
        changes += _value_changes("default", old.default, self.default)
        changes += _value_changes("identity", old.identity, self.identity)
        changes += _value_changes("generated as", old.generated, self.generated)
        return changes


@dataclass(frozen=True, kw_only=True)
class Constraint(CatalogObject):
    """A primary key, unique, check, exclusion or foreign key constraint of a table.

    ``definition`` is the text of ``pg_get_constraintdef``.
    """

    relation_kind: str = "table"
    definition: str

    def describe(self) -> str:
        return self.definition.removeprefix(_CONSTRAINT_KEYWORDS.get(self.kind, ""))

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Constraint):
            raise AssertionError
        return _value_changes("definition", old.describe(), self.describe())


@dataclass(frozen=True, kw_only=True)
class Index(CatalogObject):
    """An index of a table or materialized view, except one that implements a constraint.

    ``method`` is the part of ``pg_get_indexdef`` after the relation name: the access
    method, the key columns and any INCLUDE, WITH, TABLESPACE or WHERE clause.
    """

    kind: str = "index"
    relation_label: str
    unique: bool
    method: str

    @property
    def display_kind(self) -> str:
        return "unique index" if self.unique else "index"

    def describe(self) -> str:
        return f"on {self.relation_label} {self.method}"

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Index):
            raise AssertionError
        before = f"{old.display_kind} {old.describe()}"
        after = f"{self.display_kind} {self.describe()}"
        return [f"{before} -> {after}"] if before != after else []


@dataclass(frozen=True, kw_only=True)
class Routine(CatalogObject):
    """A function, procedure or aggregate. ``name`` includes the identity arguments.

    ``definition_hash`` is the SHA-256 of ``pg_get_functiondef``, or for an aggregate of its
    support functions, state type and initial values.
    """

    result: str | None
    definition_hash: str

    def describe(self) -> str:
        return f"returns {self.result}" if self.result else ""

    def changes_from(self, old: CatalogObject) -> list[str]:
        if not isinstance(old, Routine):
            raise AssertionError
        changes = _value_changes("returns", old.result, self.result)
        if old.definition_hash != self.definition_hash:
            changes.append("definition changed")
        return changes


def _value_changes(attribute: str, old: str | None, new: str | None) -> list[str]:
    if old == new:
        return []
    return [f"{attribute} {_or_none(old)} -> {_or_none(new)}"]


def _or_none(value: str | None) -> str:
    return "none" if value is None else value


def _recreated(old: CatalogObject, new: CatalogObject) -> list[str]:
    return [RECREATED] if old.oid != new.oid else []


def _label_changes(old: tuple[str, ...], new: tuple[str, ...]) -> list[str]:
    """Describe new enum labels, or the whole list when labels were removed or reordered."""
    if old == new:
        return []
    if list(old) == [label for label in new if label in old]:
        added = tuple(label for label in new if label not in old)
        return [f"labels added: {_label_list(added)}"]
    return [f"labels ({_label_list(old)}) -> ({_label_list(new)})"]


def _label_list(labels: tuple[str, ...]) -> str:
    return ", ".join(_show_label(label) for label in labels)


def _show_label(label: str) -> str:
    if _PLAIN_LABEL.fullmatch(label):
        return label
    return "'" + label.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------
# Snapshot
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The schema objects of some schemas of one database, at one moment.

    ``objects`` is ordered by key, so equal catalogs give equal snapshots.
    """

    schemas: tuple[str, ...]
    objects: dict[ObjectKey, CatalogObject]

    def of_kind(self, kind: str) -> list[CatalogObject]:
        return [item for item in self.objects.values() if item.kind == kind]


def snapshot(
    cursor: Any,
    schemas: list[str] | None = None,
    exclude: Collection[tuple[str, str]] = (),
) -> Snapshot:
    """Read the schema objects of ``schemas``, or of every user schema when None.

    User schemas are all schemas except ``information_schema`` and those whose names start
    with ``pg_`` (``pg_catalog``, ``pg_toast`` and the temporary schemas). ``exclude`` names
    relations by (schema, name) to leave out together with their columns, constraints,
    indexes and owned sequences, such as the history table.

    Inside a transaction the queries run in a savepoint that is rolled back afterwards, so
    the search_path and the transaction are left as they were. On an autocommit connection
    outside a transaction they run in a read-only transaction of their own. A connection
    that is not in autocommit mode and has no transaction gets one from psycopg2, as with
    any query. Raises CatalogError when a query fails or the transaction is already aborted.
    """
    with _catalog_session(cursor):
        namespaces = _read_namespaces(cursor, schemas)
        params = {
            "namespaces": [oid for oid, _schema in namespaces],
            "excluded": _excluded_oids(cursor, exclude),
        }
        objects = [schema for _oid, schema in namespaces]
        for query, build_object in _READERS:
            cursor.execute(query, params)
            objects += [build_object(row) for row in cursor.fetchall()]
    ordered = sorted(objects, key=lambda item: item.key)
    names = tuple(sorted(schema.name for _oid, schema in namespaces))
    return Snapshot(schemas=names, objects={item.key: item for item in ordered})


@contextmanager
def _catalog_session(cursor: Any) -> Iterator[None]:
    """Run the snapshot queries with only pg_catalog on the search path, then restore it.

    With that search path, format_type, pg_get_viewdef and the other deparsing functions
    qualify every user object with its schema, so their text does not depend on the
    caller's search_path. Rolling back the savepoint restores the setting, and after a
    failed query it also leaves the caller's transaction usable.
    """
    # NOTE: in a READ COMMITTED transaction each query sees the catalog as of its own start,
    # so DDL that another session commits during a snapshot can leave it inconsistent.
    connection = cursor.connection
    status = connection.info.transaction_status
    if status == extensions.TRANSACTION_STATUS_INERROR:
        raise CatalogError(
            "Cannot read the schema catalog: the transaction is aborted. Roll it back first."
        )
    if connection.autocommit and status == extensions.TRANSACTION_STATUS_IDLE:
        start, finish = "BEGIN READ ONLY", "ROLLBACK"
    else:
        start = "SAVEPOINT dbops_catalog"
        finish = "ROLLBACK TO SAVEPOINT dbops_catalog; RELEASE SAVEPOINT dbops_catalog"
    cursor.execute(start)
    try:
        cursor.execute("SET LOCAL search_path = pg_catalog")
        yield
    except psycopg2.Error as error:
        _finish_quietly(cursor, finish)
        raise CatalogError(f"Cannot read the schema catalog: {server_message(error)}") from None
    except BaseException:
        _finish_quietly(cursor, finish)
        raise
    cursor.execute(finish)


def _finish_quietly(cursor: Any, finish: str) -> None:
    """End the snapshot's savepoint or transaction while another error is propagating."""
    if cursor.connection.closed:
        return
    try:
        cursor.execute(finish)
    except psycopg2.Error:
        return


# Schemas whose names start with pg_ are reserved to the system: pg_catalog, pg_toast and
# the temporary schemas pg_temp_N and pg_toast_temp_N.
_USER_SCHEMAS = """
SELECT n.oid, n.nspname::text, pg_catalog.quote_ident(n.nspname)
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
"""

_GIVEN_SCHEMAS = """
SELECT n.oid, n.nspname::text, pg_catalog.quote_ident(n.nspname)
FROM pg_catalog.pg_namespace n
WHERE n.nspname::text = ANY(%(schemas)s::text[])
"""

_EXCLUDED = """
SELECT c.oid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname::text, c.relname::text) IN (
    SELECT * FROM ROWS FROM (pg_catalog.unnest(%(schemas)s::text[]),
                             pg_catalog.unnest(%(names)s::text[])))
"""


def _read_namespaces(cursor: Any, schemas: list[str] | None) -> list[tuple[int, CatalogObject]]:
    if schemas is None:
        cursor.execute(_USER_SCHEMAS)
    else:
        cursor.execute(_GIVEN_SCHEMAS, {"schemas": list(schemas)})
    return [
        (oid, CatalogObject(kind="schema", schema=name, name=name, label=label, oid=oid))
        for oid, name, label in cursor.fetchall()
    ]


def _excluded_oids(cursor: Any, exclude: Collection[tuple[str, str]]) -> list[int]:
    if not exclude:
        return []
    pairs = sorted(exclude)
    cursor.execute(
        _EXCLUDED,
        {
            "schemas": [schema for schema, _name in pairs],
            "names": [name for _schema, name in pairs],
        },
    )
    return [row[0] for row in cursor.fetchall()]


# Every query below takes %(namespaces)s, the oids of the schemas to read, and
# %(excluded)s, the oids of the excluded relations. Objects that belong to an extension
# (pg_depend.deptype 'e') are left out, like pg_dump leaves them out of a dump.

_EXTENSIONS = """
SELECT e.oid, n.nspname::text, e.extname::text, pg_catalog.quote_ident(e.extname), e.extversion
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
WHERE e.extnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
"""

# Composite types are read only when they stand alone (relkind 'c'), because every table,
# view and sequence has a row type too. Array and multirange types come with another type.
_TYPES = """
SELECT t.oid, n.nspname::text, t.typname::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname),
       t.typtype::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE t.typtype
         WHEN 'd' THEN pg_catalog.concat_ws(' ',
           'over ' || pg_catalog.format_type(t.typbasetype, t.typtypmod),
           CASE WHEN t.typnotnull THEN 'NOT NULL' END,
           'DEFAULT ' || pg_catalog.pg_get_expr(t.typdefaultbin, 0),
           (SELECT pg_catalog.string_agg('CONSTRAINT ' || pg_catalog.quote_ident(k.conname)
                                         || ' ' || pg_catalog.pg_get_constraintdef(k.oid),
                                         ' ' ORDER BY k.conname)
            FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'))
         WHEN 'c' THEN '(' || pg_catalog.concat_ws(', ', VARIADIC ARRAY(
           SELECT pg_catalog.quote_ident(a.attname) || ' '
                  || pg_catalog.format_type(a.atttypid, a.atttypmod)
           FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum)) || ')'
         WHEN 'r' THEN (SELECT 'over ' || pg_catalog.format_type(r.rngsubtype, NULL)
                        FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid)
       END
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
WHERE t.typnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR c.relkind = 'c')
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid
      AND d.deptype = 'e')
"""

# Sequences that an identity column owns (deptype 'i') are shown through the column, so
# only serial and standalone sequences are read.
_SEQUENCES = """
SELECT c.oid, n.nspname::text, c.relname::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
       pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
       s.seqmax, s.seqcache, s.seqcycle,
       (SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(tc.relname)
               || '.' || pg_catalog.quote_ident(a.attname)
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class tc ON tc.oid = d.refobjid
        JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace
        JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'a')
FROM pg_catalog.pg_sequence s
JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND c.oid <> ALL(%(excluded)s::pg_catalog.oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
      AND (d.deptype IN ('e', 'i')
           OR (d.deptype = 'a' AND d.refobjid = ANY(%(excluded)s::pg_catalog.oid[]))))
"""

_RELATIONS = """
SELECT c.oid, n.nspname::text, c.relname::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
       c.relkind::text,
       (SELECT pg_catalog.count(*)::integer FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       pg_catalog.concat_ws(', ',
         CASE WHEN c.relpersistence = 'u' THEN 'UNLOGGED' END,
         'PARTITION BY ' || CASE WHEN c.relkind = 'p'
                                 THEN pg_catalog.pg_get_partkeydef(c.oid) END,
         'PARTITION OF ' || (SELECT i.inhparent::pg_catalog.regclass::text
                             FROM pg_catalog.pg_inherits i
                             WHERE c.relispartition AND i.inhrelid = c.oid)
           || ' ' || pg_catalog.pg_get_expr(c.relpartbound, c.oid)),
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND c.relkind IN ('r', 'p', 'v', 'm')
  AND c.oid <> ALL(%(excluded)s::pg_catalog.oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
      AND d.deptype = 'e')
"""

# The expression in pg_attrdef is the default of an ordinary column and the generation
# expression of a generated column (attgenerated 's').
_COLUMNS = """
SELECT n.nspname::text, c.relname::text, a.attname::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
         || '.' || pg_catalog.quote_ident(a.attname),
       a.attnum,
       pg_catalog.format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attcollation <> t.typcollation
                 THEN ' COLLATE ' || pg_catalog.quote_ident(cn.nspname) || '.'
                      || pg_catalog.quote_ident(co.collname)
                 ELSE '' END,
       a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END,
       CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END,
       CASE WHEN a.attgenerated = 's' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
WHERE c.relnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND c.oid <> ALL(%(excluded)s::pg_catalog.oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
      AND d.deptype = 'e')
"""

# Not-null constraints (contype 'n', in pg_constraint since PostgreSQL 18) are left out,
# because the column's NOT NULL already shows them.
_CONSTRAINTS = """
SELECT n.nspname::text, c.relname::text, k.conname::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
         || '.' || pg_catalog.quote_ident(k.conname),
       k.contype::text, pg_catalog.pg_get_constraintdef(k.oid)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND c.relkind IN ('r', 'p')
  AND k.contype IN ('p', 'u', 'c', 'x', 'f')
  AND c.oid <> ALL(%(excluded)s::pg_catalog.oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
      AND d.deptype = 'e')
"""

# An index that implements a primary key, unique or exclusion constraint is shown through
# the constraint. An index is always in the schema of its relation.
_INDEXES = """
SELECT n.nspname::text, ic.relname::text, tc.relname::text,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(ic.relname),
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(tc.relname),
       pg_catalog.quote_ident(ic.relname), tc.relkind::text, i.indisunique,
       pg_catalog.pg_get_indexdef(i.indexrelid)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = tc.relnamespace
WHERE tc.relnamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND tc.relkind IN ('r', 'p', 'm')
  AND tc.oid <> ALL(%(excluded)s::pg_catalog.oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_constraint k
    WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
      AND k.contype IN ('p', 'u', 'x'))
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = tc.oid
      AND d.deptype = 'e')
"""

# pg_get_functiondef rejects aggregates, so an aggregate's definition is built from its
# pg_aggregate row: support functions, sort operator, state types and initial values.
# Functions that are part of another object (deptype 'i'), such as the constructors of a
# range type, come with that object.
_ROUTINES = """
SELECT p.oid, n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid),
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname),
       p.prokind::text,
       CASE WHEN p.prokind <> 'p' THEN pg_catalog.pg_get_function_result(p.oid) END,
       CASE WHEN p.prokind = 'a' THEN (
         SELECT pg_catalog.concat_ws(' ', g.aggkind, g.aggnumdirectargs, g.aggtransfn,
                g.aggfinalfn, g.aggcombinefn, g.aggserialfn, g.aggdeserialfn, g.aggmtransfn,
                g.aggminvtransfn, g.aggmfinalfn, g.aggfinalextra, g.aggmfinalextra,
                g.aggfinalmodify, g.aggmfinalmodify, g.aggsortop::pg_catalog.regoperator,
                g.aggtranstype::pg_catalog.regtype, g.aggtransspace,
                g.aggmtranstype::pg_catalog.regtype, g.aggmtransspace,
                'initial ' || g.agginitval, 'moving initial ' || g.aggminitval)
         FROM pg_catalog.pg_aggregate g WHERE g.aggfnoid = p.oid)
       ELSE pg_catalog.pg_get_functiondef(p.oid) END
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.pronamespace = ANY(%(namespaces)s::pg_catalog.oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
      AND d.deptype IN ('e', 'i'))
"""


def _extension(row: tuple[Any, ...]) -> CatalogObject:
    oid, schema, name, label, version = row
    return Extension(schema=schema, name=name, label=label, oid=oid, version=version)


def _type(row: tuple[Any, ...]) -> CatalogObject:
    oid, schema, name, label, typtype, labels, definition = row
    return Type(
        schema=schema,
        name=name,
        label=label,
        oid=oid,
        variety=_TYPE_VARIETIES[typtype],
        labels=tuple(labels),
        definition=definition or "",
    )


def _sequence(row: tuple[Any, ...]) -> CatalogObject:
    oid, schema, name, label, data_type, start, increment, minimum, maximum = row[:9]
    cache, cycle, owned_by = row[9:]
    return Sequence(
        schema=schema,
        name=name,
        label=label,
        oid=oid,
        data_type=data_type,
        start=start,
        increment=increment,
        minimum=minimum,
        maximum=maximum,
        cache=cache,
        cycle=cycle,
        owned_by=owned_by,
    )


def _relation(row: tuple[Any, ...]) -> CatalogObject:
    oid, schema, name, label, relkind, columns, options, definition = row
    kind = _RELATION_KINDS[relkind]
    if kind == "table":
        return Table(
            schema=schema, name=name, label=label, oid=oid, columns=columns, options=options
        )
    return Relation(
        kind=kind, schema=schema, name=name, label=label, oid=oid, definition=definition
    )


def _column(row: tuple[Any, ...]) -> CatalogObject:
    schema, table, name, label, number, data_type, not_null, default, identity, generated = row
    return Column(
        schema=schema,
        relation=table,
        name=name,
        label=label,
        number=number,
        type=data_type,
        not_null=not_null,
        default=default,
        identity=identity,
        generated=generated,
    )


def _constraint(row: tuple[Any, ...]) -> CatalogObject:
    schema, table, name, label, contype, definition = row
    return Constraint(
        kind=_CONSTRAINT_KINDS[contype],
        schema=schema,
        relation=table,
        name=name,
        label=label,
        definition=definition,
    )


def _index(row: tuple[Any, ...]) -> CatalogObject:
    schema, name, table, label, table_label, quoted_name, relkind, unique, definition = row
    return Index(
        schema=schema,
        relation=table,
        relation_kind=_RELATION_KINDS[relkind],
        name=name,
        label=label,
        relation_label=table_label,
        unique=unique,
        method=_index_method(definition, quoted_name, table_label, unique),
    )


def _index_method(definition: str, quoted_name: str, table_label: str, unique: bool) -> str:
    """Return what follows the relation name in ``pg_get_indexdef``, or all of it."""
    prefix = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted_name} ON "
    for head in (f"{prefix}{table_label} ", f"{prefix}ONLY {table_label} "):
        if definition.startswith(head):
            return definition[len(head) :]
    return definition


def _routine(row: tuple[Any, ...]) -> CatalogObject:
    oid, schema, name, arguments, quoted_name, prokind, result, definition = row
    return Routine(
        kind=_ROUTINE_KINDS[prokind],
        schema=schema,
        name=f"{name}({arguments})",
        label=f"{quoted_name}({arguments})",
        oid=oid,
        result=result,
        definition_hash=hashlib.sha256((definition or "").encode()).hexdigest(),
    )


_READERS: tuple[tuple[str, Callable[[tuple[Any, ...]], CatalogObject]], ...] = (
    (_EXTENSIONS, _extension),
    (_TYPES, _type),
    (_SEQUENCES, _sequence),
    (_RELATIONS, _relation),
    (_COLUMNS, _column),
    (_CONSTRAINTS, _constraint),
    (_INDEXES, _index),
    (_ROUTINES, _routine),
)


# ---------------------------------------------------------------------------------------
# Diff, render, summary
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alteration:
    """An object present in both snapshots, and how it changed."""

    before: CatalogObject
    after: CatalogObject
    changes: tuple[str, ...]


@dataclass(frozen=True)
class SchemaDiff:
    """Objects created, altered and dropped between two snapshots, each in key order.

    Columns, constraints and indexes are objects of their own, so a column added to an
    existing table is a created column, and a new table comes with created columns.
    """

    created: tuple[CatalogObject, ...] = ()
    altered: tuple[Alteration, ...] = ()
    dropped: tuple[CatalogObject, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.created or self.altered or self.dropped)


def diff(before: Snapshot, after: Snapshot) -> SchemaDiff:
    """Compare two snapshots of the same database.

    An object whose kind changed, such as a view replaced by a materialized view of the
    same name, is dropped under the old kind and created under the new one.
    """
    created = tuple(item for key, item in after.objects.items() if key not in before.objects)
    dropped = tuple(item for key, item in before.objects.items() if key not in after.objects)
    altered = []
    for key, new in after.objects.items():
        old = before.objects.get(key)
        if old is None:
            continue
        changes = new.changes_from(old)
        if changes:
            altered.append(Alteration(before=old, after=new, changes=tuple(changes)))
    return SchemaDiff(created=created, altered=tuple(altered), dropped=dropped)


# Rendered lines come in sections, in the order a migration usually creates objects. A
# column, constraint or index follows its relation, and views share a section with
# materialized views, so that a view replaced by a materialized view shows as a "-" line
# directly followed by a "+" line.
_SECTIONS = {
    "schema": 0,
    "extension": 1,
    "type": 2,
    "sequence": 3,
    "table": 4,
    "view": 5,
    "materialized_view": 5,
    "function": 6,
    "procedure": 6,
    "aggregate": 6,
}
_MEMBER_RANKS = {
    "column": 1,
    "primary_key": 2,
    "unique_constraint": 3,
    "check_constraint": 4,
    "exclusion_constraint": 5,
    "foreign_key": 6,
    "index": 7,
}
_ACTION_RANKS = {"dropped": 0, "altered": 1, "created": 2}
_SIGNS = {"created": "+", "dropped": "-"}


def render(schema_diff: SchemaDiff) -> str:
    """Render one line per change, each relation followed by its members.

    Lines start with "+" (created), "-" (dropped) or "~" (altered, followed by the changes).
    An empty diff renders as "".
    """
    entries: list[tuple[str, CatalogObject, tuple[str, ...]]] = [
        *(("created", item, ()) for item in schema_diff.created),
        *(("dropped", item, ()) for item in schema_diff.dropped),
        *(("altered", change.after, change.changes) for change in schema_diff.altered),
    ]
    entries.sort(key=lambda entry: _line_order(entry[0], entry[1]))
    return "".join(_line(action, item, changes) + "\n" for action, item, changes in entries)


def _line_order(action: str, item: CatalogObject) -> tuple[Any, ...]:
    owner_kind = item.relation_kind if item.relation else item.kind
    owner_name = item.relation or item.name
    member_rank = _MEMBER_RANKS[item.kind] if item.relation else 0
    return (
        _SECTIONS[owner_kind],
        item.schema,
        owner_name,
        member_rank,
        item.position,
        item.name,
        _ACTION_RANKS[action],
        item.kind,
    )


def _line(action: str, item: CatalogObject, changes: tuple[str, ...]) -> str:
    if action == "altered":
        # The changes name the old and new variant (such as "unique index"), so the line
        # starts with the plain kind.
        return f"~ {item.kind.replace('_', ' ')} {item.label}: {', '.join(changes)}"
    text = f"{_SIGNS[action]} {item.display_kind} {item.label}"
    description = item.describe()
    return f"{text} {description}" if description else text


def summary(schema_diff: SchemaDiff) -> dict[str, dict[str, int]]:
    """Count the changes per kind and action. Every kind of KINDS is present."""
    counts = {kind: dict.fromkeys(ACTIONS, 0) for kind in KINDS}
    for item in schema_diff.created:
        counts[item.kind]["created"] += 1
    for change in schema_diff.altered:
        counts[change.after.kind]["altered"] += 1
    for item in schema_diff.dropped:
        counts[item.kind]["dropped"] += 1
    return counts
