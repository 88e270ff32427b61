# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Split migration text into statements, as psql would, and report what cannot be run.

The scanner follows PostgreSQL's lexical rules for everything that can hide a semicolon:
single-quoted strings (with backslash escapes in ``E''`` strings, and in plain strings
while ``standard_conforming_strings`` is off), double-quoted identifiers, dollar quotes with
tags, ``--`` comments, nested ``/* */`` comments, parentheses, and ``BEGIN ATOMIC ... END``
or ``CASE ... END`` bodies. Like psql, it counts a ``BEGIN`` or ``CASE`` that is not the
word inside ``CREATE [OR REPLACE] FUNCTION`` or ``PROCEDURE``, outside parentheses, as
opening a body that an ``END`` closes (and, within a body, a ``CASE`` as well).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

_IDENT_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
_IDENT_REST = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
_PARAMETER = re.compile(r"\$\d+")
_META_COMMAND = re.compile(r"\\[A-Za-z!?.;]*")
_SCS_SETTING = re.compile(
    r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?standard_conforming_strings\s*(?:=|TO)\s*'?(\w+)'?",
    re.IGNORECASE,
)
_SCS_RESET = re.compile(r"^\s*RESET\s+(?:ALL|standard_conforming_strings)\b", re.IGNORECASE)
_FALSE_WORDS = {"off", "false", "no", "0"}
_NEWLINE = re.compile("\n")
_SPACE_RUN = re.compile(r"\s+")
# A -- comment ends at a line feed or a lone carriage return, as in PostgreSQL's lexer.
_LINE_END = re.compile(r"[\n\r]")
# Characters that never start a quote, comment, word or statement end, read as one run.
_PLAIN_RUN = re.compile(r"[0-9,.:+*<>=!~^&|%@#\[\]{}?`]+")
# A string body: doubled quotes, and with backslash escapes any escaped character.
_PLAIN_BODY = re.compile(r"[^']*(?:''[^']*)*'")
_ESCAPE_BODY = re.compile(r"[^'\\]*(?:(?:''|\\.)[^'\\]*)*'", re.DOTALL)
# PostgreSQL joins string constants separated only by whitespace that contains a newline, and
# the continuation keeps the first part's escape rules.
_CONTINUATION = re.compile(r"(?:[ \t\f]|--[^\n\r]*)*[\n\r](?:[ \t\f\r\n]|--[^\n\r]*)*'")

# Words that make a statement transaction control when they come first.
_TRANSACTION_CONTROL = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"}
_KEPT_WORDS = 16


@dataclass
class Statement:
    """One SQL statement of a migration, with where it starts in the file."""

    text: str
    line: int
    words: list[str]
    offset: int = 0
    leading_words: list[str] = field(default_factory=list)
    copy_from_stdin: bool = False
    copy_data: str | None = None

    @property
    def summary(self) -> str:
        """Return the statement's first four words as written, as a short name for messages."""
        return " ".join(self.text.rstrip(";").split()[:4])


@dataclass
class ScanResult:
    """Statements of one file, and the problems that forbid running it."""

    statements: list[Statement] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


class _Cursor:
    """Scanner state for one statement and the file position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start: int | None = None
        self.paren_depth = 0
        self.body_depth = 0
        self.words: list[str] = []
        self.leading_words: list[str] = []
        self.previous_word = ""
        self.from_stdin = False

    def reset(self) -> None:
        self.start = None
        self.paren_depth = 0
        self.body_depth = 0
        self.words = []
        self.leading_words = []
        self.previous_word = ""
        self.from_stdin = False

    def mark(self) -> None:
        if self.start is None:
            self.start = self.pos


def scan(text: str, standard_conforming_strings: bool = True) -> ScanResult:
    """Split normalised migration text into statements and list the lines it cannot run."""
    result = ScanResult()
    newlines = [match.start() for match in _NEWLINE.finditer(text)]

    def line_of(offset: int) -> int:
        return bisect.bisect_right(newlines, offset - 1) + 1

    cursor = _Cursor(text)
    scs = standard_conforming_strings
    length = len(text)
    while cursor.pos < length:
        char = text[cursor.pos]
        following = text[cursor.pos + 1] if cursor.pos + 1 < length else ""
        if char.isspace():
            cursor.pos = _SPACE_RUN.match(text, cursor.pos).end()  # type: ignore[union-attr]
        elif char == "-" and following == "-":
            end = _LINE_END.search(text, cursor.pos)
            cursor.pos = length if end is None else end.start()
        elif char == "/" and following == "*":
            if not _skip_block_comment(cursor):
                result.problems.append((line_of(cursor.pos), "unterminated /* comment"))
                break
        elif char == "'":
            cursor.mark()
            if not _skip_string(cursor, backslash_escapes=not scs):
                result.problems.append((line_of(cursor.pos), "unterminated quoted string"))
                break
        elif char == '"':
            cursor.mark()
            if not _skip_quoted_identifier(cursor):
                result.problems.append((line_of(cursor.pos), "unterminated quoted identifier"))
                break
        elif char == "$":
            cursor.mark()
            if not _skip_dollar(cursor):
                tag = _DOLLAR_TAG.match(text, cursor.pos)
                name = tag.group(0) if tag else "$"
                result.problems.append(
                    (line_of(cursor.pos), f"unterminated dollar-quoted string {name}")
                )
                break
        elif _IDENT_START.match(char):
            cursor.mark()
            if not _read_word(cursor, scs):
                result.problems.append((line_of(cursor.pos), "unterminated quoted string"))
                break
        elif char == "\\":
            match = _META_COMMAND.match(text, cursor.pos)
            command = match.group(0) if match else "\\"
            result.problems.append((line_of(cursor.pos), _meta_command_problem(command)))
            line_end = text.find("\n", cursor.pos)
            cursor.pos = length if line_end < 0 else line_end
        elif char == ";" and cursor.paren_depth == 0 and cursor.body_depth == 0:
            cursor.mark()
            cursor.pos += 1
            statement = _finish(cursor, line_of)
            scs = _follow_scs(statement, scs)
            _check_statement(statement, result)
            if statement.text != ";":
                result.statements.append(statement)
            if statement.copy_from_stdin:
                _read_copy_data(cursor, statement, result, line_of)
            cursor.reset()
        else:
            cursor.mark()
            if char == "(":
                cursor.paren_depth += 1
            elif char == ")":
                cursor.paren_depth = max(0, cursor.paren_depth - 1)
            plain = _PLAIN_RUN.match(text, cursor.pos)
            cursor.pos = plain.end() if plain else cursor.pos + 1
    if cursor.start is not None and not result.problems:
        statement = _finish(cursor, line_of)
        _check_statement(statement, result)
        result.statements.append(statement)
    return result


def _finish(cursor: _Cursor, line_of: object) -> Statement:
    if cursor.start is None:
        raise AssertionError
    text = cursor.text[cursor.start : cursor.pos]
    return Statement(
        text=text,
        line=line_of(cursor.start),  # type: ignore[operator]
        words=cursor.words,
        offset=cursor.start,
        leading_words=cursor.leading_words,
        copy_from_stdin=bool(cursor.words[:1] == ["COPY"] and cursor.from_stdin),
    )


def _skip_block_comment(cursor: _Cursor) -> bool:
    text = cursor.text
    depth = 0
    index = cursor.pos
    while index < len(text) - 1:
        pair = text[index : index + 2]
        if pair == "/*":
            depth += 1
            index += 2
        elif pair == "*/":
            depth -= 1
            index += 2
            if depth == 0:
                cursor.pos = index
                return True
        else:
            index += 1
    return False


def _skip_string(cursor: _Cursor, backslash_escapes: bool) -> bool:
    """Skip a quoted string and its continuations; the cursor is on the opening quote."""
    body = _ESCAPE_BODY if backslash_escapes else _PLAIN_BODY
    position = cursor.pos
    while True:
        match = body.match(cursor.text, position + 1)
        if match is None:
            return False
        cursor.pos = match.end()
        continuation = _CONTINUATION.match(cursor.text, cursor.pos)
        if continuation is None:
            return True
        position = continuation.end() - 1


def _skip_quoted_identifier(cursor: _Cursor) -> bool:
    text = cursor.text
    index = cursor.pos + 1
    while index < len(text):
        if text[index] == '"':
            if index + 1 < len(text) and text[index + 1] == '"':
                index += 2
                continue
            cursor.pos = index + 1
            return True
        index += 1
    return False


def _skip_dollar(cursor: _Cursor) -> bool:
    text = cursor.text
    tag = _DOLLAR_TAG.match(text, cursor.pos)
    if tag is None:
        parameter = _PARAMETER.match(text, cursor.pos)
        cursor.pos = parameter.end() if parameter else cursor.pos + 1
        return True
    end = text.find(tag.group(0), tag.end())
    if end < 0:
        return False
    cursor.pos = end + len(tag.group(0))
    return True


def _read_word(cursor: _Cursor, scs: bool) -> bool:
    """Consume an identifier or keyword, or a prefixed string such as E'...' or U&'...'."""
    text = cursor.text
    end = _IDENT_REST.match(text, cursor.pos + 1).end()  # type: ignore[union-attr]
    word = text[cursor.pos : end]
    upper = word.upper()
    following = text[end : end + 1]
    if following == "'" and upper in ("E", "B", "X", "N"):
        cursor.pos = end
        return _skip_string(cursor, backslash_escapes=(upper == "E") or not scs)
    if upper == "U" and text[end : end + 2] in ("&'", '&"'):
        cursor.pos = end + 1
        if text[cursor.pos] == "'":
            return _skip_string(cursor, backslash_escapes=False)
        return _skip_quoted_identifier(cursor)
    cursor.pos = end
    if len(cursor.leading_words) < _KEPT_WORDS:
        cursor.leading_words.append(upper)
    if cursor.paren_depth > 0:
        return True
    if len(cursor.words) < _KEPT_WORDS:
        cursor.words.append(upper)
    if cursor.previous_word == "FROM" and upper == "STDIN":
        cursor.from_stdin = True
    cursor.previous_word = upper
    if _defines_routine(cursor.words):
        _track_body(cursor, upper)
    return True


def _defines_routine(words: list[str]) -> bool:
    """Tell whether the statement starts CREATE [OR REPLACE] FUNCTION or PROCEDURE."""
    if words[:1] != ["CREATE"]:
        return False
    rest = words[3:4] if words[1:3] == ["OR", "REPLACE"] else words[1:2]
    return rest in (["FUNCTION"], ["PROCEDURE"])


def _track_body(cursor: _Cursor, upper: str) -> None:
    if upper == "BEGIN":
        cursor.body_depth += 1
    elif upper == "CASE" and cursor.body_depth >= 1:
        cursor.body_depth += 1
    elif upper == "END" and cursor.body_depth > 0:
        cursor.body_depth -= 1


def _follow_scs(statement: Statement, scs: bool) -> bool:
    """Track ``SET standard_conforming_strings`` so later strings are read as the server will."""
    setting = _SCS_SETTING.match(statement.text)
    if setting:
        return setting.group(1).lower() not in _FALSE_WORDS
    if _SCS_RESET.match(statement.text):
        return True
    return scs


def _meta_command_problem(command: str) -> str:
    if command == "\\copy":
        return (
            "psql meta-command \\copy is not SQL; use COPY ... FROM stdin with the rows inline, "
            "ended by a line \\."
        )
    if command in ("\\connect", "\\c"):
        return (
            f"psql meta-command {command} is not SQL; a migration runs in the database it is "
            "applied to, so move these statements to the migrations of the other database"
        )
    if command in ("\\i", "\\include", "\\ir", "\\include_relative"):
        return (
            f"psql meta-command {command} is not SQL; make the included file a migration of its own"
        )
    return f"psql meta-command {command} is not SQL and only psql understands it; remove it"


def _check_statement(statement: Statement, result: ScanResult) -> None:
    words = statement.words
    if not words or words[0] not in _TRANSACTION_CONTROL:
        return
    if words[0] == "ROLLBACK" and ("TO" in words[1:3] or words[1:2] == ["PREPARED"]):
        return
    if words[0] == "COMMIT" and words[1:2] == ["PREPARED"]:
        return
    name = "START TRANSACTION" if words[0] == "START" else words[0]
    result.problems.append(
        (
            statement.line,
            f"transaction control statement {name} is not allowed: the engine runs each "
            "migration in a transaction of its own, or, in a file marked "
            "-- dbops:no-transaction, commits each statement on its own",
        )
    )


def _read_copy_data(
    cursor: _Cursor, statement: Statement, result: ScanResult, line_of: object
) -> None:
    """Take the inline rows after ``COPY ... FROM stdin;`` up to a line ``\\.``."""
    text = cursor.text
    line_end = text.find("\n", cursor.pos)
    if line_end < 0:
        result.problems.append((statement.line, "COPY FROM stdin has no data lines ended by \\."))
        cursor.pos = len(text)
        return
    data_start = line_end + 1
    terminator = re.compile(r"^\\\.[ \t]*$", re.MULTILINE).search(text, data_start)
    if terminator is None:
        result.problems.append((statement.line, "COPY FROM stdin data is not ended by a line \\."))
        cursor.pos = len(text)
        return
    statement.copy_data = text[data_start : terminator.start()]
    cursor.pos = terminator.end()


def needs_autocommit(statement: Statement, server_version: int) -> bool:
    """Tell whether PostgreSQL refuses to run the statement inside a transaction block.

    ``server_version`` is ``server_version_num`` (150004 for 15.4).
    """
    words = statement.words
    if not words:
        return False
    head = words[0]
    if head == "VACUUM" or head == "ALTER" and words[1:2] == ["SYSTEM"]:
        return True
    if head in ("COMMIT", "ROLLBACK") and words[1:2] == ["PREPARED"]:
        return True
    if head in ("CREATE", "DROP") and _after_create(words)[:1] in (["DATABASE"], ["TABLESPACE"]):
        return True
    if head in ("CREATE", "DROP") and _after_create(words)[:2] == ["INDEX", "CONCURRENTLY"]:
        return True
    if head == "REINDEX":
        return "CONCURRENTLY" in statement.leading_words or words[1:2] in (
            ["SYSTEM"],
            ["DATABASE"],
            ["SCHEMA"],
        )
    if head == "ALTER" and words[1:2] == ["DATABASE"]:
        return "SET" in words and "TABLESPACE" in words
    if head == "ALTER" and words[1:2] == ["TABLE"]:
        return "DETACH" in words and "CONCURRENTLY" in words
    if head == "CLUSTER":
        return words[1:] in ([], ["VERBOSE"])
    if head in ("CREATE", "DROP") and words[1:2] == ["SUBSCRIPTION"]:
        return True
    if head == "ALTER" and words[1:2] == ["TYPE"] and server_version < 120000:
        return "ADD" in words and "VALUE" in words
    return False


def _after_create(words: list[str]) -> list[str]:
    """Return the words after CREATE or DROP, skipping UNIQUE."""
    rest = words[1:]
    if rest[:1] == ["UNIQUE"]:
        rest = rest[1:]
    return rest
