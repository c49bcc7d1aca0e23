"""CityHex in a real browser: a page on another origin renders the city style with CityHex's
tiles (CORS, preflights for the Authorization header, compressed tiles decoded), its labels
drawn with CityHex's glyphs (Chinese through localIdeographFontFamily) and its legend in the
style's metadata; an anonymous page renders the style it is given with no request refused;
and the API documentation renders with every request going to CityHex alone."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page, Request, Response

from tests.helpers import CENTER, make_key, running_server

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

MAPLIBRE = Path(__file__).resolve().parents[2] / "node_modules" / "maplibre-gl" / "dist"
WAIT_MS = 180_000
"""How long a page may take to settle: generous, for a loaded two-core machine."""
TILE = re.compile(r"/tiles/([^/]+)/\d+/\d+/\d+\.mvt$")
GLYPHS = re.compile(r"/styles/glyphs/[^/]+/\d+-\d+\.pbf$")
LABELS = "districts-labels"
LABEL_SHARE = 0.002
"""Share of the map's pixels that the district labels must change: a few words of text."""
BACKGROUND = (0xF4, 0xF4, 0xF0)
"""The city style's background colour."""
PAINTED_SHARE = 0.5
"""Share of the map's pixels that must differ from the background: the tile city's grid,
districts and assets cover nearly all of the view at its centre; the background alone is 0."""
MAP_PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>CityHex from another origin</title>
<link rel="stylesheet" href="maplibre/maplibre-gl.css">
<style>html, body, #map { margin: 0; width: 100%; height: 100%; }</style>
</head>
<body>
<div id="map"></div>
<script type="module">
import * as maplibregl from "./maplibre/maplibre-gl.mjs";
const query = new URLSearchParams(location.search);
const api = query.get("api");
const key = query.get("key");
window.mapErrors = [];
const map = new maplibregl.Map({
  container: "map",
  style: `${api}/styles/city.json`,
  center: [CENTER_LON, CENTER_LAT],
  zoom: 14,
  attributionControl: false,
  localIdeographFontFamily: "'Noto Sans CJK SC', 'WenQuanYi Zen Hei', sans-serif",
  transformRequest: (url) =>
    url.startsWith(api) && key
      ? { url, headers: { Authorization: `Bearer ${key}` } }
      : { url },
});
window.map = map;
map.on("error", (e) => window.mapErrors.push(String(e.error?.message ?? e.error ?? e)));
map.on("idle", () => { window.mapIdle = map.loaded() && map.areTilesLoaded(); });
</script>
</body>
</html>
""".replace("CENTER_LON", str(CENTER[0])).replace("CENTER_LAT", str(CENTER[1]))


@pytest.fixture(scope="module")
def city(tiles_city: Callable[[str], str]) -> str:
    """This module's copy of the tile city."""
    return tiles_city("browser_city")


@pytest.fixture(scope="module")
def map_site(site: tuple[Path, str]) -> str:
    """The origin of a site holding the map page and MapLibre GL JS from the npm lockfile."""
    folder, origin = site
    if not (MAPLIBRE / "maplibre-gl.mjs").exists():
        pytest.fail("maplibre-gl is missing: run `make test-tools` (npm install, package.json)")
    (folder / "maplibre").symlink_to(MAPLIBRE)
    (folder / "index.html").write_text(MAP_PAGE, encoding="utf-8")
    return origin


@pytest.fixture(scope="module")
def cityhex(city: str, map_site: str) -> Iterator[str]:
    """``cityhex serve`` on the tile city, open to the map site's origin; its base URL."""
    with running_server(city, env={"CITYHEX_CORS_ORIGINS": map_site}) as base:
        yield base


@pytest.fixture
def page(chromium: BrowserContext) -> Iterator[Page]:
    """A new tab, closed after the test."""
    tab = chromium.new_page()
    tab.set_default_timeout(WAIT_MS)
    try:
        yield tab
    finally:
        tab.close()


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def network_requests(page: Page) -> list[str]:
    """The URLs the page will ask the network for, collected as it asks (not data: or blob:)."""
    urls: list[str] = []

    def note(request: Request) -> None:
        if urlsplit(request.url).scheme not in ("data", "blob"):
            urls.append(request.url)

    page.on("request", note)
    return urls


def painted_share(png: bytes) -> float:
    """Share of a screenshot's pixels that differ from the style's background colour."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    differs = np.abs(pixels - np.array(BACKGROUND, dtype=np.int16)).max(axis=2) > 8
    return float(differs.mean())


def differing_share(a: bytes, b: bytes) -> float:
    """Share of pixels that differ between two screenshots of the same size."""
    first, second = (
        np.asarray(Image.open(io.BytesIO(p)).convert("RGB"), dtype=np.int16) for p in (a, b)
    )
    return float((np.abs(first - second).max(axis=2) > 8).mean())


def console_errors(page: Page) -> list[str]:
    """The page's console errors, collected as they come."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def settle(page: Page) -> None:
    """Wait until the map has drawn every tile it asked for."""
    page.wait_for_function("window.mapIdle === true", timeout=WAIT_MS)


def test_a_page_on_another_origin_renders_the_city_style_with_cityhex_tiles(
    page: Page, cityhex: str, city: str, map_site: str
) -> None:
    requests = network_requests(page)
    console = console_errors(page)
    tiles: list[Response] = []
    glyphs: list[Response] = []
    page.on("response", lambda r: tiles.append(r) if TILE.search(urlsplit(r.url).path) else None)
    page.on("response", lambda r: glyphs.append(r) if GLYPHS.search(urlsplit(r.url).path) else None)
    key = make_key(city, "app")["Authorization"].removeprefix("Bearer ")
    page.goto(f"{map_site}/index.html?api={cityhex}&key={key}")
    settle(page)

    assert page.evaluate("window.mapErrors") == []
    assert {origin_of(u) for u in requests} == {map_site, cityhex}
    assert tiles, "no tile was requested"
    sources = {TILE.search(urlsplit(r.url).path)[1] for r in tiles}
    assert sources == {"districts,grid,assets,sensors", "incidents_hex,incidents"}
    cases = [r.url for r in tiles if "incidents" in r.url]
    assert all("status+NOT+IN" in u for u in cases), "closed cases were fetched by default"
    for response in tiles:
        assert response.status in (200, 204), response.url
        assert response.header_value("access-control-allow-origin") == map_site, response.url
    answered = [r for r in tiles if r.status == 200]
    assert answered, "every tile was empty"
    assert {r.header_value("content-encoding") for r in answered} & {"gzip", "br"}
    share = painted_share(page.locator("#map").screenshot())
    assert share > PAINTED_SHARE, f"only {share:.1%} of the map is painted"

    assert glyphs and all(r.status == 200 for r in glyphs), [(r.url, r.status) for r in glyphs]
    assert not [m for m in console if "glyph" in m.lower() or ".pbf" in m]
    labels = page.evaluate(f"map.queryRenderedFeatures({{layers: ['{LABELS}']}}).length")
    assert labels > 0, "no district label was placed"
    legend = page.evaluate(
        "(() => { const s = map.getStyle(); const ids = new Set(s.layers.map((l) => l.id));"
        " return s.metadata['cityhex:legend'].map((e) => [e.layer, ids.has(e.layer),"
        " e.label.zh, e.label.en]); })()"
    )
    assert legend and all(present and zh and en for _, present, zh, en in legend), legend
    with_labels = page.locator("#map").screenshot()
    page.evaluate(
        f"window.mapIdle = false; map.setLayoutProperty('{LABELS}', 'visibility', 'none')"
    )
    settle(page)
    without = page.locator("#map").screenshot()
    changed = differing_share(with_labels, without)
    assert changed > LABEL_SHARE, f"the labels changed only {changed:.3%} of the map"


def test_an_anonymous_page_renders_the_public_city_style_without_a_refusal(
    page: Page, cityhex: str, map_site: str
) -> None:
    statuses: list[tuple[int, str]] = []
    page.on("response", lambda r: statuses.append((r.status, r.url)))
    page.goto(f"{map_site}/index.html?api={cityhex}&key=")
    settle(page)
    assert page.evaluate("window.mapErrors") == []
    refused = [(s, u) for s, u in statuses if s >= 400]
    assert not refused, refused
    assert not any("/tiles/incidents" in u for _, u in statuses)
    assert page.evaluate(f"map.queryRenderedFeatures({{layers: ['{LABELS}']}}).length") > 0
    share = painted_share(page.locator("#map").screenshot())
    assert share > PAINTED_SHARE, f"only {share:.1%} of the map is painted"


@pytest.mark.parametrize(
    ("path", "rendered", "may_try"),
    [
        ("/docs", ".opblock-summary", False),  # Swagger UI: one per operation
        # ReDoc: one section per tag; its side menu always tries its maker's logo from a CDN
        ("/redoc", "[data-section-id^='tag/']", True),
    ],
)
def test_the_api_docs_render_from_cityhex_alone(
    page: Page, cityhex: str, path: str, rendered: str, may_try: bool
) -> None:
    requests = network_requests(page)
    refused: list[str] = []
    page.on("requestfailed", lambda r: refused.append(r.url) if r.failure == "csp" else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(cityhex + path)
    page.locator(rendered).nth(19).wait_for(state="attached")  # no eval: the pages forbid it
    page.wait_for_load_state("networkidle")
    assert page.get_by_text("A vector tile of one layer or several").count() >= 1
    elsewhere = [u for u in requests if origin_of(u) != cityhex]
    sent = [u for u in elsewhere if u not in refused]
    assert not sent, f"{path} asked other hosts: {sent}"
    assert may_try or not elsewhere, f"{path} tried other hosts: {elsewhere}"
    assert errors == []
    assert any(urlsplit(u).path == "/openapi.json" for u in requests)
