"""Unit tests of migration sources: file names, versions, ordering, checksums, reading files."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations.errors import (
    SourceError,
)
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.sources import (
    REPEATABLE,
    VERSIONED,
    checksum,
    load_sources,
    parse_source,
    read_directories,
    version_key,
)

NAME_PATTERNS = (
    "V<version>__<description>.sql, U<version>__<description>.sql or R__<description>.sql"
)
TEXT = "CREATE TABLE customers (id bigint PRIMARY KEY);\n"
DUPLICATE_ADVICE = (
    "Give each versioned file its own version, and each repeatable file its own description."
)


@pytest.mark.parametrize(
    ("script", "kind", "version", "description", "label"),
    [
        pytest.param(
            "V1__create_customers.sql", VERSIONED, "1", "create customers", "V1", id="versioned"
        ),
        pytest.param(
            "V1.10__add_index.sql", VERSIONED, "1.10", "add index", "V1.10", id="dotted-version"
        ),
        pytest.param(
            "V1_3__add_index.sql", VERSIONED, "1.3", "add index", "V1.3", id="underscore-version"
        ),
        pytest.param(
            "V001__create_customers.sql",
            VERSIONED,
            "1",
            "create customers",
            "V1",
            id="leading-zeros",
        ),
        pytest.param("V2.0__seed.sql", VERSIONED, "2.0", "seed", "V2.0", id="trailing-zero"),
        pytest.param(
            "schema/V3__add_invoices.sql", VERSIONED, "3", "add invoices", "V3", id="in-directory"
        ),
        pytest.param(
            "R__invoice_totals.sql",
            REPEATABLE,
            None,
            "invoice totals",
            "R__invoice totals",
            id="repeatable",
        ),
    ],
)
def test_parse_source_name(
    script: str, kind: str, version: str | None, description: str, label: str
) -> None:
    migration = parse_source(script, TEXT)
    assert migration.script == script
    assert migration.kind == kind
    assert migration.version == version
    assert migration.description == description
    assert migration.label == label


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("v1__create_customers.sql", id="lower-case-v"),
        pytest.param("V1_create_customers.sql", id="single-underscore"),
        pytest.param("V__create_customers.sql", id="no-version"),
        pytest.param("V1__.sql", id="no-description"),
        pytest.param("V1.a__create_customers.sql", id="letter-in-version"),
        pytest.param("r__invoice_totals.sql", id="lower-case-r"),
        pytest.param("notes.sql", id="no-prefix"),
        pytest.param("schema/notes.sql", id="no-prefix-in-directory"),
    ],
)
def test_parse_source_invalid_name(script: str) -> None:
    message = f"Invalid migration file name {script!r}: expected {NAME_PATTERNS}."
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_source(script, TEXT)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("../../etc/V1__generated.sql", id="parent-directory"),
        pytest.param("views/../V1__generated.sql", id="parent-in-middle"),
        pytest.param("/etc/V1__generated.sql", id="absolute"),
        pytest.param("views//V1__generated.sql", id="empty-part"),
        pytest.param("views\\V1__generated.sql", id="backslash"),
    ],
)
def test_parse_source_path_outside_rejected(script: str) -> None:
    message = (
        f"Invalid migration file name {script!r}: expected a relative path with / between its "
        "parts and no '..', such as views/V2__reports.sql."
    )
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_source(script, TEXT)


def test_load_sources_invalid_names() -> None:
    files = [("V1__ok.sql", TEXT), ("notes.sql", TEXT), ("v2__bad.sql", TEXT)]
    with pytest.raises(SourceError) as excinfo:
        load_sources(files)
    assert str(excinfo.value) == (
        f"Invalid migration file name 'notes.sql', 'v2__bad.sql': expected {NAME_PATTERNS}."
    )


@pytest.mark.parametrize(
    ("version", "equal_versions"),
    [
        pytest.param("1_3", ["1.3"], id="underscore-is-dot"),
        pytest.param("001", ["1", "1.0", "1.0.0"], id="zeros-do-not-count"),
    ],
)
def test_parse_source_equal_versions(version: str, equal_versions: list[str]) -> None:
    migration = parse_source(f"V{version}__a.sql", TEXT)
    for other in equal_versions:
        assert parse_source(f"V{other}__b.sql", TEXT).key == migration.key


def test_load_sources_orders_versions_numerically() -> None:
    files = [
        ("R__totals.sql", TEXT),
        ("V2__b.sql", TEXT),
        ("V1.10__d.sql", TEXT),
        ("R__accounts.sql", TEXT),
        ("V1.9__c.sql", TEXT),
        ("V1__a.sql", TEXT),
        ("V1_2__e.sql", TEXT),
    ]
    scripts = [migration.script for migration in load_sources(files)]
    assert scripts == [
        "V1__a.sql",
        "V1_2__e.sql",
        "V1.9__c.sql",
        "V1.10__d.sql",
        "V2__b.sql",
        "R__accounts.sql",
        "R__totals.sql",
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param(
            [("V1__create_customers.sql", TEXT), ("V001__seed.sql", TEXT)],
            "Duplicate migrations: 'V001__seed.sql' and 'V1__create_customers.sql' share "
            f"version 1. {DUPLICATE_ADVICE}",
            id="leading-zeros",
        ),
        pytest.param(
            [("V1.0__seed.sql", TEXT), ("V1__create_customers.sql", TEXT)],
            "Duplicate migrations: 'V1.0__seed.sql' and 'V1__create_customers.sql' share "
            f"version 1. {DUPLICATE_ADVICE}",
            id="trailing-zero",
        ),
        pytest.param(
            [("schema/V2__a.sql", TEXT), ("views/V2__b.sql", TEXT)],
            "Duplicate migrations: 'schema/V2__a.sql' and 'views/V2__b.sql' share version 2. "
            f"{DUPLICATE_ADVICE}",
            id="different-directories",
        ),
        pytest.param(
            [("V1__a.sql", TEXT), ("V1__b.sql", TEXT), ("V3__c.sql", TEXT), ("V3.0__d.sql", TEXT)],
            "Duplicate migrations: 'V1__a.sql' and 'V1__b.sql' share version 1; 'V3.0__d.sql' "
            f"and 'V3__c.sql' share version 3. {DUPLICATE_ADVICE}",
            id="two-clashes",
        ),
    ],
)
def test_load_sources_duplicate_versions(files: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(SourceError) as excinfo:
        load_sources(files)
    assert str(excinfo.value) == message


def test_load_sources_duplicate_message_order() -> None:
    files = [("V1__create_customers.sql", TEXT), ("V1.0__seed.sql", TEXT)]
    with pytest.raises(SourceError) as forward:
        load_sources(files)
    with pytest.raises(SourceError) as backward:
        load_sources(list(reversed(files)))
    assert str(forward.value) == str(backward.value)


def test_load_sources_duplicate_repeatables() -> None:
    files = [("views/R__totals.sql", TEXT), ("reports/R__totals.sql", TEXT)]
    with pytest.raises(SourceError) as excinfo:
        load_sources(files)
    assert str(excinfo.value).startswith(
        "Duplicate migrations: 'reports/R__totals.sql' and 'views/R__totals.sql' share "
        "description 'totals'."
    )


def test_load_sources_duplicate_repeatables_advice() -> None:
    # A repeatable migration has no version, so the advice must ask for another description.
    files = [("views/R__totals.sql", TEXT), ("reports/R__totals.sql", TEXT)]
    with pytest.raises(SourceError) as excinfo:
        load_sources(files)
    assert str(excinfo.value) == (
        "Duplicate migrations: 'reports/R__totals.sql' and 'views/R__totals.sql' share "
        f"description 'totals'. {DUPLICATE_ADVICE}"
    )


@pytest.mark.parametrize(
    ("script", "description"),
    [
        pytest.param("V1__create_customers.sql", "create customers", id="underscores"),
        pytest.param("V1__add__index.sql", "add  index", id="double-underscore"),
        pytest.param("V1___leading.sql", "leading", id="leading-underscore"),
        pytest.param("R__Invoice_Totals.sql", "Invoice Totals", id="case-kept"),
    ],
)
def test_parse_source_description(script: str, description: str) -> None:
    assert parse_source(script, TEXT).description == description


def test_checksum_is_sha256_of_text() -> None:
    assert checksum(TEXT) == hashlib.sha256(TEXT.encode("utf-8")).hexdigest()


def test_parse_source_checksum() -> None:
    assert parse_source("V1__a.sql", TEXT).checksum == checksum(TEXT)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param("\ufeff" + TEXT, id="bom"),
        pytest.param("SELECT 1;\r\nSELECT 2;\r\n", id="crlf"),
        pytest.param("\ufeffSELECT 1;\r\nSELECT 2;\r\n", id="bom-and-crlf"),
    ],
)
def test_checksum_ignores_bom_and_crlf(variant: str) -> None:
    plain = variant.removeprefix("\ufeff").replace("\r\n", "\n")
    assert checksum(variant) == checksum(plain)


def test_parse_source_text_normalised() -> None:
    migration = parse_source("V1__a.sql", "\ufeffSELECT 1;\r\nSELECT 2;\r\n")
    assert migration.text == "SELECT 1;\nSELECT 2;\n"


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param("CREATE TABLE customers (id integer PRIMARY KEY);\n", id="type-changed"),
        pytest.param("CREATE TABLE customers (id bigint PRIMARY KEY);", id="newline-removed"),
        pytest.param("CREATE TABLE customers (id bigint PRIMARY KEY); \n", id="space-added"),
        pytest.param("create table customers (id bigint primary key);\n", id="case-changed"),
    ],
)
def test_checksum_changes_with_text(changed: str) -> None:
    assert checksum(changed) != checksum(TEXT)


def write(path: Path, content: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)


@pytest.fixture
def migration_tree(tmp_path: Path) -> Path:
    """Create a migration directory with nested folders and files that are not migrations."""
    write(tmp_path / "V5__top_level.sql", "SELECT 5;\n")
    write(tmp_path / "README.md", "# not a migration\n")
    write(tmp_path / "schema" / "V2__create_invoices.sql", "SELECT 2;\n")
    write(tmp_path / "schema" / "V1__create_customers.sql", "SELECT 1;\n")
    write(tmp_path / "schema" / "V3__notes.txt", "SELECT 3;\n")
    write(tmp_path / "views" / "nested" / "R__invoice_totals.sql", "\ufeffSELECT 4;\r\n")
    write(tmp_path / "empty" / ".keep", "")
    return tmp_path


def test_read_directories_scripts(migration_tree: Path) -> None:
    scripts = [script for script, _text in read_directories([str(migration_tree)])]
    assert scripts == [
        "V5__top_level.sql",
        "schema/V1__create_customers.sql",
        "schema/V2__create_invoices.sql",
        "views/nested/R__invoice_totals.sql",
    ]


def test_read_directories_texts(migration_tree: Path) -> None:
    files = dict(read_directories([str(migration_tree)]))
    assert files["schema/V1__create_customers.sql"] == "SELECT 1;\n"
    assert files["views/nested/R__invoice_totals.sql"] == "\ufeffSELECT 4;\r\n"


def test_read_directories_several(tmp_path: Path) -> None:
    write(tmp_path / "base" / "V1__a.sql", "SELECT 1;\n")
    write(tmp_path / "extra" / "sub" / "V2__b.sql", "SELECT 2;\n")
    directories = [str(tmp_path / "base"), str(tmp_path / "extra")]
    scripts = [script for script, _text in read_directories(directories)]
    assert scripts == ["V1__a.sql", "sub/V2__b.sql"]


def empty_directory_warning(directory: Path) -> str:
    return (
        f"Migration directory {str(directory)!r} contains no .sql or .sql.j2 file, in it or in "
        "a subdirectory, so it adds no migration. Check path for a typo, or remove the "
        "directory from it."
    )


def test_read_directories_warns_empty(tmp_path: Path) -> None:
    write(tmp_path / "base" / "V1__a.sql", "SELECT 1;\n")
    write(tmp_path / "reporting" / "README.md", "# no migration\n")
    write(tmp_path / "reporting" / "sub" / ".#V2__b.sql", "lock\n")
    warnings: list[str] = []

    files = read_directories([str(tmp_path / "base"), str(tmp_path / "reporting")], warnings.append)

    assert [script for script, _text in files] == ["V1__a.sql"]
    assert warnings == [empty_directory_warning(tmp_path / "reporting")]


def test_read_directories_nested_file_no_warning(migration_tree: Path) -> None:
    warnings: list[str] = []
    read_directories([str(migration_tree)], warnings.append)
    assert warnings == [], "a subdirectory without migrations was reported"


def test_read_directories_all_empty(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    warnings: list[str] = []

    files = read_directories([str(tmp_path / "one"), str(tmp_path / "two")], warnings.append)

    assert files == []
    assert warnings == [
        empty_directory_warning(tmp_path / "one"),
        empty_directory_warning(tmp_path / "two"),
    ]


def test_read_directories_not_utf8(tmp_path: Path) -> None:
    write(tmp_path / "schema" / "V1__latin1.sql", b"SELECT 'caf\xe9';\n")
    path = os.path.join(str(tmp_path), "schema", "V1__latin1.sql")
    message = f"{path} is not valid UTF-8 (byte 11): save migration files as UTF-8."
    with pytest.raises(SourceError) as excinfo:
        read_directories([str(tmp_path)])
    assert str(excinfo.value) == message


def test_read_directories_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(SourceError) as excinfo:
        read_directories([missing])
    assert str(excinfo.value) == f"Migration directory {missing!r} not found."


@pytest.mark.parametrize("version", ["-1", "1..2", "1.", "", "1a", " 1"])
def test_version_key_rejects_non_versions(version: str) -> None:
    with pytest.raises(ValueError, match="invalid version"):
        version_key(version)


def test_read_directories_skips_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "V1__create.sql").write_text("SELECT 1;\n", encoding="utf-8")
    (tmp_path / ".#V1__create.sql").write_text("lock\n", encoding="utf-8")

    assert [script for script, _text in read_directories([str(tmp_path)])] == ["V1__create.sql"]


def test_upper_case_extension_is_invalid_name(tmp_path: Path) -> None:
    (tmp_path / "V1__create.SQL").write_text("SELECT 1;\n", encoding="utf-8")
    files = read_directories([str(tmp_path)])

    with pytest.raises(
        SourceError, match=re.escape("Invalid migration file name 'V1__create.SQL'")
    ):
        load_sources(files)
