# Copyright: dbops.migrations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration sources: file names, versions, normalised text and checksums."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import SourceError

VERSIONED = "versioned"
REPEATABLE = "repeatable"
UNDO = "undo"

NAME_PATTERNS = (
    "V<version>__<description>.sql, U<version>__<description>.sql or R__<description>.sql"
)
TEMPLATE_SUFFIX = ".j2"

_VERSIONED_NAME = re.compile(
    r"^(?P<prefix>[VU])(?P<version>\d+(?:[._]\d+)*)__(?P<description>.+)\.sql$"
)
_VERSION = re.compile(r"^\d+(?:[._]\d+)*$")
_REPEATABLE_NAME = re.compile(r"^R__(?P<description>.+)\.sql$")
_BOM = "\ufeff"


def normalise_text(text: str) -> str:
    """Remove a leading UTF-8 byte-order mark and turn CRLF line endings into LF."""
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    return text.replace("\r\n", "\n")


def checksum(text: str) -> str:
    """Return the sha256 hex digest of the normalised text."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    """Return the numeric sort key of a dotted version; trailing zero parts do not count.

    Raises ValueError when ``version`` is not digits separated by dots or underscores.
    """
    if not _VERSION.match(version):
        raise ValueError(f"invalid version {version!r}")
    parts = [int(part) for part in re.split(r"[._]", version)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def format_version(version: str) -> str:
    """Return the version as users read it: parts joined by dots, leading zeros removed."""
    return ".".join(str(int(part)) for part in re.split(r"[._]", version))


@dataclass(frozen=True)
class Migration:
    """One migration file, its text already normalised."""

    script: str
    kind: str
    description: str
    text: str
    checksum: str
    version: str | None = None
    key: tuple[int, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        """Name the migration as messages do: ``V2``, ``U2`` or ``R__analytics views``."""
        if self.kind == VERSIONED:
            return f"V{self.version}"
        if self.kind == UNDO:
            return f"U{self.version}"
        return f"R__{self.description}"


def parse_source(script: str, text: str) -> Migration:
    """Build a Migration from its script path (relative, with ``/``) and its file text.

    A name ending in ``.sql.j2`` is a template that the action plugin has already rendered;
    it is parsed as the name without ``.j2``.
    """
    parts = script.split("/")
    if script.startswith("/") or "\\" in script or ".." in parts or "" in parts[:-1]:
        raise SourceError(
            f"Invalid migration file name {script!r}: expected a relative path with / between "
            "its parts and no '..', such as views/V2__reports.sql."
        )
    name = parts[-1].removesuffix(TEMPLATE_SUFFIX)
    normalised = normalise_text(text)
    digest = checksum(normalised)
    versioned = _VERSIONED_NAME.match(name)
    if versioned:
        raw = versioned.group("version")
        return Migration(
            script=script,
            kind=VERSIONED if versioned.group("prefix") == "V" else UNDO,
            description=_describe(versioned.group("description")),
            text=normalised,
            checksum=digest,
            version=format_version(raw),
            key=version_key(raw),
        )
    repeatable = _REPEATABLE_NAME.match(name)
    if repeatable:
        return Migration(
            script=script,
            kind=REPEATABLE,
            description=_describe(repeatable.group("description")),
            text=normalised,
            checksum=digest,
        )
    raise SourceError(f"Invalid migration file name {script!r}: expected {NAME_PATTERNS}.")


def _describe(raw: str) -> str:
    return raw.replace("_", " ").strip()


def load_sources(files: list[tuple[str, str]]) -> list[Migration]:
    """Parse every (script, text) pair and return versioned migrations in version order, then
    repeatable ones by description.

    Raises SourceError naming every invalid file name and every set of files that share a
    version or a repeatable description.
    """
    migrations: list[Migration] = []
    invalid: list[str] = []
    for script, text in files:
        try:
            migrations.append(parse_source(script, text))
        except SourceError:
            invalid.append(script)
    if invalid:
        names = ", ".join(repr(name) for name in sorted(invalid))
        raise SourceError(f"Invalid migration file name {names}: expected {NAME_PATTERNS}.")
    _reject_duplicates(migrations)
    versioned = sorted((m for m in migrations if m.kind == VERSIONED), key=lambda m: m.key)
    repeatable = sorted(
        (m for m in migrations if m.kind == REPEATABLE), key=lambda m: m.description
    )
    undo = sorted((m for m in migrations if m.kind == UNDO), key=lambda m: m.key, reverse=True)
    return versioned + repeatable + undo


def _reject_duplicates(migrations: list[Migration]) -> None:
    groups: dict[tuple[object, ...], list[Migration]] = {}
    for migration in migrations:
        identity = (
            migration.kind,
            migration.description if migration.kind == REPEATABLE else migration.key,
        )
        groups.setdefault(identity, []).append(migration)
    clashes = [group for group in groups.values() if len(group) > 1]
    if not clashes:
        return
    parts = []
    for group in clashes:
        group = sorted(group, key=lambda m: m.script)
        scripts = " and ".join(repr(m.script) for m in group)
        if group[0].kind != REPEATABLE:
            what = f"version {'.'.join(str(part) for part in group[0].key)}"
        else:
            what = f"description {group[0].description!r}"
        parts.append(f"{scripts} share {what}")
    raise SourceError(
        "Duplicate migrations: "
        + "; ".join(parts)
        + ". Give each versioned file its own version, and each repeatable file its own "
        "description."
    )


def read_directories(
    paths: list[str], warn: Callable[[str], None] | None = None
) -> list[tuple[str, str]]:
    """Read every ``*.sql`` and ``*.sql.j2`` file below each directory, recursively.

    Each script is named by its path relative to the directory it was found in, with ``/``
    as the separator. Files are decoded as UTF-8; templates are returned unrendered. Each
    directory with no such file, in it or below it, is reported to ``warn``.
    """
    files: list[tuple[str, str]] = []
    for top in paths:
        if not os.path.isdir(top):
            raise SourceError(f"Migration directory {top!r} not found.")
        found_before = len(files)
        for directory, subdirs, names in os.walk(top):
            subdirs.sort()
            for name in sorted(names):
                # Hidden files, such as editors' lock files, are not migrations; a name that
                # ends in .sql in another case is, so that its invalid name is reported.
                if name.startswith(".") or not name.lower().endswith(
                    (".sql", ".sql" + TEMPLATE_SUFFIX)
                ):
                    continue
                full = os.path.join(directory, name)
                script = os.path.relpath(full, top).replace(os.sep, "/")
                files.append((script, read_text(full)))
        if warn is not None and len(files) == found_before:
            warn(
                f"Migration directory {top!r} contains no .sql or .sql.j2 file, in it or in a "
                "subdirectory, so it adds no migration. Check path for a typo, or remove the "
                "directory from it."
            )
    return files


def read_text(path: str) -> str:
    """Read a migration file as UTF-8; raise SourceError naming the file when it is not UTF-8."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceError(
            f"{path} is not valid UTF-8 (byte {error.start}): save migration files as UTF-8."
        ) from None
