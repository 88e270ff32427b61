# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check pending migrations, before they run, for statements that lock or rewrite tables.

Each rule is a small function over one statement, listed in ``RULES`` under a stable id.
Rules about existing tables ask the catalog whether a table exists and has rows. They also
follow the pending migrations in order. A table that a pending migration creates is new and
empty for every statement after it, and a table that one drops or renames away is gone.

Statements are read with a small tokenizer that follows PostgreSQL's quoting rules, so
quoted identifiers, strings, dollar quotes and comments cannot be mistaken for keywords.
It reads the common forms of each statement, not the full grammar: a form it does not
recognise raises no finding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .execution import PreparedMigration
from .scanner import Statement

LARGE_TABLE_ROWS = 100_000
# Wait limit of the row probe for the table's ACCESS SHARE lock. A table whose lock is not
# granted in time counts as having rows.
ROW_PROBE_LOCK_TIMEOUT = "1s"
IGNORE_DIRECTIVE = "dbops:lint-ignore"

CREATE_INDEX_NOT_CONCURRENTLY = "create-index-not-concurrently"
ADD_COLUMN_NOT_NULL_WITHOUT_DEFAULT = "add-column-not-null-without-default"
ADD_COLUMN_REWRITES_TABLE = "add-column-rewrites-table"
ADD_CONSTRAINT_WITHOUT_NOT_VALID = "add-constraint-without-not-valid"
ALTER_COLUMN_TYPE_REWRITES_TABLE = "alter-column-type-rewrites-table"
DROP_COLUMN = "drop-column"
DROP_TABLE = "drop-table"
RENAME_COLUMN = "rename-column"
RENAME_TABLE = "rename-table"
SET_NOT_NULL_ON_LARGE_TABLE = "set-not-null-on-large-table"
ADD_CONSTRAINT_WITHOUT_USING_INDEX = "add-constraint-without-using-index"
REINDEX_NOT_CONCURRENTLY = "reindex-not-concurrently"
VACUUM_FULL = "vacuum-full"
CLUSTER = "cluster"
NO_TRANSACTION_WITHOUT_LOCK_TIMEOUT = "no-transaction-without-lock-timeout"
LINT_IGNORE_WITHOUT_REASON = "lint-ignore-without-reason"
LINT_IGNORE_UNKNOWN_RULE = "lint-ignore-unknown-rule"


@dataclass(frozen=True)
class Finding:
    """One statement that a rule flags: where it is, why it is unsafe, what to do instead."""

    rule: str
    script: str
    line: int
    why: str
    instead: str

    def as_dict(self) -> dict[str, Any]:
        """Return the finding as a plain dict, for module results."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableFacts:
    """A table, partitioned table or materialized view that exists before the run.

    ``reltuples`` is the planner's row estimate from ``pg_class``, summed over the table, its
    partitions and its inheritance children. A partitioned table's own estimate is left out,
    because since PostgreSQL 14 it repeats its partitions' total. A table never analyzed or
    vacuumed counts 0.
    """

    oid: int
    schema: str
    name: str
    reltuples: float


class Catalog(Protocol):
    """Read-only catalog look-ups that the rules need."""

    def current_schema(self) -> str:
        """Return the schema that an unqualified CREATE TABLE creates its table in."""

    def table(self, written: str) -> TableFacts | None:
        """Return the table that a name as written in SQL resolves to, or None."""

    def has_rows(self, table: TableFacts) -> bool:
        """Tell whether the table has at least one row."""

    def index_table(self, written: str) -> tuple[str, str] | None:
        """Return (schema, table) of the table that an index, named as written in SQL, is on."""

    def column_type(self, table: TableFacts, column: str) -> str | None:
        """Return the column's type as ``format_type()`` spells it, or None if not found."""

    def not_null_checks(self, table: TableFacts) -> set[str]:
        """Return the columns that a validated CHECK (column IS NOT NULL) covers."""

    def volatility(self, functions: Iterable[str]) -> dict[str, str]:
        """Map each function name found to its most volatile ``provolatile`` (i, s or v)."""


_TABLE_QUERY = """
WITH RECURSIVE tree(relid) AS (
    SELECT pg_catalog.to_regclass(%(name)s)::oid
    UNION ALL
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid
)
SELECT c.oid, n.nspname, c.relname,
       (SELECT coalesce(sum(greatest(t.reltuples, 0)), 0)::float8
        FROM tree JOIN pg_catalog.pg_class t ON t.oid = tree.relid WHERE t.relkind <> 'p')
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = pg_catalog.to_regclass(%(name)s) AND c.relkind IN ('r', 'p', 'm')
"""

_NOT_NULL_CHECK = re.compile(r'^CHECK \(\((?P<column>"(?:[^"]|"")+"|[^\s()"]+) IS NOT NULL\)\)$')


class PgCatalog:
    """Catalog look-ups on an open psycopg2 cursor, cached for one lint.

    Every query only reads. The row probe reads one row of the table under a transaction-local
    lock_timeout, so it cannot queue behind a session that holds a strong lock on the table.
    """

    def __init__(self, cursor: Any) -> None:
        if not cursor.connection.autocommit:
            raise ValueError(
                "lint_migrations needs a cursor whose connection is in autocommit mode, so "
                "that its reads hold no locks after they return: set connection.autocommit "
                "= True first."
            )
        self.cursor = cursor
        self._schema: str | None = None
        self._tables: dict[str, TableFacts | None] = {}
        self._rows: dict[int, bool] = {}

    def current_schema(self) -> str:
        if self._schema is None:
            self.cursor.execute("SELECT pg_catalog.current_schema()")
            self._schema = self.cursor.fetchone()[0] or "public"
        return self._schema

    def table(self, written: str) -> TableFacts | None:
        if written not in self._tables:
            self.cursor.execute(_TABLE_QUERY, {"name": written})
            row = self.cursor.fetchone()
            self._tables[written] = TableFacts(*row) if row else None
        return self._tables[written]

    def has_rows(self, table: TableFacts) -> bool:
        if table.oid not in self._rows:
            self._rows[table.oid] = self._probe_rows(table)
        return self._rows[table.oid]

    def index_table(self, written: str) -> tuple[str, str] | None:
        self.cursor.execute(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_index i"
            " JOIN pg_catalog.pg_class c ON c.oid = i.indrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE i.indexrelid = pg_catalog.to_regclass(%s)",
            [written],
        )
        row = self.cursor.fetchone()
        return (row[0], row[1]) if row else None

    def _probe_rows(self, table: TableFacts) -> bool:
        from psycopg2 import errors, sql

        # Both statements go in one simple query, which PostgreSQL runs as one implicit
        # transaction, so the lock_timeout set here ends with it.
        probe = sql.SQL(
            "SELECT pg_catalog.set_config('lock_timeout', %s, true); "
            "SELECT EXISTS (SELECT 1 FROM {} LIMIT 1)"
        ).format(sql.Identifier(table.schema, table.name))
        try:
            self.cursor.execute(probe, [ROW_PROBE_LOCK_TIMEOUT])
        except errors.LockNotAvailable:
            return True
        return bool(self.cursor.fetchone()[0])

    def column_type(self, table: TableFacts, column: str) -> str | None:
        self.cursor.execute(
            "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)"
            " FROM pg_catalog.pg_attribute a"
            " WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
            [table.oid, column],
        )
        row = self.cursor.fetchone()
        return row[0] if row else None

    def not_null_checks(self, table: TableFacts) -> set[str]:
        self.cursor.execute(
            "SELECT pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c"
            " WHERE c.conrelid = %s AND c.contype = 'c' AND c.convalidated",
            [table.oid],
        )
        columns = set()
        for (definition,) in self.cursor.fetchall():
            match = _NOT_NULL_CHECK.match(definition)
            if match:
                columns.add(_identifier_value(match.group("column")))
        return columns

    def volatility(self, functions: Iterable[str]) -> dict[str, str]:
        # provolatile is 'i', 's' or 'v', so max() picks the most volatile overload.
        self.cursor.execute(
            "SELECT proname, max(provolatile::text) FROM pg_catalog.pg_proc"
            " WHERE proname = ANY(%s) GROUP BY proname",
            [sorted(set(functions))],
        )
        return dict(self.cursor.fetchall())


# ---------------------------------------------------------------------------------------------
# Tokens and names
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    """One lexical token of a statement, with ``depth``, the number of parentheses around it."""

    kind: str
    text: str
    start: int
    depth: int

    @property
    def upper(self) -> str:
        """The keyword in upper case, or "" for anything but an unquoted word."""
        return self.text.upper() if self.kind == "word" else ""

    @property
    def is_name(self) -> bool:
        return self.kind in ("word", "quoted")


_WORD = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_QUOTED = re.compile(r'"(?:[^"]|"")*"?')
_STRING = re.compile(r"'(?:[^']|'')*'?")
_ESCAPE_STRING = re.compile(r"[Ee]'(?:[^'\\]|\\.|'')*'?", re.DOTALL)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+")
_OPERATOR = re.compile(r"::|[()\[\],;.]|[^\s\w\"'$()\[\],;.]+|\$\d*")


def _tokenize(text: str) -> list[_Token]:
    """Split statement text into tokens, skipping whitespace and comments."""
    tokens: list[_Token] = []
    depth = 0
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
        elif text.startswith("--", pos):
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
        elif text.startswith("/*", pos):
            pos = _block_comment_end(text, pos)
        else:
            kind, end = _match_token(text, pos)
            if text[pos] == ")":
                depth = max(0, depth - 1)
            tokens.append(_Token(kind, text[pos:end], pos, depth))
            if text[pos] == "(":
                depth += 1
            pos = end
    return tokens


def _block_comment_end(text: str, pos: int) -> int:
    depth = 0
    while pos < len(text):
        if text.startswith("/*", pos):
            depth += 1
            pos += 2
        elif text.startswith("*/", pos):
            depth -= 1
            pos += 2
            if depth == 0:
                return pos
        else:
            pos += 1
    return pos


def _match_token(text: str, pos: int) -> tuple[str, int]:
    char = text[pos]
    if char in "Ee" and text.startswith("'", pos + 1):
        return "string", _ESCAPE_STRING.match(text, pos).end()  # type: ignore[union-attr]
    if char == '"':
        return "quoted", _QUOTED.match(text, pos).end()  # type: ignore[union-attr]
    if char == "'":
        return "string", _STRING.match(text, pos).end()  # type: ignore[union-attr]
    tag = _DOLLAR_TAG.match(text, pos)
    if tag:
        close = text.find(tag.group(0), tag.end())
        return "string", len(text) if close < 0 else close + len(tag.group(0))
    for kind, pattern in (("word", _WORD), ("number", _NUMBER)):
        match = pattern.match(text, pos)
        if match:
            return kind, match.end()
    match = _OPERATOR.match(text, pos)
    return "operator", match.end() if match and match.end() > pos else pos + 1


def _identifier_value(written: str) -> str:
    """Return the name an identifier denotes: quoted ones verbatim, others folded to lower case."""
    if written.startswith('"'):
        return written[1:-1].replace('""', '"')
    return written.lower()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _spell_identifier(name: str) -> str:
    """Return a name as SQL spells it: unquoted when it reads back the same, else quoted."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else _quote_identifier(name)


@dataclass(frozen=True)
class _Name:
    """A possibly schema-qualified name: the identifiers it denotes, and its spelling."""

    parts: tuple[str, ...]
    written: str

    @property
    def last(self) -> str:
        return self.parts[-1]


def _read_name(tokens: list[_Token], index: int) -> tuple[_Name | None, int]:
    """Read a dotted name at ``index`` and return it with the index after it."""
    parts: list[str] = []
    spelled: list[str] = []
    while index < len(tokens) and tokens[index].is_name:
        parts.append(_identifier_value(tokens[index].text))
        spelled.append(tokens[index].text)
        index += 1
        if not (_text_at(tokens, index) == "." and index + 1 < len(tokens)):
            break
        if not tokens[index + 1].is_name:
            break
        index += 1
    if not parts:
        return None, index
    return _Name(tuple(parts), ".".join(spelled)), index


def _text_at(tokens: list[_Token], index: int) -> str:
    return tokens[index].text if index < len(tokens) else ""


def _upper_at(tokens: list[_Token], index: int) -> str:
    return tokens[index].upper if index < len(tokens) else ""


def _skip(tokens: list[_Token], index: int, *words: str) -> int:
    """Return the index after ``words`` if they come next, else ``index``."""
    for offset, word in enumerate(words):
        if _upper_at(tokens, index + offset) != word:
            return index
    return index + len(words)


def _split_top_level(tokens: list[_Token]) -> list[list[_Token]]:
    """Split tokens at the commas outside parentheses, dropping a final semicolon."""
    if tokens and tokens[-1].text == ";":
        tokens = tokens[:-1]
    groups: list[list[_Token]] = [[]]
    for token in tokens:
        if token.text == "," and token.depth == 0:
            groups.append([])
        else:
            groups[-1].append(token)
    return [group for group in groups if group]


def _has_top_level_pair(tokens: list[_Token], first: str, second: str) -> bool:
    return any(
        token.depth == 0 and token.upper == first and _upper_at(tokens, index + 1) == second
        for index, token in enumerate(tokens)
    )


# ---------------------------------------------------------------------------------------------
# Statement forms
# ---------------------------------------------------------------------------------------------

_CONSTRAINT_STARTS = {"CONSTRAINT", "CHECK", "FOREIGN", "PRIMARY", "UNIQUE", "EXCLUDE"}
_COLUMN_CONSTRAINT_STARTS = {
    "NOT",
    "NULL",
    "DEFAULT",
    "CONSTRAINT",
    "CHECK",
    "UNIQUE",
    "PRIMARY",
    "REFERENCES",
    "GENERATED",
    "COLLATE",
    "COMPRESSION",
    "STORAGE",
}
_SERIAL_TYPES = {"SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"}


@dataclass
class _Column:
    """The parts of an ADD COLUMN definition that decide whether it rewrites the table."""

    name: _Name
    type_tokens: list[_Token]
    not_null: bool = False
    default: list[_Token] | None = None
    identity: bool = False
    generated_stored: bool = False

    @property
    def serial(self) -> bool:
        return bool(self.type_tokens) and self.type_tokens[0].upper in _SERIAL_TYPES

    @property
    def has_default(self) -> bool:
        """Tell whether existing rows get a value other than NULL."""
        if self.identity or self.generated_stored or self.serial:
            return True
        return self.default is not None and [t.upper for t in self.default] != ["NULL"]


@dataclass
class _Action:
    """One subcommand of ALTER TABLE."""

    kind: str
    tokens: list[_Token]
    name: _Name | None = None
    new_name: _Name | None = None
    column: _Column | None = None
    type_tokens: list[_Token] = field(default_factory=list)


@dataclass
class _AlterTable:
    table: _Name
    actions: list[_Action]


def _parse_alter_table(tokens: list[_Token]) -> _AlterTable | None:
    if [_upper_at(tokens, 0), _upper_at(tokens, 1)] != ["ALTER", "TABLE"]:
        return None
    index = _skip(tokens, 2, "IF", "EXISTS")
    index = _skip(tokens, index, "ONLY")
    if _upper_at(tokens, index) == "ALL" and _upper_at(tokens, index + 1) == "IN":
        return None
    table, index = _read_name(tokens, index)
    if table is None:
        return None
    if _text_at(tokens, index) == "*":
        index += 1
    actions = [_parse_action(group) for group in _split_top_level(tokens[index:])]
    return _AlterTable(table, actions)


def _parse_action(tokens: list[_Token]) -> _Action:
    head = tokens[0].upper
    parser = _ACTION_PARSERS.get(head)
    return parser(tokens) if parser else _Action("other", tokens)


def _parse_add(tokens: list[_Token]) -> _Action:
    if _upper_at(tokens, 1) in _CONSTRAINT_STARTS:
        name = None
        if tokens[1].upper == "CONSTRAINT":
            name = _read_name(tokens, 2)[0]
        return _Action("add_constraint", tokens, name=name)
    index = _skip(tokens, 1, "COLUMN")
    index = _skip(tokens, index, "IF", "NOT", "EXISTS")
    name, index = _read_name(tokens, index)
    if name is None:
        return _Action("other", tokens)
    return _Action("add_column", tokens, name=name, column=_parse_column(name, tokens[index:]))


def _parse_column(name: _Name, tokens: list[_Token]) -> _Column:
    index = 0
    while index < len(tokens) and not (
        tokens[index].depth == 0 and tokens[index].upper in _COLUMN_CONSTRAINT_STARTS
    ):
        index += 1
    column = _Column(name, tokens[:index])
    rest = tokens[index:]
    column.not_null = _has_top_level_pair(rest, "NOT", "NULL")
    for position, token in enumerate(rest):
        if token.depth != 0:
            continue
        if token.upper == "DEFAULT":
            column.default = _default_expression(rest[position + 1 :])
        elif token.upper == "GENERATED":
            after = [t.upper for t in rest[position:] if t.depth == 0]
            column.identity = "IDENTITY" in after[:5]
            # PostgreSQL 18 adds VIRTUAL generated columns, which are not written to rows.
            column.generated_stored = not column.identity and "STORED" in after
    return column


def _default_expression(tokens: list[_Token]) -> list[_Token]:
    """Return the DEFAULT expression: its first token, then up to the next column constraint."""
    for index, token in enumerate(tokens[1:], start=1):
        if token.depth == 0 and token.upper in _COLUMN_CONSTRAINT_STARTS:
            return tokens[:index]
    return tokens


def _parse_alter_column(tokens: list[_Token]) -> _Action:
    index = _skip(tokens, 1, "COLUMN")
    name, index = _read_name(tokens, index)
    if name is None:
        return _Action("other", tokens)
    if _upper_at(tokens, index) == "TYPE":
        return _Action("alter_type", tokens, name=name, type_tokens=tokens[index + 1 :])
    if [_upper_at(tokens, index + offset) for offset in range(3)] == ["SET", "DATA", "TYPE"]:
        return _Action("alter_type", tokens, name=name, type_tokens=tokens[index + 3 :])
    if [_upper_at(tokens, index + offset) for offset in range(3)] == ["SET", "NOT", "NULL"]:
        return _Action("set_not_null", tokens, name=name)
    return _Action("other", tokens, name=name)


def _parse_drop(tokens: list[_Token]) -> _Action:
    if _upper_at(tokens, 1) == "CONSTRAINT":
        return _Action("other", tokens)
    index = _skip(tokens, 1, "COLUMN")
    index = _skip(tokens, index, "IF", "EXISTS")
    name = _read_name(tokens, index)[0]
    return _Action("drop_column", tokens, name=name) if name else _Action("other", tokens)


def _parse_rename(tokens: list[_Token]) -> _Action:
    if _upper_at(tokens, 1) == "TO":
        new_name = _read_name(tokens, 2)[0]
        return _Action("rename_table", tokens, new_name=new_name)
    if _upper_at(tokens, 1) == "CONSTRAINT":
        return _Action("other", tokens)
    index = _skip(tokens, 1, "COLUMN")
    name, index = _read_name(tokens, index)
    new_name = _read_name(tokens, _skip(tokens, index, "TO"))[0]
    return _Action("rename_column", tokens, name=name, new_name=new_name)


def _parse_validate(tokens: list[_Token]) -> _Action:
    if _upper_at(tokens, 1) != "CONSTRAINT":
        return _Action("other", tokens)
    name = _read_name(tokens, 2)[0]
    return _Action("validate", tokens, name=name)


_ACTION_PARSERS: dict[str, Callable[[list[_Token]], _Action]] = {
    "ADD": _parse_add,
    "ALTER": _parse_alter_column,
    "DROP": _parse_drop,
    "RENAME": _parse_rename,
    "VALIDATE": _parse_validate,
}


@dataclass
class _Index:
    table: _Name
    concurrently: bool


def _parse_create_index(tokens: list[_Token]) -> _Index | None:
    index = _skip(tokens, 1, "UNIQUE")
    if _upper_at(tokens, 0) != "CREATE" or _upper_at(tokens, index) != "INDEX":
        return None
    concurrently = _upper_at(tokens, index + 1) == "CONCURRENTLY"
    for position, token in enumerate(tokens):
        if token.depth == 0 and token.upper == "ON":
            table = _read_name(tokens, _skip(tokens, position + 1, "ONLY"))[0]
            return _Index(table, concurrently) if table else None
    return None


def _parse_create_table(tokens: list[_Token]) -> tuple[_Name, bool] | None:
    """Return the name of the table that CREATE TABLE creates, and whether IF NOT EXISTS."""
    if _upper_at(tokens, 0) != "CREATE":
        return None
    index = 1
    index = _skip(tokens, index, "GLOBAL")
    index = _skip(tokens, index, "LOCAL")
    while _upper_at(tokens, index) in ("TEMP", "TEMPORARY", "UNLOGGED"):
        index += 1
    if _upper_at(tokens, index) != "TABLE":
        return None
    after = _skip(tokens, index + 1, "IF", "NOT", "EXISTS")
    name = _read_name(tokens, after)[0]
    return (name, after != index + 1) if name else None


def _parse_drop_table(tokens: list[_Token]) -> list[_Name]:
    if [_upper_at(tokens, 0), _upper_at(tokens, 1)] != ["DROP", "TABLE"]:
        return []
    groups = _split_top_level(tokens[_skip(tokens, 2, "IF", "EXISTS") :])
    names = [_read_name(group, 0)[0] for group in groups]
    return [name for name in names if name is not None]


# Values that turn a boolean option of VACUUM, REINDEX or CLUSTER off.
_FALSE_VALUES = {"FALSE", "OFF", "0", "'FALSE'", "'OFF'", "'0'"}


def _read_options(tokens: list[_Token], index: int) -> tuple[dict[str, bool], int]:
    """Read a parenthesized option list such as ``(FULL, VERBOSE false)`` at ``index``.

    Return each option's name with whether it is on, and the index after the list. Without
    a list at ``index``, return no options and ``index``.
    """
    if _text_at(tokens, index) != "(":
        return {}, index
    end = index + 1
    while end < len(tokens) and not (tokens[end].text == ")" and tokens[end].depth == 0):
        end += 1
    options = {}
    groups: list[list[_Token]] = [[]]
    for token in tokens[index + 1 : end]:
        if token.text == "," and token.depth == 1:
            groups.append([])
        else:
            groups[-1].append(token)
    for group in groups:
        if group:
            value = group[1].text.upper() if len(group) > 1 else "TRUE"
            options[group[0].text.upper()] = value not in _FALSE_VALUES
    return options, end + 1


@dataclass
class _Reindex:
    kind: str
    name: _Name | None
    concurrently: bool


def _parse_reindex(tokens: list[_Token]) -> _Reindex | None:
    if _upper_at(tokens, 0) != "REINDEX":
        return None
    options, index = _read_options(tokens, 1)
    kind = _upper_at(tokens, index)
    if kind not in ("INDEX", "TABLE", "SCHEMA", "DATABASE", "SYSTEM"):
        return None
    concurrently = options.get("CONCURRENTLY", False)
    if _upper_at(tokens, index + 1) == "CONCURRENTLY":
        concurrently = True
        index += 1
    name = _read_name(tokens, index + 1)[0]
    return _Reindex(kind, name, concurrently)


def _parse_vacuum_full(tokens: list[_Token]) -> list[_Name] | None:
    """Return the tables that VACUUM FULL names, [] for all tables, or None for other VACUUMs."""
    if _upper_at(tokens, 0) != "VACUUM":
        return None
    options, index = _read_options(tokens, 1)
    full = options.get("FULL", False)
    while _upper_at(tokens, index) in ("FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"):
        full = full or tokens[index].upper == "FULL"
        index += 1
    if not full:
        return None
    names = [_read_name(group, 0)[0] for group in _split_top_level(tokens[index:])]
    return [name for name in names if name is not None]


def _parse_cluster(tokens: list[_Token]) -> list[_Name] | None:
    """Return the table that CLUSTER names, [] for all tables, or None for other statements."""
    if _upper_at(tokens, 0) != "CLUSTER":
        return None
    index = _read_options(tokens, 1)[1]
    index = _skip(tokens, index, "VERBOSE")
    name, index = _read_name(tokens, index)
    if name is None:
        return []
    # The old form CLUSTER index_name ON table_name names the index first.
    if _upper_at(tokens, index) == "ON":
        name = _read_name(tokens, index + 1)[0]
    return [name] if name is not None else []


@dataclass
class _View:
    """A statement with the parsed forms that the rules look at."""

    statement: Statement
    alter: _AlterTable | None
    index: _Index | None
    created: tuple[_Name, bool] | None
    dropped: list[_Name]
    reindex: _Reindex | None = None
    # Tables that VACUUM FULL or CLUSTER rewrite, [] for every table, None for other statements.
    vacuum_full: list[_Name] | None = None
    cluster: list[_Name] | None = None

    @classmethod
    def of(cls, statement: Statement) -> _View:
        tokens = _tokenize(statement.text)
        return cls(
            statement=statement,
            alter=_parse_alter_table(tokens),
            index=_parse_create_index(tokens),
            created=_parse_create_table(tokens),
            dropped=_parse_drop_table(tokens),
            reindex=_parse_reindex(tokens),
            vacuum_full=_parse_vacuum_full(tokens),
            cluster=_parse_cluster(tokens),
        )

    def actions(self, kind: str) -> list[_Action]:
        return [a for a in self.alter.actions if a.kind == kind] if self.alter else []

    def line_of(self, token: _Token) -> int:
        return self.statement.line + self.statement.text.count("\n", 0, token.start)


# ---------------------------------------------------------------------------------------------
# Run state
# ---------------------------------------------------------------------------------------------

_NEW = "new"
_GONE = "gone"


class _Tables:
    """Tables as the pending migrations leave them, statement by statement, over the catalog.

    Keys are (schema, table); an unqualified name is taken to be in the session's current
    schema. A key maps to _NEW (created in this run), _GONE (dropped or renamed away), or the
    name under which the catalog lists a renamed table.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.changes: dict[tuple[str, str], str] = {}

    def key(self, name: _Name) -> tuple[str, str]:
        schema = name.parts[-2] if len(name.parts) > 1 else self.catalog.current_schema()
        return schema, name.last

    def existing(self, name: _Name) -> TableFacts | None:
        """Return the catalog's facts if the table existed before the run and still does."""
        change = self.changes.get(self.key(name))
        if change in (_NEW, _GONE):
            return None
        return self.catalog.table(change or name.written)

    def create(self, name: _Name, if_not_exists: bool) -> None:
        if if_not_exists and self.existing(name) is not None:
            return
        self.changes[self.key(name)] = _NEW

    def drop(self, name: _Name) -> None:
        self.changes[self.key(name)] = _GONE

    def rename(self, name: _Name, new_name: _Name) -> None:
        old_key = self.key(name)
        facts = self.existing(name)
        self.changes[old_key] = _GONE
        new_key = (old_key[0], new_name.last)
        if facts is None:
            self.changes[new_key] = _NEW
        else:
            spelled = f"{_quote_identifier(facts.schema)}.{_quote_identifier(facts.name)}"
            self.changes[new_key] = spelled


@dataclass
class _Run:
    """State of the lint while it walks the pending migrations in order."""

    catalog: Catalog
    server_version: int
    large_table_rows: int
    tables: _Tables
    prepared: PreparedMigration | None = None
    # Named CHECK (column IS NOT NULL) constraints seen in the run: (table key, name) -> column.
    not_null_checks: dict[tuple[tuple[str, str], str], str] = field(default_factory=dict)
    proven_not_null: set[tuple[tuple[str, str], str]] = field(default_factory=set)
    not_valid_in_migration: set[tuple[tuple[str, str], str]] = field(default_factory=set)
    lock_timeout_set: bool = False

    def start(self, prepared: PreparedMigration) -> None:
        self.prepared = prepared
        self.not_valid_in_migration = set()
        self.lock_timeout_set = False

    def table_with_rows(self, name: _Name) -> TableFacts | None:
        """Return the table's facts if it existed before the run and has rows."""
        facts = self.tables.existing(name)
        return facts if facts is not None and self.catalog.has_rows(facts) else None


@dataclass(frozen=True)
class _Hit:
    line: int
    why: str
    instead: str


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


def _create_index_not_concurrently(run: _Run, view: _View) -> list[_Hit]:
    index = view.index
    if index is None or index.concurrently or run.table_with_rows(index.table) is None:
        return []
    table = index.table.written
    return [
        _Hit(
            view.statement.line,
            f"CREATE INDEX on {table}, which has rows, takes a SHARE lock that blocks inserts, "
            f"updates and deletes on {table} until the index is built.",
            "Use CREATE INDEX CONCURRENTLY, in a migration of its own that starts with "
            "-- dbops:no-transaction.",
        )
    ]


def _add_column_not_null_without_default(run: _Run, view: _View) -> list[_Hit]:
    hits = []
    for action in view.actions("add_column"):
        column = action.column
        if view.alter is None or column is None:
            raise AssertionError
        if not column.not_null or column.has_default:
            continue
        if run.tables.existing(view.alter.table) is None:
            continue
        name, table = column.name.written, view.alter.table.written
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"ADD COLUMN {name} NOT NULL without a default fails if {table} has rows, "
                f"and otherwise makes every insert that omits {name}, such as those of the "
                "running application, fail.",
                f"Add {name} as nullable or with a default, backfill it, then set NOT NULL "
                "in a later migration.",
            )
        )
    return hits


_KEYWORD_CALLS = {
    "CAST",
    "COALESCE",
    "NULLIF",
    "GREATEST",
    "LEAST",
    "ROW",
    "ARRAY",
    "EXTRACT",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "LOCALTIME",
    "LOCALTIMESTAMP",
}


def _called_functions(tokens: list[_Token]) -> list[str]:
    """Return the names of the functions an expression calls, in order, without duplicates."""
    names: list[str] = []
    for index, token in enumerate(tokens[:-1]):
        if not token.is_name or tokens[index + 1].text != "(":
            continue
        previous = tokens[index - 1].text.upper() if index > 0 else ""
        if previous in ("::", "AS") or token.upper in _KEYWORD_CALLS:
            continue
        name = _identifier_value(token.text)
        if name not in names:
            names.append(name)
    return names


def _rewrite_reason(run: _Run, column: _Column) -> str | None:
    """Say why adding ``column`` rewrites the table, or return None if it does not."""
    if column.identity:
        return "an identity column gets a value from its sequence in every row"
    if column.generated_stored:
        return "a stored generated column is computed for every row"
    if column.serial:
        return "the default nextval() of a serial column is volatile"
    if not column.has_default:
        return None
    if column.default is None:
        raise AssertionError
    if run.server_version < 110000:
        return "before PostgreSQL 11 a default other than NULL is written into every row"
    functions = _called_functions(column.default)
    known = run.catalog.volatility(functions) if functions else {}
    volatile = [f"{name}()" for name in functions if known.get(name) == "v"]
    if volatile:
        verb = "is" if len(volatile) == 1 else "are"
        return f"its default calls {', '.join(volatile)}, which {verb} volatile"
    unknown = [f"{name}()" for name in functions if name not in known]
    if unknown:
        return (
            f"its default calls {', '.join(unknown)}, which the catalog does not have yet, "
            "so the default may be volatile"
        )
    return None


def _add_column_rewrites_table(run: _Run, view: _View) -> list[_Hit]:
    hits = []
    for action in view.actions("add_column"):
        column = action.column
        if view.alter is None or column is None:
            raise AssertionError
        if not column.has_default or run.table_with_rows(view.alter.table) is None:
            continue
        reason = _rewrite_reason(run, column)
        if reason is None:
            continue
        name, table = column.name.written, view.alter.table.written
        if run.server_version < 110000:
            instead = (
                f"Add {name} without a default, set the default with ALTER COLUMN {name} SET "
                "DEFAULT, and backfill existing rows in batches."
            )
        else:
            instead = (
                f"Add {name} without a default, or with a constant or stable one, then fill "
                "existing rows in batches and set the volatile default for new rows."
            )
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"ADD COLUMN {name} on {table}, which has rows, rewrites the whole table under "
                f"an ACCESS EXCLUSIVE lock, which blocks reads and writes, because {reason}.",
                instead,
            )
        )
    return hits


def _constraint_kind(action: _Action) -> str | None:
    words = [t.upper for t in action.tokens if t.depth == 0]
    if "FOREIGN" in words:
        return "FOREIGN KEY"
    if "CHECK" in words:
        return "CHECK"
    return None


def _not_valid(action: _Action) -> bool:
    return _has_top_level_pair(action.tokens, "NOT", "VALID")


def _add_constraint_without_not_valid(run: _Run, view: _View) -> list[_Hit]:
    if view.alter is None:
        return []
    hits = []
    table = view.alter.table
    for action in view.actions("add_constraint"):
        kind = _constraint_kind(action)
        if kind is None or _not_valid(action) or run.table_with_rows(table) is None:
            continue
        if kind == "CHECK":
            lock = f"an ACCESS EXCLUSIVE lock on {table.written}, which blocks reads and writes"
        else:
            lock = "a SHARE ROW EXCLUSIVE lock on both tables, which blocks writes to them"
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"ADD {kind} constraint on {table.written}, which has rows, checks every row "
                f"while it holds {lock}.",
                "Add the constraint with NOT VALID, then run VALIDATE CONSTRAINT in a later "
                "migration: validation takes a lock that lets reads and writes go on.",
            )
        )
    hits.extend(_validated_in_same_transaction(run, view))
    return hits


def _validated_in_same_transaction(run: _Run, view: _View) -> list[_Hit]:
    if view.alter is None:
        raise AssertionError
    table = view.alter.table
    hits = []
    for action in view.actions("validate"):
        if action.name is None:
            continue
        if (run.tables.key(table), action.name.last) not in run.not_valid_in_migration:
            continue
        if run.table_with_rows(table) is None:
            continue
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"VALIDATE CONSTRAINT {action.name.written} runs in the transaction that added "
                f"it NOT VALID, so the scan of {table.written} happens while that transaction "
                "still holds the lock taken by ADD CONSTRAINT.",
                "Move VALIDATE CONSTRAINT to a later migration.",
            )
        )
    return hits


_TYPE_ALIASES = {
    "character varying": "varchar",
    "varchar": "varchar",
    "text": "text",
    "numeric": "numeric",
    "decimal": "numeric",
}
_TYPE_TEXT = re.compile(r"^(?:pg_catalog\.)?(?P<base>[a-z ]+?)\s*(?:\((?P<mods>[\d ,]+)\))?$")


def _parse_type(text: str) -> tuple[str, tuple[int, ...]] | None:
    """Return (base type, modifiers) for varchar, text and numeric types, else None."""
    match = _TYPE_TEXT.match(" ".join(text.lower().split()))
    if not match or match.group("base") not in _TYPE_ALIASES:
        return None
    mods = match.group("mods")
    numbers = tuple(int(part) for part in mods.split(",")) if mods else ()
    return _TYPE_ALIASES[match.group("base")], numbers


def _binary_coercible(old: str, new: str) -> bool:
    """Tell whether changing type ``old`` to ``new`` is known to need no rewrite."""
    before, after = _parse_type(old), _parse_type(new)
    if before is None or after is None:
        return False
    (old_base, old_mods), (new_base, new_mods) = before, after
    if before == after:
        return True
    if new_base == "text":
        return old_base in ("varchar", "text")
    if new_base == "varchar":
        if not new_mods:
            return old_base in ("varchar", "text")
        return old_base == "varchar" and bool(old_mods) and new_mods[0] >= old_mods[0]
    if new_base == "numeric" and old_base == "numeric":
        if not new_mods:
            return True
        old_scale = old_mods[1] if len(old_mods) > 1 else 0
        new_scale = new_mods[1] if len(new_mods) > 1 else 0
        return bool(old_mods) and new_scale == old_scale and new_mods[0] >= old_mods[0]
    return False


def _type_change_detail(run: _Run, facts: TableFacts, view: _View, action: _Action) -> str | None:
    """Say why a type change rewrites the table, or return None if it is known not to."""
    if action.name is None:
        raise AssertionError
    type_tokens = []
    for token in action.type_tokens:
        if token.depth == 0 and token.upper in ("USING", "COLLATE"):
            break
        type_tokens.append(token)
    if any(token.depth == 0 and token.upper == "USING" for token in action.type_tokens):
        return "USING computes a new value for every row"
    if not type_tokens:
        return "the new type could not be read"
    end = type_tokens[-1].start + len(type_tokens[-1].text)
    new_type = " ".join(view.statement.text[type_tokens[0].start : end].split())
    old_type = run.catalog.column_type(facts, action.name.last)
    if old_type is None:
        return f"the current type of {action.name.written} is not in the catalog"
    if _binary_coercible(old_type, new_type):
        return None
    return f"{old_type} to {new_type} is not one of the changes known to need no rewrite"


def _alter_column_type_rewrites_table(run: _Run, view: _View) -> list[_Hit]:
    actions = view.actions("alter_type")
    if not actions:
        return []
    if view.alter is None:
        raise AssertionError
    facts = run.table_with_rows(view.alter.table)
    if facts is None:
        return []
    hits = []
    for action in actions:
        detail = _type_change_detail(run, facts, view, action)
        if detail is None:
            continue
        if action.name is None:
            raise AssertionError
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"ALTER COLUMN {action.name.written} TYPE on {view.alter.table.written}, which "
                "has rows, rewrites the table and rebuilds its indexes under an ACCESS "
                f"EXCLUSIVE lock, which blocks reads and writes, because {detail}.",
                "Add a column of the new type, backfill it in batches and keep it in step with "
                "a trigger, then switch the application over and drop the old column.",
            )
        )
    return hits


def _drop_column(run: _Run, view: _View) -> list[_Hit]:
    actions = view.actions("drop_column")
    if not actions:
        return []
    if view.alter is None:
        raise AssertionError
    table = view.alter.table
    if run.tables.existing(table) is None:
        return []
    hits = []
    for action in actions:
        if action.name is None:
            raise AssertionError
        name = action.name.written
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"DROP COLUMN {name} on {table.written} breaks running application code that "
                f"still reads or writes {name}, and its data is gone once the migration commits.",
                "Stop using the column in every deployed version of the application, then "
                "drop it in a later release.",
            )
        )
    return hits


def _drop_table(run: _Run, view: _View) -> list[_Hit]:
    return [
        _Hit(
            view.statement.line,
            f"DROP TABLE {name.written} removes a table that exists before this run, with its "
            "data, and running application code that uses it fails.",
            "Stop using the table in every deployed version of the application, keep a copy "
            "of its data, then drop it in a later release.",
        )
        for name in view.dropped
        if run.tables.existing(name) is not None
    ]


def _rename_column(run: _Run, view: _View) -> list[_Hit]:
    actions = view.actions("rename_column")
    if not actions or view.alter is None or run.tables.existing(view.alter.table) is None:
        return []
    hits = []
    for action in actions:
        old = action.name.written if action.name else "?"
        new = action.new_name.written if action.new_name else "?"
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"RENAME COLUMN {old} TO {new} on {view.alter.table.written} breaks running "
                f"application code that still uses {old}.",
                f"Add {new} and write to both columns until no deployed code uses {old}, "
                "then drop it; or keep the name.",
            )
        )
    return hits


def _rename_table(run: _Run, view: _View) -> list[_Hit]:
    actions = view.actions("rename_table")
    if not actions or view.alter is None or run.tables.existing(view.alter.table) is None:
        return []
    table = view.alter.table.written
    new = actions[0].new_name.written if actions[0].new_name else "?"
    return [
        _Hit(
            view.line_of(actions[0].tokens[0]),
            f"Renaming {table} to {new} breaks running application code that still uses {table}.",
            f"After the rename, create a view named {table} over {new} (a simple view accepts "
            "inserts and updates) until no deployed code uses the old name; or keep the name.",
        )
    ]


def _set_not_null_on_large_table(run: _Run, view: _View) -> list[_Hit]:
    actions = view.actions("set_not_null")
    if not actions:
        return []
    if view.alter is None:
        raise AssertionError
    table = view.alter.table
    facts = run.tables.existing(table)
    if facts is None or facts.reltuples < run.large_table_rows:
        return []
    hits = []
    for action in actions:
        if action.name is None:
            raise AssertionError
        if run.server_version >= 120000 and _proven_not_null(run, table, facts, action.name):
            continue
        hits.append(_set_not_null_hit(run, view, facts, action))
    return hits


def _proven_not_null(run: _Run, table: _Name, facts: TableFacts, column: _Name) -> bool:
    if (run.tables.key(table), column.last) in run.proven_not_null:
        return True
    return column.last in run.catalog.not_null_checks(facts)


def _set_not_null_hit(run: _Run, view: _View, facts: TableFacts, action: _Action) -> _Hit:
    if view.alter is None or action.name is None:
        raise AssertionError
    column = action.name.written
    if run.server_version >= 120000:
        instead = (
            f"First add a CHECK ({column} IS NOT NULL) NOT VALID constraint, validate it in a "
            "later migration, then SET NOT NULL: PostgreSQL 12 and later skip the scan when "
            "a validated check proves the column has no NULLs. Drop the check afterwards."
        )
    else:
        instead = (
            "Before PostgreSQL 12, SET NOT NULL always scans the table. Keep the column "
            f"nullable with a CHECK ({column} IS NOT NULL) constraint added NOT VALID and "
            "validated in a later migration, or run this in a maintenance window."
        )
    return _Hit(
        view.line_of(action.tokens[0]),
        f"SET NOT NULL on {column} of {view.alter.table.written}, about "
        f"{int(facts.reltuples)} rows by pg_class.reltuples, scans every row under an "
        "ACCESS EXCLUSIVE lock, which blocks reads and writes.",
        instead,
    )


def _key_kind(action: _Action) -> tuple[str, int] | None:
    """Return "UNIQUE" or "PRIMARY KEY" for such a constraint, with the token position after it."""
    index = 1
    if _upper_at(action.tokens, index) == "CONSTRAINT":
        index = _read_name(action.tokens, index + 1)[1]
    if _upper_at(action.tokens, index) == "UNIQUE":
        return "UNIQUE", index + 1
    if _skip(action.tokens, index, "PRIMARY", "KEY") != index:
        return "PRIMARY KEY", index + 2
    return None


def _builds_index(action: _Action) -> str | None:
    """Return the kind of a UNIQUE or PRIMARY KEY constraint that builds its own index."""
    found = _key_kind(action)
    if found is None:
        return None
    kind, index = found
    # The USING INDEX form follows the kind directly. After a column list, USING INDEX
    # TABLESPACE only places the index that the constraint builds.
    return None if _skip(action.tokens, index, "USING", "INDEX") != index else kind


def _add_constraint_without_using_index(run: _Run, view: _View) -> list[_Hit]:
    if view.alter is None:
        return []
    table = view.alter.table
    hits = []
    for action in view.actions("add_constraint"):
        kind = _builds_index(action)
        if kind is None or run.table_with_rows(table) is None:
            continue
        instead = (
            "Build the index with CREATE UNIQUE INDEX CONCURRENTLY in a migration of its own "
            "that starts with -- dbops:no-transaction, then add the constraint in a later "
            f"migration with ADD CONSTRAINT name {kind} USING INDEX index_name, which takes "
            "the lock only briefly."
        )
        if kind == "PRIMARY KEY":
            instead += (
                " Make the key columns NOT NULL first, because otherwise USING INDEX sets them "
                "NOT NULL, which scans the table under the lock."
            )
        hits.append(
            _Hit(
                view.line_of(action.tokens[0]),
                f"ADD {kind} on {table.written}, which has rows, builds a unique index while it "
                f"holds an ACCESS EXCLUSIVE lock on {table.written}, which blocks reads and "
                "writes until the index is built.",
                instead,
            )
        )
    return hits


def _reindex_target(run: _Run, reindex: _Reindex) -> str | None:
    """Return the table whose locks matter, "" for a whole schema or database, or None."""
    if reindex.kind in ("SCHEMA", "DATABASE"):
        return ""
    if reindex.name is None:
        return None
    if reindex.kind == "TABLE":
        return reindex.name.written if run.table_with_rows(reindex.name) else None
    if reindex.kind != "INDEX":
        return None
    # NOTE: an index is looked up in the catalog as it was before the run, so an index that
    # an earlier statement of the run created, or whose table it renamed, is not followed.
    found = run.catalog.index_table(reindex.name.written)
    if found is None:
        return None
    spelled = ".".join(_spell_identifier(part) for part in found)
    table = _Name(found, spelled)
    return spelled if run.table_with_rows(table) else None


_PLANNER_LOCKS = (
    "The planner locks every index of a table that a query reads, so almost every query on "
    "the table waits too."
)


def _reindex_not_concurrently(run: _Run, view: _View) -> list[_Hit]:
    reindex = view.reindex
    if reindex is None or reindex.concurrently or run.server_version < 120000:
        return []
    table = _reindex_target(run, reindex)
    if table is None:
        return []
    name = reindex.name.written if reindex.name else ""
    target = f"{reindex.kind} {name}".rstrip()
    if reindex.kind == "INDEX":
        why = (
            f"REINDEX INDEX {name}, on {table}, which has rows, holds a SHARE lock on {table}, "
            f"which blocks inserts, updates and deletes, and an ACCESS EXCLUSIVE lock on {name}, "
            f"which blocks every query that uses it. {_PLANNER_LOCKS}"
        )
    elif reindex.kind == "TABLE":
        why = (
            f"REINDEX TABLE {name}, which has rows, holds a SHARE lock on {name}, which blocks "
            "inserts, updates and deletes, and an ACCESS EXCLUSIVE lock on each index it "
            f"rebuilds, which blocks every query that uses that index. {_PLANNER_LOCKS}"
        )
    else:
        why = (
            f"REINDEX {target} rebuilds the indexes of every table in it. On each table it "
            "holds a SHARE lock, which blocks inserts, updates and deletes, and ACCESS "
            f"EXCLUSIVE locks on the indexes, which block the queries that use them. "
            f"{_PLANNER_LOCKS}"
        )
    tables = "each table" if table == "" else "the table"
    return [
        _Hit(
            view.statement.line,
            why,
            f"Use REINDEX {reindex.kind} CONCURRENTLY, in a migration of its own that starts "
            f"with -- dbops:no-transaction: it takes a SHARE UPDATE EXCLUSIVE lock on {tables}, "
            "which lets reads and writes go on.",
        )
    ]


def _vacuum_full(run: _Run, view: _View) -> list[_Hit]:
    if view.vacuum_full is None:
        return []
    instead = (
        "Reclaim the space outside the migrations with a tool that rewrites a table online "
        "and holds an ACCESS EXCLUSIVE lock only briefly, such as pg_repack --no-order; or "
        "run VACUUM FULL in a maintenance window."
    )
    if not view.vacuum_full:
        why = (
            "VACUUM FULL without a table name rewrites every table of the database, one at a "
            "time, each under an ACCESS EXCLUSIVE lock, which blocks reads and writes on it "
            "until its rewrite ends."
        )
        return [_Hit(view.statement.line, why, instead)]
    return [
        _Hit(
            view.statement.line,
            f"VACUUM FULL {name.written}, which has rows, writes a new copy of the table and "
            "its indexes under an ACCESS EXCLUSIVE lock, which blocks reads and writes until "
            "it ends.",
            instead,
        )
        for name in view.vacuum_full
        if run.table_with_rows(name) is not None
    ]


def _cluster(run: _Run, view: _View) -> list[_Hit]:
    if view.cluster is None:
        return []
    instead = (
        "Reorder the table outside the migrations with a tool that rewrites a table online "
        "and holds an ACCESS EXCLUSIVE lock only briefly, such as pg_repack, which orders "
        "rows by the clustered index by default; or run CLUSTER in a maintenance window."
    )
    if not view.cluster:
        why = (
            "CLUSTER without a table name rewrites every table of the database that was "
            "clustered before, one at a time, each under an ACCESS EXCLUSIVE lock, which "
            "blocks reads and writes on it until its rewrite ends."
        )
        return [_Hit(view.statement.line, why, instead)]
    return [
        _Hit(
            view.statement.line,
            f"CLUSTER {name.written}, which has rows, writes a new copy of the table in index "
            "order and rebuilds its indexes under an ACCESS EXCLUSIVE lock, which blocks "
            "reads and writes until it ends.",
            instead,
        )
        for name in view.cluster
        if run.table_with_rows(name) is not None
    ]


_RELATION_KINDS = {"TABLE", "INDEX", "VIEW", "MATERIALIZED", "SEQUENCE", "FOREIGN"}


def _takes_strong_lock(view: _View) -> bool:
    """Tell whether a statement takes a lock that blocks writes to a table or relation."""
    words = view.statement.words
    if words[:2] == ["ALTER", "TABLE"]:
        return not ("DETACH" in words and "CONCURRENTLY" in words)
    if words[:1] == ["DROP"] and words[1:2] and words[1] in _RELATION_KINDS:
        return words[1:3] != ["INDEX", "CONCURRENTLY"]
    if view.reindex is not None:
        return not view.reindex.concurrently
    if view.vacuum_full is not None or view.cluster is not None:
        return True
    return view.index is not None and not view.index.concurrently


def _no_transaction_without_lock_timeout(run: _Run, view: _View) -> list[_Hit]:
    if run.prepared is None:
        raise AssertionError
    if not run.prepared.no_transaction or run.lock_timeout_set or not _takes_strong_lock(view):
        return []
    return [
        _Hit(
            view.statement.line,
            f"{view.statement.summary} takes a strong lock in a no-transaction migration that "
            "sets no lock_timeout before it: only the module's lock_timeout option limits "
            "its wait, while later queries on the table queue behind it, and a failure leaves "
            "the statements before it committed.",
            "Put SET lock_timeout = '...' before it in this file, or move it to a migration "
            "that runs in a transaction.",
        )
    ]


RULES: dict[str, Callable[[_Run, _View], list[_Hit]]] = {
    CREATE_INDEX_NOT_CONCURRENTLY: _create_index_not_concurrently,
    ADD_COLUMN_NOT_NULL_WITHOUT_DEFAULT: _add_column_not_null_without_default,
    ADD_COLUMN_REWRITES_TABLE: _add_column_rewrites_table,
    ADD_CONSTRAINT_WITHOUT_NOT_VALID: _add_constraint_without_not_valid,
    ALTER_COLUMN_TYPE_REWRITES_TABLE: _alter_column_type_rewrites_table,
    DROP_COLUMN: _drop_column,
    DROP_TABLE: _drop_table,
    RENAME_COLUMN: _rename_column,
    RENAME_TABLE: _rename_table,
    SET_NOT_NULL_ON_LARGE_TABLE: _set_not_null_on_large_table,
    ADD_CONSTRAINT_WITHOUT_USING_INDEX: _add_constraint_without_using_index,
    REINDEX_NOT_CONCURRENTLY: _reindex_not_concurrently,
    VACUUM_FULL: _vacuum_full,
    CLUSTER: _cluster,
    NO_TRANSACTION_WITHOUT_LOCK_TIMEOUT: _no_transaction_without_lock_timeout,
}


# ---------------------------------------------------------------------------------------------
# Following the run
# ---------------------------------------------------------------------------------------------

_LOCK_TIMEOUT = re.compile(
    r"^SET\s+(?:SESSION\s+)?lock_timeout\s*(?:=|TO)\s*(?P<value>'[^']*'|\S+?)\s*;?\s*$",
    re.IGNORECASE,
)
_LOCK_TIMEOUT_RESET = re.compile(r"^RESET\s+(?:ALL|lock_timeout)\b", re.IGNORECASE)
# Values, upper-cased, that set no limit at all.
_NO_LIMIT = {"0", "'0'", "DEFAULT", "'0S'", "'0MS'"}


def _follow(run: _Run, view: _View) -> None:
    """Record what a statement changes that later statements' rules depend on."""
    if view.created is not None:
        run.tables.create(*view.created)
    for name in view.dropped:
        run.tables.drop(name)
    if view.alter is not None:
        _follow_constraints(run, view.alter)
        for action in view.alter.actions:
            if action.kind == "rename_table" and action.new_name is not None:
                run.tables.rename(view.alter.table, action.new_name)
    _follow_lock_timeout(run, view.statement)


def _follow_constraints(run: _Run, alter: _AlterTable) -> None:
    key = run.tables.key(alter.table)
    for action in alter.actions:
        if action.kind == "validate" and action.name is not None:
            constraint = (key, action.name.last)
            if constraint in run.not_null_checks:
                run.proven_not_null.add((key, run.not_null_checks[constraint]))
        if action.kind != "add_constraint":
            continue
        if _not_valid(action) and action.name is not None:
            if run.prepared is None:
                raise AssertionError
            if not run.prepared.no_transaction:
                run.not_valid_in_migration.add((key, action.name.last))
        column = _not_null_check_column(action)
        if column is None:
            continue
        if not _not_valid(action):
            run.proven_not_null.add((key, column))
        elif action.name is not None:
            run.not_null_checks[(key, action.name.last)] = column


def _not_null_check_column(action: _Action) -> str | None:
    """Return the column of a CHECK (column IS NOT NULL) constraint, else None."""
    words = [t for t in action.tokens if t.depth > 0 and t.text not in ("(", ")")]
    if len(words) != 4 or not words[0].is_name:
        return None
    if [t.upper for t in words[1:]] != ["IS", "NOT", "NULL"]:
        return None
    if _constraint_kind(action) != "CHECK":
        return None
    return _identifier_value(words[0].text)


def _follow_lock_timeout(run: _Run, statement: Statement) -> None:
    text = " ".join(statement.text.split())
    setting = _LOCK_TIMEOUT.match(text)
    if setting:
        run.lock_timeout_set = setting.group("value").upper() not in _NO_LIMIT
    elif _LOCK_TIMEOUT_RESET.match(text):
        run.lock_timeout_set = False


# ---------------------------------------------------------------------------------------------
# Silencing comments
# ---------------------------------------------------------------------------------------------

# The keyword matches in any case, so that -- DBOPS:LINT-IGNORE is not silently ignored.
_IGNORE_COMMENT = re.compile(
    r"^\s*--\s*dbops:lint-ignore(?:\s+(?P<rule>\S+))?(?:\s+(?P<reason>.*?))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Ignore:
    line: int
    rule: str
    reason: str


def _comment_lines_before(text: str, statement: Statement) -> Iterator[tuple[int, str]]:
    """Yield (line, text) of the ``--`` comment lines directly above a statement, nearest first.

    Nothing is yielded unless the statement starts its line. A blank line or a line with code,
    such as the end of the previous statement or the ``\\.`` after COPY data, ends the block.
    """
    line_start = text.rfind("\n", 0, statement.offset) + 1
    if text[line_start : statement.offset].strip():
        return
    line = statement.line
    while line_start > 0:
        above = text.rfind("\n", 0, line_start - 1) + 1
        content = text[above : line_start - 1]
        if not content.strip().startswith("--"):
            return
        line -= 1
        yield line, content
        line_start = above


def _read_ignores(text: str, statement: Statement) -> list[_Ignore]:
    ignores = []
    for line, content in _comment_lines_before(text, statement):
        match = _IGNORE_COMMENT.match(content)
        if match:
            ignores.append(_Ignore(line, match.group("rule") or "", match.group("reason") or ""))
    return sorted(ignores, key=lambda ignore: ignore.line)


def _ignore_problem(ignore: _Ignore, script: str) -> Finding | None:
    """Return the finding for a malformed ignore comment, or None if it is well formed."""
    if ignore.rule not in RULES:
        named = f"names unknown rule {ignore.rule!r}" if ignore.rule else "names no rule"
        return Finding(
            LINT_IGNORE_UNKNOWN_RULE,
            script,
            ignore.line,
            f"-- {IGNORE_DIRECTIVE} {named}, so it silences nothing.",
            f"Name one of the rules: {', '.join(RULES)}.",
        )
    if not ignore.reason:
        return Finding(
            LINT_IGNORE_WITHOUT_REASON,
            script,
            ignore.line,
            f"-- {IGNORE_DIRECTIVE} {ignore.rule} gives no reason, so it silences nothing.",
            f"Say why the statement is safe after the rule id: -- {IGNORE_DIRECTIVE} "
            f"{ignore.rule} <reason>.",
        )
    return None


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def lint_migrations(
    cursor: Any,
    prepared: list[PreparedMigration],
    server_version: int,
    large_table_rows: int = LARGE_TABLE_ROWS,
) -> list[Finding]:
    """Check pending migrations, in the order they will run, and return the findings.

    ``cursor`` is a psycopg2 cursor on the target database, whose connection is in autocommit
    mode; it is used only for reads. ``server_version`` is ``server_version_num`` (150004 for
    15.4). A table counts as large from ``large_table_rows`` estimated rows.
    """
    return lint_with_catalog(PgCatalog(cursor), prepared, server_version, large_table_rows)


def lint_with_catalog(
    catalog: Catalog,
    prepared: list[PreparedMigration],
    server_version: int,
    large_table_rows: int = LARGE_TABLE_ROWS,
) -> list[Finding]:
    """Check pending migrations as ``lint_migrations`` does, with any Catalog."""
    run = _Run(catalog, server_version, large_table_rows, _Tables(catalog))
    findings: list[Finding] = []
    for item in prepared:
        run.start(item)
        findings.extend(_lint_migration(run, item))
    return findings


def _lint_migration(run: _Run, item: PreparedMigration) -> list[Finding]:
    script = item.migration.script
    findings: list[Finding] = []
    for statement in item.statements:
        view = _View.of(statement)
        ignores = _read_ignores(item.migration.text, statement)
        problems = [_ignore_problem(ignore, script) for ignore in ignores]
        findings.extend(problem for problem in problems if problem is not None)
        silenced = {ignore.rule for ignore in ignores if ignore.reason and ignore.rule in RULES}
        for rule, check in RULES.items():
            if rule in silenced:
                continue
            hits = check(run, view)
            findings.extend(Finding(rule, script, h.line, h.why, h.instead) for h in hits)
        _follow(run, view)
    return findings
