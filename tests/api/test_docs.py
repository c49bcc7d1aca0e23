"""/docs and /redoc load every script, style sheet and icon from this server, which serves
them from an installed package under a versioned path, cacheable for a year; their
Content-Security-Policy keeps the browser from loading anything from elsewhere."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from spatial_api.routers.docs import ASSET_DIR, ASSETS

LOADED = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
"""The URLs a page loads by its HTML (scripts, style sheets, icons)."""


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_everything_from_this_server(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = LOADED.findall(r.text)
    assert any(u.endswith(".js") for u in urls), urls
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content == (ASSET_DIR / url.rsplit("/", 1)[1]).read_bytes()
        assert "immutable" in asset.headers["cache-control"]
        assert "max-age=31536000" in asset.headers["cache-control"]
    assert "fonts.googleapis" not in r.text and client.app.openapi_url in r.text
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy


def test_the_assets_have_their_media_types(client: TestClient) -> None:
    page = client.get("/docs").text
    release = re.search(r"/static/docs/([^/]+)/", page)[1]
    for name, media_type in ASSETS.items():
        r = client.get(f"/static/docs/{release}/{name}")
        assert r.headers["content-type"].startswith(media_type), name


@pytest.mark.parametrize(
    "path", ["/static/docs/0.0.1/swagger-ui.css", "/static/docs/{release}/core.py"]
)
def test_only_the_listed_assets_of_this_release_are_served(client: TestClient, path: str) -> None:
    release = re.search(r"/static/docs/([^/]+)/", client.get("/docs").text)[1]
    r = client.get(path.format(release=release))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
