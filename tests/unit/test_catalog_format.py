"""catalog.diff, render and summary on hand-built snapshots, without a server."""

from __future__ import annotations

import pytest

from ansible_collections.dbops.migrations.plugins.module_utils._migrations import catalog
from ansible_collections.dbops.migrations.plugins.module_utils._migrations.catalog import (
    CatalogObject,
    Column,
    Constraint,
    Index,
    Relation,
    Snapshot,
    Table,
    Type,
)


def make_snapshot(*objects: CatalogObject) -> Snapshot:
    ordered = sorted(objects, key=lambda item: item.key)
    return Snapshot(schemas=("public",), objects={item.key: item for item in ordered})


def table(name: str, columns: int = 1, oid: int = 1) -> Table:
    return Table(schema="public", name=name, label=f"public.{name}", oid=oid, columns=columns)


def column(table_name: str, name: str, number: int, **fields: object) -> Column:
    values: dict = {"type": "integer", "not_null": False, **fields}
    return Column(
        schema="public",
        relation=table_name,
        name=name,
        label=f"public.{table_name}.{name}",
        number=number,
        **values,
    )


def view(name: str, kind: str = "view", definition: str = " SELECT 1;", oid: int = 1) -> Relation:
    return Relation(
        kind=kind,
        schema="public",
        name=name,
        label=f"public.{name}",
        oid=oid,
        definition=definition,
    )


def enum(name: str, labels: tuple[str, ...], oid: int = 1) -> Type:
    return Type(
        schema="public", name=name, label=f"public.{name}", oid=oid, variety="enum", labels=labels
    )


def render_between(before: list[CatalogObject], after: list[CatalogObject]) -> list[str]:
    return catalog.render(catalog.diff(make_snapshot(*before), make_snapshot(*after))).splitlines()


def test_render_orders_sections_and_members() -> None:
    created = [
        view("totals"),
        column("items", "name", 2, type="text"),
        Index(
            schema="public",
            relation="items",
            relation_kind="table",
            name="items_name_idx",
            label="public.items_name_idx",
            relation_label="public.items",
            unique=False,
            method="USING btree (name)",
        ),
        Constraint(
            kind="primary_key",
            schema="public",
            relation="items",
            name="items_pkey",
            label="public.items.items_pkey",
            definition="PRIMARY KEY (id)",
        ),
        column("items", "id", 1, not_null=True),
        table("items", columns=2),
        enum("status", ("new", "done")),
    ]

    assert render_between([], created) == [
        "+ type public.status enum (new, done)",
        "+ table public.items (2 columns)",
        "+ column public.items.id integer NOT NULL",
        "+ column public.items.name text",
        "+ primary key public.items.items_pkey (id)",
        "+ index public.items_name_idx on public.items USING btree (name)",
        "+ view public.totals",
    ]


def test_render_drop_precedes_create_of_same_name() -> None:
    lines = render_between(
        [view("summary"), view("later")],
        [view("summary", kind="materialized_view"), view("later")],
    )

    assert lines == ["- view public.summary", "+ materialized view public.summary"]


@pytest.mark.parametrize(
    ("before", "after", "line"),
    [
        (
            column("items", "price", 3),
            column("items", "price", 3, type="bigint", not_null=True, default="0"),
            "~ column public.items.price: type integer -> bigint, NOT NULL added,"
            " default none -> 0",
        ),
        (
            column("items", "id", 1, identity="BY DEFAULT"),
            column("items", "id", 1, identity="ALWAYS"),
            "~ column public.items.id: identity BY DEFAULT -> ALWAYS",
        ),
        (
            view("totals", definition=" SELECT 1;"),
            view("totals", definition=" SELECT 2;", oid=2),
            "~ view public.totals: dropped and recreated, definition changed",
        ),
        (
            enum("status", ("new", "done")),
            enum("status", ("new", "open", "done", "archived")),
            "~ type public.status: labels added: open, archived",
        ),
        (
            enum("status", ("new", "done")),
            enum("status", ("done", "new")),
            "~ type public.status: labels (new, done) -> (done, new)",
        ),
        (
            table("items", columns=1),
            table("items", columns=2),
            None,
        ),
    ],
)
def test_render_alteration(before: CatalogObject, after: CatalogObject, line: str | None) -> None:
    expected = [line] if line is not None else []

    assert render_between([before], [after]) == expected


@pytest.mark.parametrize(
    ("labels", "shown"),
    [
        (("plain",), "plain"),
        (("two words",), "two words"),
        (("a,b",), "'a,b'"),
        (("it's",), "'it''s'"),
        (("",), "''"),
        ((" padded",), "' padded'"),
        (("x(1)",), "'x(1)'"),
    ],
)
def test_enum_label_quoting(labels: tuple[str, ...], shown: str) -> None:
    assert enum("status", labels).describe() == f"enum ({shown})"


def test_diff_of_equal_snapshots_is_empty() -> None:
    objects = [table("items"), column("items", "id", 1), enum("status", ("new",))]
    schema_diff = catalog.diff(make_snapshot(*objects), make_snapshot(*objects))

    assert schema_diff.empty
    assert catalog.render(schema_diff) == ""


def test_summary_lists_every_kind() -> None:
    unique_index = Index(
        schema="public",
        relation="items",
        relation_kind="table",
        name="items_key",
        label="public.items_key",
        relation_label="public.items",
        unique=True,
        method="USING btree (id)",
    )
    schema_diff = catalog.diff(
        make_snapshot(view("old")),
        make_snapshot(table("items"), unique_index),
    )
    counts = catalog.summary(schema_diff)

    assert list(counts) == list(catalog.KINDS)
    assert counts["table"] == {"created": 1, "altered": 0, "dropped": 0}
    assert counts["index"] == {"created": 1, "altered": 0, "dropped": 0}
    assert counts["view"] == {"created": 0, "altered": 0, "dropped": 1}
    assert counts["column"] == {"created": 0, "altered": 0, "dropped": 0}
