"""The API's published contract: the bearer security scheme on every operation that depends
on the caller, the docs page, and a response schema for every JSON answer with a model.

Which operations depend on the caller is computed from the routes themselves (their
dependency trees), not from /openapi.json, so the schema is checked against the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from spatial_api.auth import BEARER, caller_lookup, current_principal

CALLER_DEPENDENCIES = {current_principal, caller_lookup, BEARER}
"""What a route depends on when it looks at the caller (directly or lazily)."""
SCHEMA_ONLY = {("GET", "/grid/lookup"), ("GET", "/collections/{layer_id}/queryables")}
"""Raw responses (for speed, or for their media type) that declare their model for the schema."""
PUBLIC_GETS = [
    "/",
    "/healthz",
    "/metrics",
    "/conformance",
    "/incidents/categories",
    "/incidents/calendar",
    "/open311/v2/discovery.json",
    "/open311/v2/services.json",
]
"""Operations without parameters that do not depend on the caller."""
MALFORMED = {"Authorization": "Basic Zm9vOmJhcg=="}


def calls(dependant: Dependant) -> Iterator[Any]:
    """Every callable in a dependency tree."""
    for sub in dependant.dependencies:
        yield sub.call
        yield from calls(sub)


def api_routes(client: TestClient) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path, route) of every operation in the schema."""
    for context in iter_route_contexts(client.app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in sorted(context.methods or ()):
                yield method, context.path, route


def operation(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The OpenAPI operation of ``method`` on ``path``."""
    return schema["paths"][path][method.lower()]


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    """The served /openapi.json."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_bearer_scheme_is_declared(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"].lower() == "bearer" for s in schemes.values())


def test_every_operation_that_depends_on_the_caller_declares_the_scheme(
    client: TestClient, openapi: dict[str, Any]
) -> None:
    schemes = set(openapi["components"]["securitySchemes"])
    protected, public = set(), set()
    for method, path, route in api_routes(client):
        depends = any(c in CALLER_DEPENDENCIES for c in calls(route.dependant))
        (protected if depends else public).add((method, path))
    assert len(protected) > 40, "the routes were not found"
    for method, path in protected:
        declared = operation(openapi, method, path).get("security", [])
        assert any(set(requirement) & schemes for requirement in declared), (method, path)
    for method, path in public:
        assert "security" not in operation(openapi, method, path), (method, path)


@pytest.mark.parametrize("path", PUBLIC_GETS)
def test_operations_without_the_scheme_ignore_the_authorization_header(
    client: TestClient, path: str
) -> None:
    assert client.get(path, headers=MALFORMED).status_code == 200


def test_a_malformed_header_is_refused_where_the_caller_counts(client: TestClient) -> None:
    # /sensors is open to anonymous callers but depends on the caller (not /collections:
    # its layer extents are cached per process, and this database is empty)
    response = client.get("/sensors", headers=MALFORMED)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"
    assert client.get("/sensors").status_code == 200


def test_docs_page_loads_the_schema(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert client.app.openapi_url in response.text


def test_every_json_operation_with_a_model_documents_its_body(
    client: TestClient, openapi: dict[str, Any]
) -> None:
    modelled = [
        (method, path, str(route.status_code or 200))
        for method, path, route in api_routes(client)
        if route.response_model is not None
    ]
    modelled += [(method, path, "200") for method, path in SCHEMA_ONLY]
    assert len(modelled) > 45, "the routes were not found"
    for method, path, status in modelled:
        content = operation(openapi, method, path)["responses"][status]["content"]
        schema = next(iter(content.values()))["schema"]
        assert schema.get("$ref") or schema.get("items", {}).get("$ref"), (method, path)
