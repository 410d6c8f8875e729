"""Declarative views: their declarations, and verify and rebuild on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventdocs.errors import DeclarationError
from eventdocs.projections.declared import DeclaredView, declare_view, parse_views
from eventdocs.projections.replay import verify
from eventdocs.projections.views import rebuild_view
from eventdocs.resources import load_target, load_views
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.storage.contract import ProjectionBatch, ViewWrite
from eventdocs.times import ManualClock

ROOT = Path(__file__).resolve().parents[2]
BLOG_JSON = ROOT / "examples" / "blog.json"
[POST] = load_target(str(BLOG_JSON))


def view(**entry: Any) -> DeclaredView:
    base: dict[str, Any] = {
        "name": "v",
        "source": "post",
        "group_by": ["author"],
        "aggregates": {"n": {"count": "*"}},
    }
    built = parse_views([{**base, **entry}])[0]
    built.bind(POST)
    return built


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"name": "Bad-Name"}, "views[0].name"),
        ({"group_by": "author"}, "views[0].group_by"),
        ({"group_by": ["nope"]}, "views.v.group_by"),
        ({"group_by": ["tags"]}, "views.v.group_by"),
        ({"aggregates": {}}, "views[0].aggregates"),
        ({"aggregates": {"n": {"median": "blog"}}}, "views[0].aggregates.n"),
        ({"aggregates": {"n": {"sum": "title"}}}, "views.v.aggregates.n"),
        ({"aggregates": {"n": {"sum": "*"}}}, "views.v.aggregates.n"),
        ({"aggregates": {"n": {"max": "published"}}}, "views.v.aggregates.n"),
        ({"aggregates": {"author": {"count": "*"}}}, "views.v.aggregates.author"),
        ({"aggregates": {"_n": {"count": "*"}}}, "views[0].aggregates._n"),
        ({"where": {"nope": 1}}, "views.v.where.nope"),
        ({"where": {"title__gt": "a", "blog__contains": 1}}, "views.v.where.blog__contains"),
        ({"where": {"posted__gt": "soon"}}, "views.v.where.posted__gt"),
        ({"colour": "red"}, "views[0].colour"),
    ],
)
def test_a_wrong_declaration_names_where_it_is_wrong(entry: dict[str, Any], path: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        view(**entry)
    assert caught.value.errors[0].path == path


def test_a_view_of_an_undeclared_source_is_refused(tmp_path: Path) -> None:
    data = json.loads(BLOG_JSON.read_text())
    data["views"][0]["source"] = "comment"
    target = tmp_path / "decl.json"
    target.write_text(json.dumps(data))
    with pytest.raises(DeclarationError, match="comment"):
        load_views(str(target))
    data["views"].append(json.loads(BLOG_JSON.read_text())["views"][0])
    data["views"][0]["source"] = "post"
    target.write_text(json.dumps(data))
    with pytest.raises(DeclarationError, match="two views"):
        load_views(str(target))


def test_a_python_target_declares_views_without_code(tmp_path: Path) -> None:
    target = tmp_path / "shop.py"
    target.write_text(
        "from eventdocs.fields import Integer, Text\n"
        "from eventdocs.projections.declared import declare_view\n"
        "from eventdocs.resources import Resource\n\n"
        "class Order(Resource):\n"
        "    name = 'order'\n"
        "    class schema:\n"
        "        shop = Text(operators=['equal'])\n"
        "        total = Integer()\n\n"
        "views = [declare_view(name='per_shop', source='order', group_by=['shop'],\n"
        "                      aggregates={'orders': {'count': '*'}, 'sum': {'sum': 'total'}})]\n"
    )
    [per_shop] = load_views(str(target))
    assert isinstance(per_shop, DeclaredView)
    assert list(per_shop.fields) == ["shop", "orders", "sum"]


async def test_verify_sees_a_corrupted_declarative_view_and_rebuild_mends_it() -> None:
    clock = ManualClock()
    views = load_views(str(BLOG_JSON))
    service = Service(
        open_store("memory:", clock=clock), [POST], views=views, clock=clock, background=False
    )
    async with service:
        posts = service.documents("post")
        for author in ("ann", "ann", "bob"):
            await posts.create({"title": "t", "blog": 1, "author": author, "published": True})
        store = service.store
        assert await verify(store, ["post"], views) == []
        checkpoint = await store.read_checkpoint("post")
        wrong = ViewWrite(puts={'["ann"]': {"author": "ann", "posts": 7}}, deletes=['["bob"]'])
        batch = ProjectionBatch(checkpoint, views={"posts_per_author": wrong})
        assert await store.write_projection("post", batch)
        diffs = await verify(store, ["post"], views)
        assert sorted(d.id for d in diffs) == ['["ann"]', '["bob"]']
        assert {d.collection for d in diffs} == {"view"}
        await rebuild_view(store, views[0])
        assert await verify(store, ["post"], views) == []


def test_declare_view_checks_its_arguments() -> None:
    with pytest.raises(DeclarationError):
        declare_view(name="x", source="post", aggregates={"n": {"count": "*", "sum": "a"}})
