"""Cross-origin access (CITYHEX_CORS_ORIGINS): listed origins may read answers and get their
preflights answered, with Authorization and If-Match allowed and the ETag readable; other
origins get nothing; nothing is open when no origin is listed; tiles answered by the fast
path are marked like every other answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from spatial_api.routers.tile_fast_path import plain_tile
from spatial_api.settings import ApiSettings, api_settings
from tests.helpers import CENTER, tile_of

PAGE = "http://127.0.0.1:5173"
OTHER_PAGE = "https://app.example.org"
STRANGER = "https://evil.example"
TILE = "/tiles/assets/{}/{}/{}.mvt".format(*tile_of(*CENTER, 14))
"""The tile of the tile city's centre at z14 (raw assets)."""


def app_with_origins(url: str, origins: str) -> TestClient:
    """A client of CityHex on ``url`` started with CITYHEX_CORS_ORIGINS=``origins``."""
    from spatial_api.app import create_app

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CITYHEX_CORS_ORIGINS", origins)
        api_settings.cache_clear()
        try:
            return TestClient(create_app(url))
        finally:
            api_settings.cache_clear()


@pytest.fixture(scope="module")
def city(tiles_city: Callable[[str], str]) -> str:
    """This module's copy of the tile city."""
    return tiles_city("api_cors")


@pytest.fixture(scope="module")
def web(city: str) -> Iterator[TestClient]:
    """CityHex open to two page origins."""
    with app_with_origins(city, f"{PAGE}, {OTHER_PAGE}/") as client:
        yield client


@pytest.fixture(scope="module")
def anyone(city: str) -> Iterator[TestClient]:
    """CityHex open to every origin."""
    with app_with_origins(city, "*") as client:
        yield client


def preflight(client: TestClient, path: str, origin: str, method: str, headers: str) -> object:
    """The answer to a browser's preflight for ``method`` on ``path`` with ``headers``."""
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_a_listed_origin_may_read_answers_and_their_etag(web: TestClient) -> None:
    for origin in (PAGE, OTHER_PAGE):
        r = web.get("/styles/city.json", headers={"Origin": origin})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert "origin" in r.headers["vary"].lower()
        exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
        assert {"etag", "location", "content-crs"} <= exposed
        assert "access-control-allow-credentials" not in r.headers


def test_an_unlisted_origin_gets_no_allow_origin(web: TestClient) -> None:
    r = web.get("/styles/city.json", headers={"Origin": STRANGER})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = preflight(web, "/collections/assets/items/1", STRANGER, "PATCH", "authorization")
    assert "access-control-allow-origin" not in r.headers


def test_a_preflight_allows_authorization_if_match_and_the_api_methods(web: TestClient) -> None:
    requested = "authorization, if-match, content-type"
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        r = preflight(web, "/collections/assets/items/1", PAGE, method, requested)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == PAGE
        assert method in r.headers["access-control-allow-methods"].split(", ")
        allowed = {h.lower() for h in r.headers["access-control-allow-headers"].split(", ")}
        assert {"authorization", "if-match", "if-none-match", "content-type"} <= allowed
        assert "access-control-allow-credentials" not in r.headers


def test_a_tile_from_the_fast_path_is_marked_for_the_page(web: TestClient) -> None:
    deadline = time.monotonic() + 60
    while not web.app.state.tiles.caching:  # the cache is used once change notices are heard
        assert time.monotonic() < deadline, "the tile cache never went live"
        time.sleep(0.1)
    scope = {"type": "http", "method": "GET", "path": TILE, "query_string": b"", "headers": []}
    assert plain_tile(scope) is not None, "the tile must be one the fast path answers"
    for _ in range(2):  # built, then from the cache
        r = web.get(TILE, headers={"Origin": PAGE})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == PAGE
        assert "etag" in r.headers["access-control-expose-headers"].lower()
    assert r.headers["x-cache"] == "hit"
    r = preflight(web, TILE, PAGE, "GET", "authorization")
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PAGE


def test_nothing_is_open_when_no_origin_is_listed(client: TestClient) -> None:
    r = client.get("/styles/city.json", headers={"Origin": PAGE})
    assert "access-control-allow-origin" not in r.headers
    r = preflight(client, "/styles/city.json", PAGE, "GET", "authorization")
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code == 405


def test_every_origin_never_comes_with_credentials(anyone: TestClient) -> None:
    r = anyone.get("/styles/city.json", headers={"Origin": STRANGER, "Cookie": "a=b"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers
    r = preflight(anyone, TILE, STRANGER, "GET", "authorization")
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers


def test_origins_are_read_as_a_comma_list_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHEX_CORS_ORIGINS", " http://localhost:5173/ ,https://a.example.org")
    assert ApiSettings().cors_origins == ["http://localhost:5173", "https://a.example.org"]
    monkeypatch.setenv("CITYHEX_CORS_ORIGINS", "")
    assert ApiSettings().cors_origins == []
    monkeypatch.setenv("CITYHEX_CORS_ORIGINS", "a.example.org/app")
    with pytest.raises(ValidationError, match="scheme://host"):
        ApiSettings()
