"""Every served style is valid MapLibre (gl-style-validate) and points at this server's
TileJSON, whose layers are the ones the style draws."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spatial_api.proxies import proxy_settings
from styles import style_names
from tests.helpers import make_key

VALIDATOR = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "gl-style-validate"
BASE = "https://maps.city.example"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.city.example"}


@pytest.fixture(scope="module")
def web(tiles_city) -> Iterator[tuple[TestClient, dict]]:
    """The app on the tile test city behind a trusted proxy (whose forwarding headers
    count), and an app key."""
    from spatial_api.app import create_app

    url = tiles_city("tiles_styles_city")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_TRUSTED_PROXIES", "127.0.0.1")
        proxy_settings.cache_clear()
        with TestClient(create_app(url), client=("127.0.0.1", 50000)) as client:
            yield client, make_key(url, "app")
    proxy_settings.cache_clear()


def test_the_list_names_every_style(web: tuple[TestClient, dict]) -> None:
    client, _ = web
    listed = client.get("/styles", headers=FORWARDED).json()["styles"]
    assert [s["name"] for s in listed] == style_names()
    assert {"city", "assets", "incidents", "grid", "sensors", "districts"} <= set(style_names())
    assert all(s["url"] == f"{BASE}/styles/{s['name']}.json" and s["title"] for s in listed)


@pytest.mark.style_validator
@pytest.mark.parametrize("name", style_names())
def test_served_style_is_valid_and_uses_this_servers_tiles(
    web: tuple[TestClient, dict], name: str, tmp_path: Path
) -> None:
    if not VALIDATOR.exists():
        pytest.fail("gl-style-validate is missing: run `npm ci` in the repository (package.json)")
    client, key = web
    r = client.get(f"/styles/{name}.json", headers=FORWARDED)
    assert r.status_code == 200
    doc = r.json()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    check = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    drawn: dict[str, set[str]] = {}
    for layer in doc["layers"]:
        if "source" in layer:
            drawn.setdefault(layer["source"], set()).add(layer["source-layer"])
    assert drawn
    for source, layers in drawn.items():
        url = doc["sources"][source]["url"]
        assert url.startswith(f"{BASE}/tiles/") and url.endswith("/tilejson.json")
        tilejson = client.get(url.removeprefix(BASE), headers={**FORWARDED, **key})
        assert tilejson.status_code == 200, url
        offered = {v["id"] for v in tilejson.json()["vector_layers"]}
        assert layers <= offered, (source, layers - offered)
        assert tilejson.json()["tiles"][0].startswith(f"{BASE}/tiles/")


def test_an_unknown_style_is_404_json(web: tuple[TestClient, dict]) -> None:
    client, _ = web
    r = client.get("/styles/nowhere.json")
    assert r.status_code == 404 and r.json()["code"] == "unknown_style"
    assert "city" in r.json()["message"]
