"""Forwarding headers count only from a trusted proxy (``CITYHEX_TRUSTED_PROXIES``): from
anyone else, ``X-Forwarded-Host``/``-Proto`` change no link CityHex writes (TileJSON, styles,
Features, Open311, the landing page, open data) and ``X-Forwarded-For`` does not choose the
address anonymous reports are limited by. ``cityhex serve`` leaves the decision to CityHex
(uvicorn's own proxy-header handling is off).

In process, the app sees every request come from 10.0.0.5; whether that is a trusted proxy
is set per test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from spatial_api.proxies import proxy_settings
from tests.helpers import running_server

PEER = ("10.0.0.5", 50000)
SPOOF = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
PROXIED = {"X-Forwarded-Host": "maps.example.org", "X-Forwarded-Proto": "https"}
LINKED = [
    "/",
    "/tiles/sensors/tilejson.json",
    "/styles",
    "/styles/city.json",
    "/collections",
    "/collections/sensors",
    "/collections/sensors/items",
    "/collections/sensors/queryables",
    "/open311/v2/discovery.json",
    "/open/",
]
"""Answers that carry absolute links to this server."""
REPORT = {"category": "0102", "lon": 114.0, "lat": 22.5}


@pytest.fixture(scope="module")
def web(new_database) -> Iterator[TestClient]:
    """The app on an empty migrated database, every request from ``PEER``."""
    from spatial_api.app import create_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_PUBLIC_REPORTS_PER_MINUTE", "2")
        with TestClient(create_app(new_database("cityhex_proxy_headers")), client=PEER) as c:
            yield c


@pytest.fixture
def trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """``trust(networks)`` sets CITYHEX_TRUSTED_PROXIES for the test."""

    def set_trusted(networks: str) -> None:
        monkeypatch.setenv("CITYHEX_TRUSTED_PROXIES", networks)
        proxy_settings.cache_clear()

    yield set_trusted
    proxy_settings.cache_clear()


@pytest.mark.parametrize("networks", ["", "192.168.0.0/16,10.0.0.4"])
def test_forwarded_host_and_scheme_from_other_peers_change_no_link(
    web: TestClient, trust: Callable[[str], None], networks: str
) -> None:
    trust(networks)
    for path in LINKED:
        r = web.get(path, headers=SPOOF)
        assert r.status_code == 200, (path, r.text)
        assert "evil.example" not in r.text, path
        assert "http://testserver/" in r.text, path


def test_a_trusted_proxy_sets_the_scheme_and_host_of_every_link(
    web: TestClient, trust: Callable[[str], None]
) -> None:
    trust("10.0.0.0/8")
    for path in LINKED:
        r = web.get(path, headers=PROXIED)
        assert r.status_code == 200, (path, r.text)
        assert "https://maps.example.org/" in r.text and "testserver" not in r.text, path
    tiles = web.get("/tiles/sensors/tilejson.json", headers=PROXIED).json()["tiles"]
    assert tiles == ["https://maps.example.org/tiles/sensors/{z}/{x}/{y}.mvt"]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "evil.example/phish", "X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Host": "evil.example@x", "X-Forwarded-Proto": "ftp"},
        {"X-Forwarded-Host": "a b"},
    ],
)
def test_malformed_forwarded_values_are_ignored_even_from_a_proxy(
    web: TestClient, trust: Callable[[str], None], headers: dict[str, str]
) -> None:
    trust("10.0.0.5")
    tiles = web.get("/tiles/sensors/tilejson.json", headers=headers).json()["tiles"]
    assert tiles == ["http://testserver/tiles/sensors/{z}/{x}/{y}.mvt"]


def limited(web: TestClient, forwarded_for: str) -> bool:
    """Whether an anonymous report claiming to come from ``forwarded_for`` is refused 429."""
    r = web.post("/incidents", json=REPORT, headers={"X-Forwarded-For": forwarded_for})
    assert r.status_code < 500, r.text
    return r.status_code == 429


def test_the_report_limit_counts_the_peer_unless_it_is_a_trusted_proxy(
    web: TestClient, trust: Callable[[str], None]
) -> None:
    trust("")
    assert [limited(web, ip) for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3")] == [
        False,
        False,
        True,
    ]
    trust("10.0.0.0/8")
    assert [limited(web, "4.4.4.4") for _ in range(3)] == [False, False, True]
    assert not limited(web, "5.5.5.5")
    # the client is the nearest hop a trusted proxy did not add: what it claimed before is not
    assert limited(web, "6.6.6.6, 4.4.4.4")
    assert limited(web, "4.4.4.4, 10.0.0.7")


@pytest.mark.subprocess
def test_cityhex_serve_leaves_forwarding_headers_to_cityhex(db_url: str) -> None:
    headers = {**SPOOF, "X-Forwarded-For": "9.9.9.9"}
    with running_server(db_url) as base:
        tiles = httpx.get(f"{base}/tiles/sensors/tilejson.json", headers=headers).json()
        assert tiles["tiles"] == [f"{base}/tiles/sensors/{{z}}/{{x}}/{{y}}.mvt"]
    with running_server(db_url, env={"CITYHEX_TRUSTED_PROXIES": "127.0.0.1"}) as base:
        tiles = httpx.get(f"{base}/tiles/sensors/tilejson.json", headers=PROXIED).json()
        assert tiles["tiles"] == ["https://maps.example.org/tiles/sensors/{z}/{x}/{y}.mvt"]
