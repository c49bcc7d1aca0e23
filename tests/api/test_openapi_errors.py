"""The error answers the OpenAPI document promises (issue 19, defect 9): every operation lists
the error statuses its kind of operation can answer, each with the one error body, FastAPI's
422 for validation errors (answered as 400) is gone, and a 405 names in ``Allow`` every
method the path has. (That the answers keep these promises is what schemathesis checks, in
test_schemathesis.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

NO_DATABASE = {
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/conformance"),
    ("GET", "/styles/glyphs/{fontstack}/{range_name}.pbf"),
    ("GET", "/open311/v2/discovery.json"),
}
"""The operations that never reach the database, so never answer 503."""
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in the document."""
    return [
        (method.upper(), path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]


def test_the_error_body_is_one_schema(openapi: dict[str, Any]) -> None:
    error = openapi["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"status", "code", "message"}
    assert set(error["properties"]) == {"status", "code", "message", "details"}
    text = json.dumps(openapi)
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text


def test_every_operation_lists_the_errors_its_kind_answers(openapi: dict[str, Any]) -> None:
    found = operations(openapi)
    assert len(found) > 70
    for method, path, operation in found:
        statuses = set(operation["responses"])
        parameters = operation.get("parameters", [])
        expected = {"400"}
        if operation.get("security"):
            expected |= {"401", "403"}
        if "{" in path:
            expected.add("404")
        if any(p.get("in") == "header" and p["name"].lower() == "if-match" for p in parameters):
            expected |= {"412", "428"}
        if (method, path) not in NO_DATABASE:
            expected.add("503")
        else:
            assert "503" not in statuses, (method, path)
        assert expected <= statuses, (method, path, expected - statuses)
        for status, response in operation["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)


def test_bounded_and_typed_bodies_list_413_and_415(openapi: dict[str, Any]) -> None:
    for method, path in [
        ("POST", "/collections/{layer_id}/items"),
        ("PUT", "/collections/{layer_id}/items/{feature_id}"),
        ("PATCH", "/collections/{layer_id}/items/{feature_id}"),
        ("POST", "/query/intersects"),
    ]:
        assert {"413", "415"} <= set(openapi["paths"][path][method.lower()]["responses"])
    for method, path in [("POST", "/sensors/readings"), ("POST", "/open311/v2/requests.json")]:
        assert "413" in openapi["paths"][path][method.lower()]["responses"]


def template_regex(template: str) -> re.Pattern[str]:
    """A path template of the document as a regular expression of the paths it matches."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def test_a_405_allows_every_method_of_the_path(client: TestClient, openapi: dict[str, Any]) -> None:
    templates = {path: {m.upper() for m in item} for path, item in openapi["paths"].items()}
    checked = 0
    for template in templates:
        path = re.sub(r"\{[^}]+\}", "x", template)
        allowed = set().union(
            *(methods for t, methods in templates.items() if template_regex(t).fullmatch(path))
        )
        method = next(m for m in METHODS if m not in allowed)
        r = client.request(method, path)
        assert r.status_code == 405, (method, path, r.text)
        assert r.json()["code"] == "method_not_allowed"
        assert set(r.headers["allow"].split(", ")) == allowed, (path, r.headers["allow"])
        checked += len(allowed) > 1
    assert checked >= 10  # paths with several methods were among them
