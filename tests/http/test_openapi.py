"""The OpenAPI document: valid 3.1, complete, and true of the running app (schemathesis)."""

from __future__ import annotations

from typing import Any

import schemathesis
from httpkit import POST, Greeter, GreeterV2, Thing, running
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from eventdocs import Service, open_store
from eventdocs.http import create_app
from eventdocs.http.openapi import openapi_document

SPECS = [POST, Thing.spec(), Greeter.spec(), GreeterV2.spec()]


async def test_openapi_is_served_and_valid() -> None:
    async with running(SPECS) as api:
        result = await api.client.simulate_get("/openapi.json")
        assert result.status_code == 200
        document: dict[str, Any] = result.json
    validate(document)  # type: ignore[arg-type]
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    assert set(paths["/v1/post"]) == {"get", "post"}
    assert set(paths["/v1/post/{id}"]) == {"parameters", "get", "put", "patch", "delete"}
    for path in ("revisions", "revisions/{rev}", "revert", "diff"):
        assert f"/v1/post/{{id}}/{path}" in paths
    for path in ("_bulk", "_scheduled", "_scheduled/{seq}"):
        assert f"/v1/post/{path}" in paths
    assert set(paths["/v1/greeter"]) == {"get"}
    assert set(paths["/v1/greeter/{id}"]) == {"parameters", "get"}
    assert "/v1/greeter/{id}/revert" not in paths
    assert "/v2/greeter/{id}/revert" in paths
    assert set(paths["/v1/greeter/hello"]) == {"parameters", "get"}
    assert "post" in paths["/v1/greeter/{key}/shout"]
    assert {"/healthz", "/openapi.json"} <= set(paths)


def test_every_declared_operator_is_a_parameter() -> None:
    document = openapi_document([POST])
    names = {p.get("name") for p in document["paths"]["/v1/post"]["get"]["parameters"]}
    for expected in (
        "title__contains",
        "title__icontains",
        "title__prefix",
        "author",
        "author__in",
        "author__null",
        "blog__gt",
        "posted__lte",
        "id__prefix",
        "sort",
        "fields",
    ):
        assert expected in names
    assert "title__equal" not in names and "title" not in names
    create = document["paths"]["/v1/post"]["post"]
    headers = {p["$ref"].rsplit("/", 1)[1] for p in create["parameters"]}
    assert headers == {"CaesiumTOA", "TOA", "IdempotencyKey"}
    assert {"201", "202", "400", "409", "413", "415", "422"} <= set(create["responses"])
    problem = document["components"]["responses"]["422"]["content"]
    assert "application/problem+json" in problem
    patch = document["paths"]["/v1/post/{id}"]["patch"]["requestBody"]["content"]
    assert set(patch) == {"application/json", "application/merge-patch+json"}


def _schemathesis_app() -> Any:
    service = Service(open_store("memory:"), SPECS, background=False)
    return create_app(service)


APP = _schemathesis_app()
# ``broken`` answers 500 on purpose (see test_declarations).
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex="/broken$")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
    allow_header_conformance,
]


@SCHEMA.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis(case: Any) -> None:
    """A short, bounded run: no server errors, every response as documented."""
    case.call_and_validate(checks=CHECKS)
