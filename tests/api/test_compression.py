"""Compressed answers: gzip and brotli by Accept-Encoding for JSON, GeoJSON and MVT, each
decoding to the identity bytes, with Vary and an ETag per encoding that revalidates (304) and
that If-Match takes; small and already-compressed bodies and event streams sent as they
are; a cached tile compressed once per encoding, however often it is asked for."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator

import brotli
import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from spatial_api.compression import MINIMUM_SIZE
from spatial_api.routers.docs import ASSET_DIR, ASSET_RELEASE
from tests.helpers import CENTER, make_key, running_server, tile_of

DECODE = {"gzip": gzip.decompress, "br": brotli.decompress}
CODINGS = ("gzip", "br")
Z, X, Y = tile_of(*CENTER, 14)
FAST_TILE = f"/tiles/assets/{Z}/{X}/{Y}.mvt"
"""Answered by the tile fast path (no query string)."""
ROUTE_TILE = f"/tiles/assets,sensors/{Z}/{X}/{Y}.mvt?properties=kind,state"
"""Answered by the tile route (a query string)."""
SCRIPT = f"/static/docs/{ASSET_RELEASE}/swagger-ui-bundle.js"
"""A file sent in many parts (a streamed body), its ETag never revalidated (immutable)."""
DETERMINISTIC = [FAST_TILE, ROUTE_TILE, "/openapi.json", "/styles/city.json", SCRIPT]
"""Answers whose bytes are the same on every request."""
WITH_ETAG = [FAST_TILE, ROUTE_TILE]


@pytest.fixture(scope="module")
def city(tiles_city: Callable[[str], str]) -> str:
    """This module's copy of the tile city."""
    return tiles_city("api_compression")


@pytest.fixture(scope="module")
def web(city: str) -> Iterator[TestClient]:
    """CityHex on the tile city, its tile cache live."""
    from spatial_api.app import create_app

    with TestClient(create_app(city)) as client:
        deadline = time.monotonic() + 60
        while not client.app.state.tiles.caching:  # the cache is used once notices are heard
            assert time.monotonic() < deadline, "the tile cache never went live"
            time.sleep(0.1)
        yield client


def fetch(
    client: TestClient, path: str, coding: str = "identity", headers: dict | None = None
) -> tuple[httpx.Response, bytes]:
    """The answer to GET ``path`` accepting ``coding``, and its body as sent (not decoded)."""
    with client.stream("GET", path, headers={"Accept-Encoding": coding, **(headers or {})}) as r:
        return r, b"".join(r.iter_raw())


def varies_by_encoding(response: httpx.Response) -> bool:
    """Whether the answer says it depends on Accept-Encoding."""
    return "accept-encoding" in response.headers.get("vary", "").lower()


@pytest.mark.parametrize("path", DETERMINISTIC)
def test_each_encoding_decodes_to_the_identity_bytes(web: TestClient, path: str) -> None:
    plain, identity = fetch(web, path)
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert len(identity) > MINIMUM_SIZE and varies_by_encoding(plain)
    for coding in CODINGS:
        r, body = fetch(web, path, coding)
        assert r.status_code == 200
        assert r.headers["content-encoding"] == coding and varies_by_encoding(r)
        assert r.headers["content-type"] == plain.headers["content-type"]
        assert DECODE[coding](body) == identity
        assert len(body) < len(identity) * 0.8


def test_a_feature_page_is_compressed(web: TestClient) -> None:
    path = "/collections/assets/items?limit=1000"
    plain, identity = fetch(web, path)
    assert plain.headers["content-type"].startswith("application/geo+json")
    page = orjson.loads(identity)
    assert len(page["features"]) == 1000
    for coding in CODINGS:
        r, body = fetch(web, path, coding)
        assert r.headers["content-encoding"] == coding and varies_by_encoding(r)
        decoded = orjson.loads(DECODE[coding](body))
        assert {**decoded, "timeStamp": None} == {**page, "timeStamp": None}
        assert len(body) < len(identity) / 4


@pytest.mark.parametrize("path", WITH_ETAG)
def test_each_encoding_has_its_etag_and_revalidates_with_it(web: TestClient, path: str) -> None:
    tags = {
        coding: fetch(web, path, coding)[0].headers["etag"] for coding in ("identity", *CODINGS)
    }
    assert len(set(tags.values())) == 3, tags
    for coding, tag in tags.items():
        r, body = fetch(web, path, coding, {"If-None-Match": tag})
        assert r.status_code == 304 and body == b""
        assert r.headers["etag"] == tag
        again, _ = fetch(web, path, coding, {"If-None-Match": tag})
        assert again.status_code == 304
        stale, _ = fetch(web, path, coding, {"If-None-Match": '"stale"'})
        assert stale.status_code == 200 and stale.headers["etag"] == tag
    held_gzip, _ = fetch(web, path, "br", {"If-None-Match": f'"other", {tags["gzip"]}'})
    assert held_gzip.status_code == 304 and held_gzip.headers["etag"] == tags["gzip"]


def test_if_match_takes_the_etag_of_a_compressed_answer(web: TestClient, city: str) -> None:
    editor = make_key(city, "editor")
    line = [[CENTER[0] + i * 1e-5, CENTER[1] + (i % 7) * 1e-5] for i in range(200)]
    feature = {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": line},
        "properties": {"code": "4403040301999999", "class_code": "0301", "kind": "pipe"},
    }
    created = web.post("/collections/assets/items", json=feature, headers=editor)
    assert created.status_code == 201, created.text
    path = created.headers["location"].split("://", 1)[1].partition("/")[2]
    plain, _ = fetch(web, "/" + path)
    zipped, _ = fetch(web, "/" + path, "gzip")
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] != plain.headers["etag"]
    patch = {"properties": {"name": "renamed"}}
    r = web.patch("/" + path, json=patch, headers={**editor, "If-Match": zipped.headers["etag"]})
    assert r.status_code == 200, r.text
    stale = web.patch(
        "/" + path, json=patch, headers={**editor, "If-Match": zipped.headers["etag"]}
    )
    assert stale.status_code == 412


def test_small_and_already_compressed_bodies_are_sent_as_they_are(web: TestClient) -> None:
    r, body = fetch(web, "/healthz", "gzip, br")
    assert len(body) < MINIMUM_SIZE and "content-encoding" not in r.headers
    assert orjson.loads(body)["status"] == "ok" and varies_by_encoding(r)
    r, body = fetch(web, f"/static/docs/{ASSET_RELEASE}/favicon.png", "gzip, br")
    assert r.headers["content-type"] == "image/png" and "content-encoding" not in r.headers
    assert body == (ASSET_DIR / "favicon.png").read_bytes() and not varies_by_encoding(r)


def test_the_client_weights_choose_the_encoding(web: TestClient) -> None:
    chosen = {
        "gzip, deflate, br": "br",
        "br;q=0.5, gzip": "gzip",
        "gzip;q=0, *": "br",
        "*;q=0.2, gzip;q=0.1": "br",
        "identity": None,
        "br;q=0, gzip;q=0": None,
        "deflate": None,
    }
    for accept, coding in chosen.items():
        r, _ = fetch(web, FAST_TILE, accept)
        assert r.headers.get("content-encoding") == coding, accept


def test_a_cached_tile_is_compressed_once_per_encoding(web: TestClient) -> None:
    cache = web.app.state.tiles.cache
    path = "/tiles/assets/{}/{}/{}.mvt".format(*tile_of(*CENTER, 15))
    before = cache.compressions
    sizes = []
    for _ in range(4):
        for coding in CODINGS:
            r, body = fetch(web, path, coding)
            assert r.status_code == 200 and r.headers["content-encoding"] == coding
            sizes.append(len(body))
    assert r.headers["x-cache"] == "hit"
    assert cache.compressions - before == len(CODINGS)
    assert len(set(sizes[0::2])) == 1 and len(set(sizes[1::2])) == 1


@pytest.mark.subprocess
def test_an_event_stream_is_neither_compressed_nor_held_back(city: str) -> None:
    headers = {**make_key(city, "app"), "Accept-Encoding": "gzip, br"}
    with (
        running_server(city) as base,
        httpx.stream("GET", f"{base}/events", headers=headers, timeout=30) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in r.headers
        first = next(r.iter_lines())  # the stream stays open: this line came on its own
        assert first.startswith(": live")
