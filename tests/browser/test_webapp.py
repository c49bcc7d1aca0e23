"""The web app at /app in a real browser (Debian's Chromium through Playwright) against
``cityhex serve`` on a copy of the tile city. Each test checks what landed in the database
with SQL and computes what the page should say independently (the h3 package, the grid and
category tables); every test fails on a request to any host but CityHex and on a console
error."""

from __future__ import annotations

import gzip
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import h3
import httpx
import numpy as np
import psycopg
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from spatial_api.webapp import DIST, NotBuilt, current_build
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import CENTER, make_key, running_server, scalar, tile_of

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

WAIT_MS = 120_000
"""How long a page may take to settle: generous, for a loaded two-core machine."""
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
INSPECTOR = 1
"""The tile city's grid gives cell c to inspector 1 + c % 3 (users 1, 2, 3)."""
BACKGROUND = (0xF4, 0xF4, 0xF0)
"""The city style's background colour."""
BUDGET_GZIP = 350 * 1024


@pytest.fixture(scope="module")
def city(tiles_city: Callable[[str], str]) -> str:
    """This module's copy of the tile city."""
    return tiles_city("webapp_city")


@pytest.fixture(scope="module")
def cityhex(city: str) -> Iterator[str]:
    """``cityhex serve`` on the city, with the built app; its base URL."""
    if not (DIST / "manifest.json").exists():
        pytest.fail("the web app is not built: run `make install`")
    with running_server(city) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium; each test makes its own contexts (profiles) in it."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Guard:
    """What a page did wrong: requests to other hosts, console errors, page errors. A
    console line of an answer with an expected status (a 412 the test provokes) is not
    an error."""

    def __init__(self, page: Page, origin: str, expected: tuple[int, ...] = ()) -> None:
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.failed: list[str] = []
        allowed = [f"status of {s}" for s in expected]

        def request(r: object) -> None:
            url = r.url  # type: ignore[attr-defined]
            parts = urlsplit(url)
            if (
                parts.scheme not in ("data", "blob")
                and f"{parts.scheme}://{parts.netloc}" != origin
            ):
                self.outside.append(url)

        def console(m: object) -> None:
            text = m.text  # type: ignore[attr-defined]
            if m.type == "error" and not any(a in text for a in allowed):  # type: ignore[attr-defined]
                self.errors.append(text)

        page.on("request", request)
        page.on(
            "response",
            lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.on("console", console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def check(self) -> None:
        """Fail on anything the page did wrong."""
        assert self.outside == [], f"requests to other hosts: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors} (failed: {self.failed})"


@pytest.fixture
def app(
    browser: Browser, cityhex: str, city: str
) -> Iterator[Callable[..., tuple[Page, BrowserContext]]]:
    """``app(role, user_id, viewport, expected=())``: a new profile signed in to /app with a
    new key of ``role``; its page (guarded) and context. Checks the guards after the test."""
    opened: list[tuple[BrowserContext, Guard]] = []

    def open_app(
        role: str | None,
        user_id: int | None = None,
        viewport: dict = DESKTOP,
        expected: tuple[int, ...] = (),
    ) -> tuple[Page, BrowserContext]:
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        opened.append((context, Guard(page, cityhex, expected)))
        page.goto(f"{cityhex}/app")
        if role is None:
            page.locator("form.signin button.link").click()
        else:
            key = make_key(city, role, user_id)["Authorization"].removeprefix("Bearer ")
            page.fill("input[name=key]", key)
            page.locator("form.signin button[type=submit]").click()
        page.locator("header nav a").first.wait_for()
        return page, context

    yield open_app
    for context, _ in opened:
        context.close()
    for _, guard in opened:
        guard.check()


def wait_until(page: Page, expression: str, timeout_s: float = WAIT_MS / 1000) -> None:
    """Wait until a JavaScript expression is true on the page (polled with page.evaluate,
    which the app's Content-Security-Policy allows, unlike wait_for_function's eval)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({expression})"):
        assert time.monotonic() < deadline, f"still not true: {expression}"
        time.sleep(0.05)


def wait_map(page: Page) -> None:
    """Wait until the map on screen has drawn every tile of its view."""
    wait_until(
        page,
        "window.cityhexMap && window.cityhexMap.loaded() && window.cityhexMap.areTilesLoaded()",
    )


def painted_share(png: bytes) -> float:
    """Share of a screenshot's pixels that differ from the style's background colour."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    differs = np.abs(pixels - np.array(BACKGROUND, dtype=np.int16)).max(axis=2) > 8
    return float(differs.mean())


# --- serving ----------------------------------------------------------------------------------


def test_the_page_is_never_cached_and_the_hashed_files_are_kept_a_year(cityhex: str) -> None:
    page = httpx.get(f"{cityhex}/app")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    build = current_build()
    total = 0
    for name in build.styles + build.scripts:
        assert f"/app/assets/{name}" in page.text
        r = httpx.get(f"{cityhex}/app/assets/{name}", headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.content == (DIST / name).read_bytes()
        total += len(gzip.compress(r.content, 9))
    assert total <= BUDGET_GZIP, f"JS + CSS is {total / 1024:.0f} KB gzipped"
    missing = httpx.get(f"{cityhex}/app/assets/..%2Fmanifest.json")
    assert missing.status_code == 404
    assert missing.json()["code"] in ("unknown_asset", "not_found")


def test_an_unbuilt_app_is_said_so(tmp_path: Path) -> None:
    with pytest.raises(NotBuilt):
        current_build(tmp_path)


# --- anyone: the layer preview ----------------------------------------------------------------


def test_anyone_previews_the_public_layers_with_their_attributes(app: Callable, city: str) -> None:
    page, _ = app(None)
    page.locator("[data-layer=assets]").click()
    wait_map(page)
    page.locator(".table tbody tr").first.wait_for()
    ids = [int(t) for t in page.locator(".table tbody tr td:first-child").all_inner_texts()]
    b = page.evaluate("window.cityhexMap.getBounds().toArray()")
    inside = scalar(
        city,
        "SELECT count(*) FROM assets WHERE id = ANY(%s) AND "
        "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
        (ids, b[0][0] - 1e-5, b[0][1] - 1e-5, b[1][0] + 1e-5, b[1][1] + 1e-5),
    )
    assert 0 < len(ids) <= 20
    assert inside == len(ids)
    layers = page.locator(".layers [data-layer]").evaluate_all("e => e.map(x => x.dataset.layer)")
    assert "incidents" not in layers  # not public: an anonymous caller may not read it
    assert {"assets", "grid", "districts"} <= set(layers)
    assert page.locator("header nav a").inner_text() == "图层预览"  # Chinese by default
    page.get_by_role("button", name="English").click()
    assert page.locator("header nav a").inner_text() == "Layer preview"
    assert page.locator(".table h3").inner_text() == "Attributes"


# --- the inspector ------------------------------------------------------------------------------


def report_here(page: Page, category: str, description: str) -> None:
    """Fill the report form: category, the map's centre as the place, a description."""
    page.locator("[data-tab=report]").click()
    page.select_option("select[name=major]", category[:2])
    page.select_option("select[name=category]", category)
    page.locator(".map").click()
    page.fill("textarea[name=description]", description)
    page.locator("form.report button[type=submit]").click()


def test_an_inspector_reports_a_case_and_sees_its_routing(app: Callable, city: str) -> None:
    page, _ = app("inspector", INSPECTOR, PHONE)
    wait_until(page, "window.cityhexReady > 0")
    lon, lat = page.evaluate("window.cityhexMap.getCenter().toArray()")
    here = h3.latlng_to_cell(lat, lon, 10)
    owner = scalar(
        city, "SELECT inspector_id FROM grid_cells WHERE h3 = %s", (h3.str_to_int(here),)
    )
    page.locator(".banner").wait_for()
    banner = page.locator(".banner").inner_text()
    assert here in banner
    assert ("这是你的网格" in banner) == (owner == INSPECTOR), banner
    outlined = page.evaluate(
        "window.cityhexMap.getSource('my-cells').serialize().data.features.length"
    )
    mine = scalar(city, "SELECT count(*) FROM grid_cells WHERE inspector_id = %s", (INSPECTOR,))
    assert outlined == mine
    marker = f"webapp report {time.time_ns()}"
    report_here(page, "0101", marker)
    page.locator(".routed").wait_for()
    rows = scalar(
        city,
        "SELECT json_agg(json_build_object('id', i.id, 'lon', ST_X(i.geom), 'lat', ST_Y(i.geom),"
        " 'h3', i.h3, 'inspector', i.inspector_id, 'department', i.department_id)) "
        "FROM incidents i WHERE description = %s",
        (marker,),
    )
    assert len(rows) == 1
    case = rows[0]
    cell = h3.latlng_to_cell(case["lat"], case["lon"], 10)
    assert case["h3"] == h3.str_to_int(cell)
    grid_inspector = scalar(
        city, "SELECT inspector_id FROM grid_cells WHERE h3 = %s", (case["h3"],)
    )
    assert grid_inspector == 1 + h3.str_to_int(cell) % 3 == case["inspector"]
    department = scalar(
        city,
        "SELECT d.name FROM incident_categories c JOIN departments d ON d.id = c.department_id"
        " WHERE c.code = '0101' AND d.id = %s",
        (case["department"],),
    )
    assert page.locator(".routed .cell").inner_text() == cell
    assert page.locator(".routed .inspector").inner_text() == str(case["inspector"])
    assert page.locator(".routed .department").inner_text() == department


def test_an_inspector_attaches_a_report_to_the_open_case_nearby(app: Callable, city: str) -> None:
    page, _ = app("inspector", INSPECTOR, PHONE)
    wait_until(page, "window.cityhexReady > 0")
    first = f"first report {time.time_ns()}"
    report_here(page, "0101", first)
    page.locator(".routed").wait_for()
    case = scalar(city, "SELECT id FROM incidents WHERE description = %s", (first,))
    page.locator(f".nearby [data-nearby='{case}'] button").wait_for()
    again = f"same place again {time.time_ns()}"
    page.fill("textarea[name=description]", again)
    page.locator(f".nearby [data-nearby='{case}'] button").click()
    page.get_by_text(f"已并入案件 {case}").wait_for()
    assert scalar(city, "SELECT count(*) FROM incidents WHERE description = %s", (again,)) == 0
    attached = scalar(
        city,
        "SELECT count(*) FROM incident_duplicates WHERE incident_id = %s AND description = %s",
        (case, again),
    )
    assert attached == 1


def resolved_case_of(city: str, base: str, inspector: int) -> int:
    """A case in one of the inspector's cells, moved to ``resolved`` (waiting to be verified)."""
    h3cell = scalar(
        city, "SELECT h3 FROM grid_cells WHERE inspector_id = %s ORDER BY h3 LIMIT 1", (inspector,)
    )
    lat, lon = h3.cell_to_latlng(h3.int_to_str(h3cell))
    r = httpx.post(
        base + "/incidents",
        json={"category": "0101", "description": "to verify", "lon": lon, "lat": lat},
        headers=make_key(city, "app"),
    )
    assert r.status_code == 201, r.text
    case = r.json()["id"]
    with psycopg.connect(city, autocommit=True) as conn:
        conn.execute(
            "UPDATE incidents SET status = 'resolved', resolved_at = now() WHERE id = %s", (case,)
        )
    return case


def test_offline_reports_and_a_verify_are_queued_and_each_lands_once(
    app: Callable, city: str, cityhex: str
) -> None:
    case = resolved_case_of(city, cityhex, INSPECTOR)
    page, context = app("inspector", INSPECTOR, PHONE)
    wait_until(page, "window.cityhexReady > 0")
    page.locator(f".task[data-case='{case}']").click()
    page.locator(".case [data-action=verify]").wait_for()
    context.set_offline(True)
    wait_until(page, "navigator.onLine === false")
    markers = [f"offline report {i} {time.time_ns()}" for i in range(2)]
    for marker in markers:
        report_here(page, "0101", marker)
        page.get_by_text("已加入待发送").first.wait_for()
    page.locator(".case [data-action=verify]").click()
    wait_until(page, "document.querySelector('[data-tab=outbox] .count')?.textContent === '3'")
    assert (
        scalar(city, "SELECT count(*) FROM incidents WHERE description = ANY(%s)", (markers,)) == 0
    )
    context.set_offline(False)
    wait_until(page, "!document.querySelector('[data-tab=outbox] .count')")
    for marker in markers:
        assert scalar(city, "SELECT count(*) FROM incidents WHERE description = %s", (marker,)) == 1
    verified = scalar(
        city,
        "SELECT count(*) FROM incident_transitions WHERE incident_id = %s AND action = 'verify'",
        (case,),
    )
    assert verified == 1
    assert scalar(city, "SELECT status FROM incidents WHERE id = %s", (case,)) == "verified"
    keys = scalar(city, "SELECT count(*) FROM idempotency_keys WHERE response_status < 300")
    assert keys >= 3


def test_my_area_is_stored_and_the_map_draws_it_offline(
    app: Callable, city: str, cityhex: str
) -> None:
    page, context = app("inspector", INSPECTOR, PHONE)
    wait_until(page, "window.cityhexReady > 0")
    page.locator(".download button").click()
    page.get_by_text("已下载瓦片").wait_for()
    stored = int(page.locator(".download .stored").inner_text().rsplit(" ", 1)[1])
    w, s, e, n = scalar(
        city,
        "SELECT json_build_array(ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x)) FROM "
        "(SELECT ST_Extent(geom) x FROM grid_cells WHERE inspector_id = %s) t",
        (INSPECTOR,),
    )
    expected = 0
    key = make_key(city, "inspector", INSPECTOR)
    for layers in ("districts,grid,assets,sensors", "incidents_hex,incidents"):
        tilejson = httpx.get(f"{cityhex}/tiles/{layers}/tilejson.json", headers=key).json()
        for z in range(max(12, tilejson["minzoom"]), min(17, tilejson["maxzoom"]) + 1):
            _, x0, y0 = tile_of(w, n, z)
            _, x1, y1 = tile_of(e, s, z)
            expected += (x1 - x0 + 1) * (y1 - y0 + 1)
    assert stored == expected
    kept = page.evaluate("caches.open('cityhex-tiles').then(c => c.keys()).then(k => k.length)")
    assert kept == expected
    context.set_offline(True)
    wait_until(page, "navigator.onLine === false")
    lon, lat = (w + e) / 2, (s + n) / 2
    page.evaluate(f"window.cityhexMap.jumpTo({{center: [{lon}, {lat}], zoom: 16}})")
    for overlay in ("my-cells-fill", "my-cells-line"):  # drawn without tiles: not counted
        page.evaluate(f"window.cityhexMap.setLayoutProperty('{overlay}', 'visibility', 'none')")
    wait_map(page)
    share = painted_share(page.locator(".map canvas").screenshot())
    assert share > 0.5, f"offline, only {share:.1%} of the map is painted"


def test_the_app_starts_again_offline_and_its_report_lands_once(app: Callable, city: str) -> None:
    page, context = app("inspector", INSPECTOR, PHONE)
    wait_until(page, "window.cityhexReady > 0 && navigator.serviceWorker.controller !== null")
    page.reload()  # now every answer the app reads passes the service worker
    wait_until(page, "window.cityhexReady > 0")
    page.locator(".tasks h4").first.wait_for()
    tasks = page.locator(".task").count()
    context.set_offline(True)
    page.reload()
    wait_until(page, "window.cityhexReady > 0")
    page.locator(".tasks h4").first.wait_for()
    assert page.locator(".task").count() == tasks
    cells = page.evaluate(
        "window.cityhexMap.getSource('my-cells').serialize().data.features.length"
    )
    assert cells == scalar(
        city, "SELECT count(*) FROM grid_cells WHERE inspector_id = %s", (INSPECTOR,)
    )
    marker = f"offline start {time.time_ns()}"
    report_here(page, "0101", marker)
    page.get_by_text("已加入待发送").first.wait_for()
    assert scalar(city, "SELECT count(*) FROM incidents WHERE description = %s", (marker,)) == 0
    context.set_offline(False)
    wait_until(page, "!document.querySelector('[data-tab=outbox] .count')")
    assert scalar(city, "SELECT count(*) FROM incidents WHERE description = %s", (marker,)) == 1


# --- the dispatcher ------------------------------------------------------------------------------


def test_a_dispatchers_open_page_shows_a_case_reported_elsewhere_within_2_s(
    app: Callable, city: str, cityhex: str
) -> None:
    page, _ = app("dispatcher")
    page.locator(".queue .live.on").wait_for()
    wait_until(page, "window.cityhexMap && window.cityhexMap.getSource('open-cases')")
    r = httpx.post(
        cityhex + "/incidents",
        json={"category": "0101", "description": "elsewhere", "lon": CENTER[0], "lat": CENTER[1]},
        headers=make_key(city, "app"),
    )
    assert r.status_code == 201
    sent = time.monotonic()
    case = r.json()["id"]
    page.locator(f".queue tr[data-case='{case}']").wait_for(timeout=5000)
    took = time.monotonic() - sent
    assert took <= 2.0, f"the case showed after {took:.2f} s"
    assert scalar(city, "SELECT status FROM incidents WHERE id = %s", (case,)) == "reported"
    cells = scalar(city, "SELECT json_build_array(count(inspector_id), count(*)) FROM grid_cells")
    page.locator(".workload .total").wait_for()
    shown = [int(page.locator(f".workload .{c}").inner_text()) for c in ("assigned", "total")]
    assert shown == cells
    features = "window.cityhexMap.getSource('open-cases').serialize().data.features"
    on_map = page.evaluate(f"{features}.some(f => f.id === {case})")
    assert on_map


# --- GIS staff ---------------------------------------------------------------------------------


def open_feature(page: Page, fid: int) -> None:
    page.fill("input[name=feature-id]", str(fid))
    page.locator("form.open button[type=submit]").click()
    page.locator(f".feature[data-feature='{fid}'] input[name=name]").wait_for()


def test_two_editors_change_one_lamp_and_the_second_merges(
    app: Callable, city: str, cityhex: str
) -> None:
    made = httpx.post(
        cityhex + "/collections/assets/items",
        json={
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": list(CENTER)},
            "properties": {
                "code": "4403040101999001",
                "kind": "lamp",
                "name": "lamp",
                "state": "intact",
            },
        },
        headers=make_key(city, "editor"),
    )
    assert made.status_code == 201, made.text
    lamp = made.json()["id"]
    version = scalar(city, "SELECT version FROM assets WHERE id = %s", (lamp,))
    first, _ = app("editor")
    second, _ = app("editor", expected=(412,))
    for page in (first, second):
        open_feature(page, lamp)
    first.fill("input[name=name]", "lamp renamed by the first")
    first.locator("button.save").click()
    first.get_by_text("已保存").wait_for()
    second.fill("input[name=state]", "damaged")
    second.locator("button.save").click()
    second.locator(".conflict").wait_for()
    assert second.locator(".conflict tr[data-field=name]").count() == 1
    assert second.locator(".conflict tr[data-field=state]").count() == 1
    second.locator(".conflict button.merge").click()
    second.get_by_text("已保存").wait_for()
    row = scalar(
        city, "SELECT json_build_array(name, state, version) FROM assets WHERE id = %s", (lamp,)
    )
    assert row == ["lamp renamed by the first", "damaged", version + 2]


def lamp_via_api(cityhex: str, city: str, code: str, name: str) -> int:
    """A lamp written through the API (so it has a history); its id."""
    made = httpx.post(
        cityhex + "/collections/assets/items",
        json={
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": list(CENTER)},
            "properties": {"code": code, "kind": "lamp", "name": name, "state": "intact"},
        },
        headers=make_key(city, "editor"),
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_an_editor_restores_an_earlier_version(app: Callable, city: str, cityhex: str) -> None:
    lamp = lamp_via_api(cityhex, city, "4403040101999002", "first name")
    current = httpx.get(f"{cityhex}/collections/assets/items/{lamp}")
    changed = httpx.patch(
        f"{cityhex}/collections/assets/items/{lamp}",
        json={"properties": {"name": "second name"}},
        headers={
            **make_key(city, "editor"),
            "If-Match": current.headers["etag"],
            "Content-Type": "application/merge-patch+json",
        },
    )
    assert changed.status_code == 200, changed.text
    page, _ = app("editor")
    open_feature(page, lamp)
    assert page.locator("input[name=name]").input_value() == "second name"
    page.locator(".history li").first.get_by_role("button").click()
    page.get_by_text("已保存").wait_for()
    row = scalar(city, "SELECT json_build_array(name, version) FROM assets WHERE id = %s", (lamp,))
    first_version = scalar(
        city,
        "SELECT min(version) FROM feature_history WHERE layer = 'assets' AND feature_id = %s",
        (str(lamp),),
    )
    assert row == ["first name", 3]
    assert first_version == 1


def test_an_admin_imports_a_file_and_reads_the_report(
    app: Callable, city: str, tmp_path: Path
) -> None:
    codes = [f"44030401019990{i:02d}" for i in range(10, 13)]
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [CENTER[0] + i * 1e-4, CENTER[1]]},
                "properties": {"code": code, "kind": "lamp", "name": f"imported {i}"},
            }
            for i, code in enumerate(codes)
        ],
    }
    upload = tmp_path / "lamps.geojson"
    upload.write_text(json.dumps(collection), encoding="utf-8")
    page, _ = app("admin")
    page.locator("[data-view=editor]").click()
    page.select_option("form.import select", "assets")
    page.set_input_files("form.import input[type=file]", str(upload))
    page.locator("form.import button[type=submit]").click()
    page.locator("form.import pre").wait_for()
    report = json.loads(page.locator("form.import pre").inner_text())
    stored = scalar(city, "SELECT count(*) FROM assets WHERE code = ANY(%s)", (codes,))
    assert stored == report["written"] == report["inserted"] == len(codes)
    assert page.locator("form.import progress").get_attribute("value") == "1"


# --- the picture ---------------------------------------------------------------------------------


def district_share(bounds: list[list[float]]) -> float:
    """Share of a map view (lon/lat bounds) that the tile city's districts cover, in Web
    Mercator (the districts are envelopes, so the share is one of two rectangles)."""

    def y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    (w, s), (e, n) = bounds
    districts = (113.98, 22.50, 114.12, 22.60)
    overlap_x = max(0.0, min(e, districts[2]) - max(w, districts[0]))
    overlap_y = max(0.0, y(min(n, districts[3])) - y(max(s, districts[1])))
    return overlap_x * overlap_y / ((e - w) * (y(n) - y(s)))


@pytest.mark.parametrize("zoom", [11, 13, 15])
def test_the_canvas_shows_the_city(app: Callable, zoom: int) -> None:
    page, _ = app("admin")
    wait_map(page)
    page.evaluate(f"window.cityhexMap.jumpTo({{center: [{CENTER[0]}, {CENTER[1]}], zoom: {zoom}}})")
    wait_map(page)
    expected = district_share(page.evaluate("window.cityhexMap.getBounds().toArray()"))
    share = painted_share(page.locator(".map canvas").screenshot())
    assert expected > 0.1
    assert share >= 0.9 * expected, (
        f"{share:.1%} painted at z{zoom}, the city covers {expected:.1%}"
    )
