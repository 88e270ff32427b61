"""Property test: the scanner splits migrations where PostgreSQL's own parser splits them.

Hypothesis builds migration files from statements whose literals, quoted identifiers,
dollar-quoted bodies, comments and parentheses hide semicolons, quotes and comment openers.
Every generated file is valid SQL, so ``pglast.parser.split`` can split it. pglast wraps
libpg_query, which is PostgreSQL's lexer and grammar (PostgreSQL 18 in pglast 8.8), so it
splits a file where the server does. The scan runs with ``standard_conforming_strings``
on, which is also libpg_query's setting.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pglast import parser

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.scanner import scan

# Names of the comment tokens in the output of pglast.parser.scan.
_COMMENT_TOKENS = {"SQL_COMMENT", "C_COMMENT"}

# Characters and words that end a statement, a string or a comment when a lexer misreads
# them. BEGIN, CASE and END test the scanner's tracking of CREATE FUNCTION bodies.
_TRICKY_PIECES = [
    ";",
    "'",
    '"',
    "$",
    "$$",
    "$a$",
    "--",
    "/*",
    "*/",
    "\\",
    "(",
    ")",
    "é",
    " ",
    "\n",
    "x",
    "BEGIN",
    "CASE",
    "END;",
]

# Inside E'...' every backslash starts a valid escape, so the literal stays well-formed.
_ESCAPE_STRING_PIECES = [
    ";",
    "''",
    "\\'",
    "\\\\",
    "\\n",
    '"',
    "$$",
    "--",
    "/*",
    "*/",
    "é",
    " ",
    "x",
]

# In U&'...' and U&"..." a backslash starts a Unicode escape or doubles itself.
_UNICODE_ESCAPE_PIECES = [piece for piece in _TRICKY_PIECES if piece != "\\"] + ["\\\\", "\\0041"]

_LINE_COMMENT_PIECES = [piece for piece in _TRICKY_PIECES if piece != "\n"]

# A bare "*" or "/" next to a nested comment's "/*" or "*/" would open or close a comment
# that the generator did not mean, so these pieces carry a letter on both sides.
_BLOCK_COMMENT_PIECES = [";", "'", '"', "$$", "--", "x*y", "x/y", " ", "\n", "é", "\\", "END;"]

# Dollar-quote tags. The last one appears in no piece, so it can close any body.
_DOLLAR_TAGS = ["", "a", "body", "fn_1", "é", "unused_tag"]


def _joined(pieces: list[str], min_size: int = 0, max_size: int = 8) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), min_size=min_size, max_size=max_size).map("".join)


# The strategies are module constants because hypothesis validates each strategy object on
# its first draw, and rebuilding the recursive ones for every draw made this test about ten
# times slower.

_TRICKY_TEXT = _joined(_TRICKY_PIECES)

PLAIN_LITERALS = _TRICKY_TEXT.map(lambda text: "'" + text.replace("'", "''") + "'")

ESCAPE_LITERALS = st.tuples(st.sampled_from(["E", "e"]), _joined(_ESCAPE_STRING_PIECES)).map(
    lambda parts: f"{parts[0]}'{parts[1]}'"
)


@st.composite
def _dollar_literals(draw: st.DrawFn) -> str:
    """Draw a dollar-quoted string whose body does not contain its own closing delimiter."""
    body = draw(_TRICKY_TEXT)
    usable = [tag for tag in _DOLLAR_TAGS if (body + f"${tag}$").find(f"${tag}$") == len(body)]
    tag = draw(st.sampled_from(usable))
    return f"${tag}${body}${tag}$"


DOLLAR_LITERALS = _dollar_literals()

UNICODE_LITERALS = _joined(_UNICODE_ESCAPE_PIECES).map(
    lambda text: "U&'" + text.replace("'", "''") + "'"
)

# A -- comment ends at a line feed or, as PostgreSQL's lexer has it, at a lone carriage return.
LINE_COMMENTS = st.tuples(_joined(_LINE_COMMENT_PIECES), st.sampled_from(["\n", "\r"])).map(
    lambda parts: f"--{parts[0]}{parts[1]}"
)

_BLOCK_COMMENT_TEXT = st.sampled_from(_BLOCK_COMMENT_PIECES)

BLOCK_COMMENTS = st.recursive(
    st.lists(_BLOCK_COMMENT_TEXT, max_size=4).map(lambda pieces: "/*" + "".join(pieces) + "*/"),
    lambda nested: st.lists(st.one_of(_BLOCK_COMMENT_TEXT, nested), max_size=4).map(
        lambda pieces: "/*" + "".join(pieces) + "*/"
    ),
    max_leaves=6,
)

# Whitespace or a comment between two tokens.
GAPS = st.one_of(
    st.sampled_from([" ", "\n", "\t", "  \n "]),
    LINE_COMMENTS.map(lambda comment: " " + comment),
    BLOCK_COMMENTS.map(lambda comment: " " + comment + " "),
)

OPTIONAL_GAPS = st.one_of(st.just(""), GAPS)

# PostgreSQL reads the continuation of an E'...' string with backslash escapes too, so in
# "E'a'\n'b\';'" the quote after the backslash is data.
_CONTINUED_ESCAPE_TEXT = _joined(_ESCAPE_STRING_PIECES)


@st.composite
def _continued_literals(draw: st.DrawFn) -> str:
    """Draw two quoted strings that PostgreSQL joins because a newline separates them."""
    comment = draw(st.one_of(st.just(""), LINE_COMMENTS.map(lambda text: text[:-1])))
    if draw(st.booleans()):
        first = draw(PLAIN_LITERALS)
        second = draw(PLAIN_LITERALS)
    else:
        first = draw(ESCAPE_LITERALS)
        second = "'" + draw(_CONTINUED_ESCAPE_TEXT) + "'"
    return f"{first} {comment}\n {second}"


LITERALS = st.one_of(
    PLAIN_LITERALS, ESCAPE_LITERALS, DOLLAR_LITERALS, UNICODE_LITERALS, _continued_literals()
)

# NOTE: names are always quoted. The scanner, like psql, takes an unquoted word begin in
# CREATE FUNCTION for the start of a body, while the parser reads a name there.
IDENTIFIERS = st.one_of(
    _joined(_TRICKY_PIECES, min_size=1, max_size=5).map(
        lambda text: '"' + text.replace('"', '""') + '"'
    ),
    _joined(_UNICODE_ESCAPE_PIECES, min_size=1, max_size=5).map(
        lambda text: 'U&"' + text.replace('"', '""') + '"'
    ),
)


def _extend_expressions(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    concatenation = st.tuples(inner, GAPS, GAPS, inner).map(
        lambda parts: f"{parts[0]}{parts[1]}||{parts[2]}{parts[3]}"
    )
    parenthesised = st.tuples(GAPS, inner, GAPS).map(
        lambda parts: f"({parts[0]}{parts[1]}{parts[2]})"
    )
    return st.one_of(concatenation, parenthesised)


# Text expressions: literals joined by || and wrapped in parentheses.
EXPRESSIONS = st.recursive(LITERALS, _extend_expressions, max_leaves=4)


@st.composite
def _selects(draw: st.DrawFn) -> str:
    gaps = [draw(GAPS) for _index in range(3)]
    return f"SELECT{gaps[0]}{draw(EXPRESSIONS)}{gaps[1]}AS{gaps[2]}{draw(IDENTIFIERS)}"


@st.composite
def _create_functions(draw: st.DrawFn) -> str:
    gaps = [draw(GAPS) for _index in range(3)]
    body = draw(DOLLAR_LITERALS)
    return f"CREATE FUNCTION f_1(){gaps[0]}RETURNS text LANGUAGE sql{gaps[1]}AS{gaps[2]}{body}"


_ATOMIC_ROUTINE_HEADS = [
    "CREATE FUNCTION f_2() RETURNS text LANGUAGE sql",
    "CREATE OR REPLACE FUNCTION f_3() RETURNS text LANGUAGE sql",
    "CREATE PROCEDURE p_1() LANGUAGE sql",
]


@st.composite
def _create_atomic_routines(draw: st.DrawFn) -> str:
    """Draw a CREATE FUNCTION or PROCEDURE whose BEGIN ATOMIC body contains semicolons."""
    body = []
    for _index in range(draw(st.integers(min_value=0, max_value=3))):
        gaps = [draw(GAPS) for _index in range(4)]
        value = draw(EXPRESSIONS)
        case = f"CASE{gaps[1]}WHEN true THEN {value}{gaps[2]}ELSE 'b;' END{gaps[3]}"
        body.append(draw(st.sampled_from([f"SELECT{gaps[0]}{value}", f"SELECT {case}"])))
        body.append(";" + draw(GAPS))
    head = draw(st.sampled_from(_ATOMIC_ROUTINE_HEADS))
    return f"{head}{draw(GAPS)}BEGIN ATOMIC{draw(GAPS)}{''.join(body)}END"


@st.composite
def _comments_on(draw: st.DrawFn) -> str:
    gaps = [draw(GAPS) for _index in range(2)]
    return f"COMMENT ON TABLE {draw(IDENTIFIERS)}{gaps[0]}IS{gaps[1]}{draw(LITERALS)}"


@st.composite
def _do_blocks(draw: st.DrawFn) -> str:
    body = draw(st.one_of(st.just("$$ BEGIN PERFORM 1; END $$"), DOLLAR_LITERALS))
    return f"DO{draw(GAPS)}{body}"


@st.composite
def _create_tables(draw: st.DrawFn) -> str:
    table, first, second = (draw(IDENTIFIERS) for _index in range(3))
    default, check = draw(EXPRESSIONS), draw(EXPRESSIONS)
    return (
        f"CREATE TABLE {table}{draw(GAPS)}({draw(GAPS)}{first} text DEFAULT {default}"
        f"{draw(GAPS)},{draw(GAPS)}{second} text CHECK ({second} <> {check}))"
    )


@st.composite
def _inserts(draw: st.DrawFn) -> str:
    values = ", ".join(draw(EXPRESSIONS) for _index in range(draw(st.integers(1, 3))))
    return f"INSERT INTO {draw(IDENTIFIERS)}{draw(GAPS)}VALUES{draw(GAPS)}({values})"


STATEMENTS = st.one_of(
    _selects(),
    _create_functions(),
    _create_atomic_routines(),
    _comments_on(),
    _do_blocks(),
    _create_tables(),
    _inserts(),
)


@st.composite
def _migrations(draw: st.DrawFn) -> str:
    """Draw a migration file: statements, semicolons, empty statements, gaps and comments."""
    parts = [draw(OPTIONAL_GAPS)]
    statements = draw(st.lists(STATEMENTS, min_size=1, max_size=5))
    for index, statement in enumerate(statements):
        parts.append(statement)
        last = index == len(statements) - 1
        if not last or draw(st.booleans()):
            parts.append(draw(OPTIONAL_GAPS) + ";")
            for _index in range(draw(st.integers(min_value=0, max_value=2))):
                parts.append(draw(OPTIONAL_GAPS) + ";")
        parts.append(draw(OPTIONAL_GAPS) if last else draw(GAPS))
    return "".join(parts)


MIGRATIONS = _migrations()


def _normalise(statement: str) -> str:
    """Strip whitespace and trailing semicolons, which one splitter keeps and the other drops."""
    statement = statement.strip()
    while statement.endswith(";"):
        statement = statement[:-1].rstrip()
    return statement


def _parser_statements(text: str) -> list[tuple[int, str]]:
    """Return the offset and normalised text of each statement as PostgreSQL splits ``text``.

    The offset is that of the statement's first token, so a leading comment, which the
    scanner leaves out of a statement, is left out here as well.
    """
    token_starts = [token.start for token in parser.scan(text) if token.name not in _COMMENT_TOKENS]
    statements = []
    for span in parser.split(text, with_parser=True, only_slices=True):
        start = next(offset for offset in token_starts if offset >= span.start)
        statements.append((start, _normalise(text[start : span.stop])))
    return statements


@settings(max_examples=300, deadline=None)
@given(migration=MIGRATIONS)
@example(
    migration=(
        "-- leading ';\nSELECT 'a;''b' || E'\\';\\\\' AS \"c;\"\"d\";\n"
        "DO $$ BEGIN PERFORM 1; END $$;;\n"
        'COMMENT ON TABLE "t" IS $tag$ $$;\' $tag$ /* trailing; */'
    )
)
@example(
    migration=(
        "/* a /* b; */ c' */ CREATE FUNCTION f_2() RETURNS text LANGUAGE sql\n"
        "BEGIN ATOMIC SELECT CASE WHEN true THEN 'x;' ELSE 'y' END; SELECT 'z' -- ;\n"
        "'continued;'; END;\n"
        "SELECT('('||'))')AS\"x\""
    )
)
def test_scanner_splits_like_parser(migration: str) -> None:
    expected = _parser_statements(migration)
    result = scan(migration)
    found = [(statement.offset, _normalise(statement.text)) for statement in result.statements]

    assert result.problems == [], "the scanner reported problems in valid SQL"
    assert len(found) == len(expected), "statement count differs from PostgreSQL's parser"
    assert [text for _offset, text in found] == [text for _offset, text in expected], (
        "statement texts differ from PostgreSQL's parser"
    )
    assert [offset for offset, _text in found] == [offset for offset, _text in expected], (
        "statement offsets differ from PostgreSQL's parser"
    )
    for statement in result.statements:
        assert statement.line == migration.count("\n", 0, statement.offset) + 1, (
            f"statement at offset {statement.offset} has the wrong line number"
        )
