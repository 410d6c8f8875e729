"""Resource declarations: compiling, validating, versions, custom requests, loading."""

# Mesh-style declarations are class attributes holding lists and dicts by design.
# ruff: noqa: RUF012

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from eventdocs.errors import DeclarationError, ErrorDetail, InvalidRequest, ValidationFailed
from eventdocs.fields import (
    UUID,
    Boolean,
    DateTime,
    Decimal,
    Field,
    Integer,
    Sequence,
    Structure,
    Text,
)
from eventdocs.resources import (
    STANDARD_REQUESTS,
    CustomRequest,
    Resource,
    ResourceSpec,
    load_declarations,
    load_target,
    load_views,
)
from eventdocs.storage.contract import IndexSpec


class Post(Resource):
    """A blog post, as in mesh's wiki."""

    name = "post"
    version = 1

    class schema:
        title = Text(operators=["contains"])
        author = Text(operators=["equal"])
        body = Text(operators=["contains"])
        blog = Integer(required=True, nonnull=True, operators=["equal"])
        posted = DateTime(required=True, nonnull=True, operators=["gt", "gte", "lt", "lte"])


POST_JSON: dict[str, Any] = {
    "resources": [
        {
            "name": "post",
            "version": 1,
            "description": "A blog post, as in mesh's wiki.",
            "schema": {
                "type": "object",
                "properties": {
                    "title": {"type": ["string", "null"]},
                    "author": {"type": ["string", "null"]},
                    "body": {"type": ["string", "null"]},
                    "blog": {"type": "integer"},
                    "posted": {"type": "string", "format": "date-time"},
                },
                "required": ["blog", "posted"],
            },
            "operators": {
                "title": ["contains"],
                "author": ["equal"],
                "body": ["contains"],
                "blog": ["equal"],
                "posted": ["gt", "gte", "lt", "lte"],
            },
        }
    ]
}


class Article(Resource):
    name = "article"
    version = 1

    class schema:
        title = Text(
            required=True,
            nonnull=True,
            min_length=1,
            sortable=True,
            operators=["contains", "icontains"],
        )
        tags = Sequence(Text(nonnull=True, max_length=5), default=[])
        address = Structure({"city": Text(required=True, operators=["equal"]), "zip": Text()})
        price = Decimal(minimum=0)
        created = DateTime(readonly=True)
        status = Text(default="draft", operators=["equal", "in"])

    class hello:
        """Say hello."""

        endpoint = ("post", "/hello/")
        schema = {"name": Text(required=True, nonnull=True)}
        responses = {200: {"message": Text(required=True, nonnull=True)}, 204: None}

    class get(Resource.get):
        fields = {"additional_field": Text()}


class ArticleV2(Article):
    version = 2

    class schema:
        status = None
        pages = Integer(minimum=1, sortable=True)


def test_mesh_post_compiles() -> None:
    spec = Post.spec()
    assert spec is Post.spec() is Post._eventdocs_spec  # type: ignore[attr-defined]
    assert (spec.name, spec.version, spec.prefix) == ("post", 1, "/v1/post")
    assert list(spec.fields) == ["title", "author", "body", "blog", "posted"]
    assert spec.requests == frozenset(STANDARD_REQUESTS)
    assert spec.custom == {} and spec.overrides == {}
    assert not spec.client_ids
    assert spec.description == "A blog post, as in mesh's wiki."
    assert spec.declaration is Post
    assert spec.json_schema == {
        "type": "object",
        "properties": {
            "title": {"type": ["string", "null"]},
            "author": {"type": ["string", "null"]},
            "body": {"type": ["string", "null"]},
            "blog": {"type": "integer"},
            "posted": {"type": "string", "format": "date-time"},
        },
        "required": ["blog", "posted"],
        "additionalProperties": False,
    }
    assert spec.indexes() == [
        IndexSpec("title", "text"),
        IndexSpec("author", "text"),
        IndexSpec("body", "text"),
        IndexSpec("blog", "integer"),
        IndexSpec("posted", "time"),
    ]


def test_validate_reports_every_failing_path_at_once() -> None:
    spec = Article.spec()
    with pytest.raises(ValidationFailed) as caught:
        spec.validate(
            {
                "title": "",
                "tags": ["ok", "ok", "too long"],
                "address": {"zip": "1"},
                "price": "-1",
                "colour": "red",
                "id": "x",
            }
        )
    assert caught.value.errors == (
        ErrorDetail("/title", "must be longer than or equal to 1 characters"),
        ErrorDetail("/tags/2", "must be shorter than or equal to 5 characters"),
        ErrorDetail("/address/city", "is required"),
        ErrorDetail("/price", "must be bigger than or equal to 0"),
        ErrorDetail("/colour", "unknown field"),
        ErrorDetail("/id", "is assigned by the server"),
    )
    with pytest.raises(ValidationFailed) as caught:
        spec.validate({})
    assert caught.value.errors == (ErrorDetail("/title", "is required"),)
    with pytest.raises(ValidationFailed):
        spec.validate(["not", "an", "object"])


def test_validate_applies_defaults_and_normalizes() -> None:
    spec = Article.spec()
    doc = spec.validate(
        {
            "price": 12.50,
            "created": "2024-03-01T10:00:00+01:00",
            "address": {"city": "Oslo"},
            "title": "Hi",
        }
    )
    assert doc == {
        "title": "Hi",
        "tags": [],
        "address": {"city": "Oslo"},
        "price": "12.5",
        "created": "2024-03-01T09:00:00.000000Z",
        "status": "draft",
    }
    assert list(doc) == list(spec.fields)[: len(doc)]  # declaration order
    assert spec.validate({"title": "x", "status": None})["status"] is None


def test_validate_update() -> None:
    spec = Article.spec()
    assert spec.validate_update({"price": "3.10", "tags": ["a"]}) == {"price": "3.1", "tags": ["a"]}
    with pytest.raises(ValidationFailed) as caught:
        spec.validate_update(
            {"id": "x", "created": "2024-01-01T00:00:00Z", "nope": 1, "title": None, "price": "x"}
        )
    assert caught.value.errors == (
        ErrorDetail("/id", "cannot be changed"),
        ErrorDetail("/created", "is read-only"),
        ErrorDetail("/nope", "unknown field"),
        ErrorDetail("/title", "must be string"),
        ErrorDetail(
            "/price", "must match pattern ^[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d{1,3})?$"
        ),
    )
    merged = spec.validate_update({"price": None, "address": {"zip": None}}, merge=True)
    assert merged == {"price": None, "address": {"zip": None}}
    with pytest.raises(ValidationFailed) as caught:
        spec.validate_update({"title": None}, merge=True)
    assert caught.value.errors == (ErrorDetail("/title", "is required and cannot be removed"),)
    schema = spec.update_schema()
    assert "created" not in schema["properties"] and "required" not in schema


def test_custom_requests_and_overrides() -> None:
    spec = Article.spec()
    hello = spec.custom["hello"]
    assert isinstance(hello, CustomRequest)
    assert (hello.name, hello.method, hello.path) == ("hello", "POST", "hello")
    assert hello.description == "Say hello."
    assert hello.validate({"name": "Ann"}) == {"name": "Ann"}
    with pytest.raises(ValidationFailed) as caught:
        hello.validate({"name": None, "x": 1})
    assert [e.path for e in caught.value.errors] == ["/name", "/x"]
    assert hello.json_schema()["required"] == ["name"]
    assert hello.response_schema(200) == {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
        "additionalProperties": False,
    }
    assert hello.response_schema(204) is None
    assert spec.overrides == {"get": {"additional_field": Text()}}
    document = spec.document_schema("get")
    assert "additional_field" in document["properties"]
    assert document["required"] == ["id", "title", "_rev", "_updated"]
    assert "additional_field" not in spec.document_schema("query")["properties"]


def test_later_version_inherits() -> None:
    v1, v2 = Article.spec(), ArticleV2.spec()
    assert v2.name == v1.name and v2.version == 2 and v2.prefix == "/v2/article"
    assert list(v2.fields) == ["title", "tags", "address", "price", "created", "pages"]
    assert "status" in v1.fields  # the earlier version is untouched
    assert v2.requests == v1.requests
    assert v2.custom == v1.custom
    assert v2.overrides == v1.overrides
    assert IndexSpec("pages", "integer") in v2.indexes()
    assert IndexSpec("status", "text") not in v2.indexes()

    class ArticleV3(ArticleV2):
        version = 3
        requests = ["query", "get"]
        hello = None

        class get(ArticleV2.get):
            fields = {"extra": Boolean()}

        class bye:
            endpoint = ("DELETE", "{id}/bye")

    v3 = ArticleV3.spec()
    assert v3.requests == frozenset({"query", "get"})
    assert list(v3.custom) == ["bye"]
    assert v3.overrides == {"get": {"additional_field": Text(), "extra": Boolean()}}
    assert v3.custom["bye"].responses == {} and v3.custom["bye"].fields == {}


def test_schema_as_dict_and_string_requests() -> None:
    class Thing(Resource):
        name = "thing"
        requests = "query get"
        schema = {"label": Text(operators=["iequal"])}

    spec = Thing.spec()
    assert spec.version == 1 and spec.requests == frozenset({"query", "get"})
    assert spec.fields == {"label": Text(operators=["iequal"])}


def test_client_supplied_ids() -> None:
    class Tag(Resource):
        name = "tag"

        class schema:
            id = UUID(required=True, operators=["equal"])
            label = Text()

    spec = Tag.spec()
    assert spec.client_ids
    assert spec.json_schema["required"] == ["id"]
    assert spec.json_schema["properties"]["id"] == {"type": "string", "format": "uuid"}
    raw = "ABCDEF00-0000-0000-0000-000000000000"
    assert spec.validate_id(raw) == raw.lower()
    assert spec.validate({"id": raw, "label": "x"}) == {"id": raw.lower(), "label": "x"}
    assert spec.validate({"label": "x"}) == {"label": "x"}  # id travels beside the data
    with pytest.raises(ValidationFailed) as caught:
        spec.validate_id(None)
    assert caught.value.errors[0].path == "/id"
    with pytest.raises(ValidationFailed, match="assigned by the server"):
        Post.spec().validate_id("abc")
    assert spec.field_for("id") is spec.fields["id"]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"id": Boolean(required=True)}, "must be Text, UUID or Integer"),
        ({"id": Integer(required=True, operators=["gt"])}, "equal, not, in and notin only"),
        ({"id": Text()}, "must be required"),
        ({"limit": Integer(operators=["equal"])}, "is a query parameter"),
        ({"title": Text}, "must be instantiated"),
        ({"_secret": Text()}, "cannot name a field"),
    ],
)
def test_bad_schemas(declared: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):

        class Bad(Resource):
            name = "bad"
            schema = declared


def _declare(**attrs: Any) -> ResourceSpec:
    return type("Bad", (Resource,), {"name": "bad", **attrs}).spec()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("attrs", "path", "message"),
    [
        ({"name": "Bad Name"}, "Bad.name", "not a resource name"),
        ({"version": 0}, "Bad.version", "not a positive integer"),
        ({"requests": ["query", "hello"]}, "Bad.requests", "not a standard request"),
        (
            {"requests": ["get"], "update": type("update", (Resource.update,), {})},
            "Bad.update",
            "not among the resource's requests",
        ),
        ({"fetch": type("fetch", (Resource.get,), {})}, "Bad.fetch", "extend a standard request"),
        ({"hello": type("hello", (), {})}, "Bad.hello.endpoint", "needs endpoint"),
        (
            {"hello": type("hello", (), {"endpoint": ("FETCH", "x")})},
            "Bad.hello.endpoint",
            "'FETCH' is not one of",
        ),
        (
            {"hello": type("hello", (), {"endpoint": ("GET", "{key}/revisions")})},
            "Bad.hello.endpoint",
            "taken by the standard requests",
        ),
        (
            {"hello": type("hello", (), {"endpoint": ("POST", "_bulk")})},
            "Bad.hello.endpoint",
            "taken by the standard requests",
        ),
        (
            {
                "a": type("a", (), {"endpoint": ("POST", "{id}/x")}),
                "b": type("b", (), {"endpoint": ("POST", "{key}/x")}),
            },
            "Bad.b.endpoint",
            "same route as 'a'",
        ),
        (
            {"hello": type("hello", (), {"endpoint": ("GET", "x"), "responses": {"ok": {}}})},
            "Bad.hello.responses",
            "not an HTTP status",
        ),
        (
            {"hello": type("hello", (), {"endpoint": ("GET", "x"), "schema": {"a": 1}})},
            "Bad.hello.schema.a",
            "expected a Field",
        ),
    ],
)
def test_bad_declarations_name_the_path(attrs: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        _declare(**attrs)
    assert caught.value.errors[0].path == path


def test_field_for() -> None:
    spec = Article.spec()
    assert spec.field_for("title") is spec.fields["title"]
    assert spec.field_for("address.city") == Text(required=True, operators=["equal"])
    server_id = spec.field_for("id")
    assert server_id.kind == "text" and "in" in server_id.operators and server_id.sortable
    for unknown in ("nope", "address.country", "title.x"):
        with pytest.raises(InvalidRequest) as caught:
            spec.field_for(unknown)
        assert caught.value.errors[0].path == f"?{unknown}"
        assert not isinstance(caught.value, ValidationFailed)


def test_indexes_include_nested_fields() -> None:
    assert Article.spec().indexes() == [
        IndexSpec("title", "text"),
        IndexSpec("address.city", "text"),
        IndexSpec("status", "text"),
    ]


# -- the JSON declarations file --------------------------------------------------


def _same_behaviour(a: ResourceSpec, b: ResourceSpec) -> None:
    assert a == b
    assert a.fields == b.fields
    assert a.json_schema == b.json_schema
    assert a.indexes() == b.indexes()
    good = {"title": "t", "blog": 1, "posted": "2024-01-01T00:00:00+02:00"}
    assert a.validate(good) == b.validate(good)
    bad = {"title": 3, "posted": "soon", "x": 1}
    with pytest.raises(ValidationFailed) as first:
        a.validate(bad)
    with pytest.raises(ValidationFailed) as second:
        b.validate(bad)
    assert first.value.errors == second.value.errors
    assert len(first.value.errors) == 4


def test_json_declarations_equal_the_python_declaration(tmp_path: Path) -> None:
    path = tmp_path / "post.json"
    path.write_text(json.dumps(POST_JSON))
    for source in (POST_JSON, json.dumps(POST_JSON), path, str(path)):
        [spec] = load_declarations(source)
        _same_behaviour(spec, Post.spec())
        assert spec.description == Post.spec().description


def test_json_versions_inherit_from_earlier_ones() -> None:
    v2_entry = {
        "name": "post",
        "version": 2,
        "schema": {
            "properties": {"body": None, "rating": {"type": "integer", "minimum": 0}},
            "required": ["title"],
        },
        "operators": {"rating": ["gt"]},
        "sortable": ["rating", "posted"],
        "requests": ["query", "get"],
        "custom": {
            "hello": {
                "endpoint": ["POST", "hello"],
                "schema": {"properties": {"name": {"type": "string"}}},
                "responses": {
                    "200": {"properties": {"message": {"type": "string"}}, "required": ["message"]}
                },
            }
        },
        "overrides": {"get": {"properties": {"additional_field": {"type": ["string", "null"]}}}},
    }
    v2, v1 = load_declarations({"resources": [v2_entry, *POST_JSON["resources"]]})
    assert (v1.version, v2.version) == (1, 2)
    _same_behaviour(v1, Post.spec())

    class PostV2(Post):
        version = 2
        requests = ["query", "get"]

        class schema:
            body = None
            title = Text(required=True, operators=["contains"])
            rating = Integer(nonnull=True, minimum=0, operators=["gt"], sortable=True)
            posted = DateTime(
                required=True, nonnull=True, sortable=True, operators=["gt", "gte", "lt", "lte"]
            )

        class hello:
            endpoint = ("POST", "hello")
            schema = {"name": Text(nonnull=True)}
            responses = {200: {"message": Text(required=True, nonnull=True)}}

        class get(Resource.get):
            fields = {"additional_field": Text()}

    assert v2.fields == PostV2.spec().fields
    assert v2.custom == PostV2.spec().custom
    assert v2 == PostV2.spec()


def test_json_nested_operators() -> None:
    [spec] = load_declarations(
        {
            "resources": [
                {
                    "name": "place",
                    "schema": {
                        "properties": {
                            "address": {
                                "type": "object",
                                "properties": {"city": {"type": "string"}},
                            }
                        }
                    },
                    "operators": {"address.city": ["equal", "iprefix"]},
                }
            ]
        }
    )
    assert spec.field_for("address.city").operators == ("equal", "iprefix")
    assert spec.indexes() == [IndexSpec("address.city", "text")]


def _entry(**changes: Any) -> dict[str, Any]:
    entry = json.loads(json.dumps(POST_JSON["resources"][0]))
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"resources": [_entry(operators={"title": ["gt", "between"]})]},
            "resources[0].operators.title",
            "unknown operator 'between'",
        ),
        (
            {"resources": [_entry(operators={"blog": ["contains"]})]},
            "resources[0].operators.blog",
            "does not apply to Integer",
        ),
        (
            {"resources": [_entry(operators={"missing": ["equal"]})]},
            "resources[0].operators.missing",
            "not a property",
        ),
        (
            {"resources": [_entry(operators={"title": "contains"})]},
            "resources[0].operators.title",
            "expected a list",
        ),
        (
            {"resources": [_entry(sortable=["title", "nope"])]},
            "resources[0].sortable",
            "not a property",
        ),
        (
            {"resources": [_entry(schema={"properties": {"a": {"type": "date"}}})]},
            "resources[0].schema.properties.a.type",
            "unsupported type",
        ),
        (
            {"resources": [_entry(schema={"properties": {}, "required": ["a"]})]},
            "resources[0].schema.required",
            "not a property",
        ),
        (
            {"resources": [_entry(schema={"type": "array"})]},
            "resources[0].schema.type",
            "of type 'object'",
        ),
        (
            {"resources": [_entry(schema={"additionalProperties": True})]},
            "resources[0].schema.additionalProperties",
            "never have unknown fields",
        ),
        (
            {"resources": [_entry(), _entry(name="Post")]},
            "resources[1].name",
            "not a resource name",
        ),
        ({"resources": [_entry(), _entry()]}, "resources[1].version", "declared twice"),
        ({"resources": [_entry(version="2")]}, "resources[0].version", "positive integer"),
        ({"resources": [_entry(colour="red")]}, "resources[0].colour", "unknown key"),
        (
            {"resources": [_entry(requests=["query", "hello"])]},
            "resources[0].requests",
            "not a standard request",
        ),
        (
            {"resources": [_entry(custom={"hi": {"endpoint": ["GET"]}})]},
            "resources[0].custom.hi.endpoint",
            "needs endpoint",
        ),
        (
            {"resources": [_entry(overrides={"fetch": {}})]},
            "resources[0].overrides.fetch",
            "not a standard request",
        ),
        ({"resources": {}}, "resources", "expected a list"),
        ({"resource": []}, "resources", "expected a list"),
        ('{"resources": [', "line 1 column 16", "not JSON"),
    ],
)
def test_bad_json_declarations_name_the_path(data: Any, path: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as caught:
        load_declarations(data)
    assert caught.value.errors[0].path == path


def test_missing_declarations_file(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="cannot read"):
        load_declarations(tmp_path / "absent.json")


# -- targets ----------------------------------------------------------------------

TARGET = '''
from eventdocs.fields import Text
from eventdocs.resources import Resource
from helper import COUNT


class Note(Resource):
    name = "note"

    class schema:
        text = Text(operators=["contains"])


class NoteV2(Note):
    version = 2


class Abstract(Resource):
    """No name: a base for others, not a resource."""


views = ["a view"]
RESOURCES = [NoteV2]
'''


@pytest.fixture
def target(tmp_path: Path) -> Path:
    (tmp_path / "helper.py").write_text("COUNT = 1\n")
    path = tmp_path / "notes_app.py"
    path.write_text(textwrap.dedent(TARGET))
    return path


def test_load_python_file(target: Path) -> None:
    specs = load_target(str(target))
    assert [(s.name, s.version) for s in specs] == [("note", 1), ("note", 2)]
    assert load_target(str(target)) == specs
    assert load_views(str(target)) == ["a view"]
    [v2] = load_target(f"{target}:RESOURCES")
    assert v2 is specs[1]


def test_load_module_attribute(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(target.parent))
    assert [s.version for s in load_target("notes_app:RESOURCES")] == [2]
    assert [s.version for s in load_target("notes_app:NoteV2")] == [2]
    assert [s.version for s in load_target("notes_app")] == [1, 2]
    assert load_views("notes_app:Note") == ["a view"]
    assert load_target(f"{__name__}:Post") == [Post.spec()]


def test_load_json_target(tmp_path: Path) -> None:
    path = tmp_path / "decl.json"
    path.write_text(json.dumps(POST_JSON))
    [spec] = load_target(str(path))
    _same_behaviour(spec, Post.spec())
    assert load_views(str(path)) == []


def test_bad_targets(tmp_path: Path, target: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(DeclarationError, match="boom"):
        load_target(str(broken))
    invalid = tmp_path / "invalid.py"
    invalid.write_text(
        "from eventdocs.resources import Resource\n"
        "class X(Resource):\n    name = 'x'\n    requests = ['fetch']\n"
    )
    with pytest.raises(DeclarationError, match=r"X\.requests"):
        load_target(str(invalid))
    with pytest.raises(DeclarationError, match="no such file"):
        load_target(str(tmp_path / "absent.py"))
    with pytest.raises(DeclarationError, match="cannot import"):
        load_target("no_such_module_anywhere:thing")
    with pytest.raises(DeclarationError, match="'nothing' not found"):
        load_target(f"{target}:nothing")
    with pytest.raises(DeclarationError, match="expected resources"):
        load_target(f"{target}:views")
    dupes = tmp_path / "dupes.py"
    dupes.write_text(
        "from eventdocs.resources import Resource\n"
        "class A(Resource):\n    name = 'x'\n"
        "class B(Resource):\n    name = 'x'\n"
    )
    with pytest.raises(DeclarationError, match="declared twice"):
        load_target(str(dupes))


def test_field_instances_are_shared_not_copied() -> None:
    # Fields compile their validator once; versions share the inherited instances.
    assert ArticleV2.spec().fields["title"] is Article.spec().fields["title"]
    assert isinstance(Article.spec().fields["title"], Field)
