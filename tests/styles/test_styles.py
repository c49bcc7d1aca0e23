"""Every served style is valid MapLibre (gl-style-validate), points at this server's
TileJSON and glyphs alone, and holds only what its caller may read: per role, every source
URL of every listed style answers 200 and every attribute a layer reads is in the caller's
tiles. The legend tells the truth, colours are the ones a person expects, circles do not
overplot at the city zoom, closed cases are hidden, and the label glyphs are served."""

from __future__ import annotations

import colorsys
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from layers.catalog.registry import load_catalog
from spatial_api.proxies import proxy_settings
from styles import LEGEND, attributes_read, carries, load_style, source_layers, style_names
from styles.glyphs import glyph_settings
from tests.helpers import CENTER, make_key, scalar, tile_of

VALIDATOR = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "gl-style-validate"
BASE = "https://maps.city.example"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "maps.city.example"}
ROLES = ("anonymous", "app", "inspector", "editor", "dispatcher", "admin")
CASE_STYLES = {"incidents", "hotspots"}
"""Styles drawn from layers only staff may read."""
FONT = "Noto Sans Regular"


@pytest.fixture(scope="module")
def web(tiles_city) -> Iterator[tuple[TestClient, dict[str, dict], str]]:
    """The app on the tile test city behind a trusted proxy (whose forwarding headers
    count), a header per role (none for anonymous), and the database URL."""
    from spatial_api.app import create_app

    url = tiles_city("tiles_styles_city")
    keys = {role: make_key(url, role) for role in ROLES if role != "anonymous"}
    keys["anonymous"] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_TRUSTED_PROXIES", "127.0.0.1")
        proxy_settings.cache_clear()
        with TestClient(create_app(url), client=("127.0.0.1", 50000)) as client:
            yield client, keys, url
    proxy_settings.cache_clear()


def get(client: TestClient, url: str, key: dict):
    """GET a URL of this server (absolute, with the public base, or a path and query)."""
    return client.get(url.removeprefix(BASE), headers={**FORWARDED, **key})


def served(client: TestClient, key: dict) -> dict[str, dict]:
    """Every style the caller is offered, by name, as served to it (answers that no shared
    cache may give another caller)."""
    answer = get(client, "/styles", key)
    assert "Authorization" in answer.headers["vary"].split(", ")
    assert answer.headers["cache-control"].startswith("private")
    listed = answer.json()["styles"]
    assert all(s["url"] == f"{BASE}/styles/{s['name']}.json" and s["title"] for s in listed)
    return {s["name"]: get(client, s["url"], key).json() for s in listed}


def visible_at(layer: dict, zoom: float) -> bool:
    """Whether a style layer draws at ``zoom`` (MapLibre: minzoom <= zoom < maxzoom)."""
    shown = layer.get("layout", {}).get("visibility", "visible") == "visible"
    return shown and layer.get("minzoom", 0) <= zoom < layer.get("maxzoom", 24)


def hue(colour: str) -> float:
    """The hue in degrees of a ``#rrggbb`` colour."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def match_colour(expression: list, value: str) -> str:
    """The colour a ``match`` expression gives ``value``."""
    pairs = expression[2:-1]
    for label, colour in zip(pairs[::2], pairs[1::2], strict=True):
        if value == label or (isinstance(label, list) and value in label):
            return colour
    return expression[-1]


def strings(value) -> Iterator[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)


@pytest.mark.parametrize("role", ROLES)
def test_each_caller_is_offered_the_styles_it_can_render_and_all_of_each(
    web: tuple[TestClient, dict, str], role: str
) -> None:
    client, keys, _ = web
    key = keys[role]
    styles = served(client, key)
    if role == "anonymous":
        assert set(styles) == set(style_names()) - CASE_STYLES
    else:
        assert set(styles) == set(style_names())
    for name, doc in styles.items():
        assert doc["sources"], name
        for source_id, source in doc["sources"].items():
            tilejson = get(client, source["url"], key)
            assert tilejson.status_code == 200, (role, name, source["url"])
            fields = {v["id"]: frozenset(v["fields"]) for v in tilejson.json()["vector_layers"]}
            for layer in doc["layers"]:
                if layer.get("source") != source_id:
                    continue
                read = set(attributes_read([layer.get(k) for k in ("filter", "paint", "layout")]))
                offered = fields[layer["source-layer"]]
                assert all(carries(offered, a) for a in read), (role, layer["id"], read)
        ids = {layer["id"] for layer in doc["layers"]}
        assert {e["layer"] for e in doc["metadata"][LEGEND]} <= ids
    for name in set(style_names()) - set(styles):
        answer = get(client, f"/styles/{name}.json", key)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
        urls = [s["url"] for s in load_style(name, BASE)["sources"].values()]
        assert all(get(client, u, key).status_code == 401 for u in urls)


def test_the_city_style_keeps_public_layers_for_anonymous_callers(
    web: tuple[TestClient, dict, str],
) -> None:
    client, keys, _ = web
    anonymous = served(client, keys["anonymous"])["city"]
    staff = served(client, keys["dispatcher"])["city"]
    assert set(anonymous["sources"]) == {"public"}
    assert set(staff["sources"]) == {"public", "cases", "closed-cases"}
    gone = {layer["id"] for layer in staff["layers"]} - {x["id"] for x in anonymous["layers"]}
    assert all(
        layer.get("source") in ("cases", "closed-cases") or layer["id"] == "grid-fill-inspector"
        for layer in staff["layers"]
        if layer["id"] in gone
    )


@pytest.mark.parametrize("role", ["anonymous", "app", "inspector"])
def test_grid_cells_are_coloured_by_what_the_caller_gets(
    web: tuple[TestClient, dict, str], role: str
) -> None:
    """Anonymous callers get cells coloured by district, staff by inspector; every grid
    feature of a real tile carries the attribute the colour reads."""
    client, keys, _ = web
    key = keys[role]
    for name in ("grid", "city"):
        doc = served(client, key)[name]
        fills = [layer for layer in doc["layers"] if layer["id"].startswith("grid-fill")]
        assert len(fills) == 1
        (attribute,) = set(attributes_read(fills[0]["paint"]))
        assert attribute == ("district_id" if role == "anonymous" else "inspector_id")
        tilejson = get(client, doc["sources"][fills[0]["source"]]["url"], key).json()
        z, x, y = tile_of(*CENTER, 15)
        url = tilejson["tiles"][0].replace("{z}", str(z)).replace("{x}", str(x))
        tile = get(client, url.replace("{y}", str(y)), key)
        features = mapbox_vector_tile.decode(tile.content)["grid"]["features"]
        assert features and all(attribute in f["properties"] for f in features)
        assert role != "anonymous" or all("inspector_id" not in f["properties"] for f in features)


@pytest.mark.style_validator
@pytest.mark.parametrize("role", ["anonymous", "admin"])
def test_served_styles_are_valid_and_use_only_this_server(
    web: tuple[TestClient, dict, str], role: str, tmp_path: Path
) -> None:
    if not VALIDATOR.exists():
        pytest.fail("gl-style-validate is missing: run `npm ci` in the repository (package.json)")
    client, keys, _ = web
    for name, doc in served(client, keys[role]).items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        check = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        urls = [s for s in strings(doc) if "://" in s or s.startswith("//")]
        assert urls and all(u.startswith(f"{BASE}/") for u in urls), (name, urls)
        for source in doc["sources"].values():
            assert source_layers(source) == [] and "/tiles/" in source["url"]
            tiles = get(client, source["url"], keys[role]).json()["tiles"]
            assert all(t.startswith(f"{BASE}/tiles/") for t in tiles)


def test_the_legend_tells_the_colours_the_map_draws() -> None:
    for name in style_names():
        doc = load_style(name, BASE)
        layers = {layer["id"]: layer for layer in doc["layers"]}
        legend = doc["metadata"][LEGEND]
        assert legend, name
        for entry in legend:
            assert entry["label"]["zh"] and entry["label"]["en"], entry
            paint = json.dumps(layers[entry["layer"]]["paint"])
            if entry["color"] is None:
                assert entry["by"] in attributes_read(layers[entry["layer"]]["paint"])
            else:
                assert json.dumps(entry["color"]) in paint, entry
        drawn = {i for i, layer in layers.items() if layer["type"] in ("circle", "symbol")}
        assert drawn <= {e["layer"] for e in legend}, name


def test_colours_a_person_reads() -> None:
    city = {layer["id"]: layer for layer in load_style("city", BASE)["layers"]}
    green = match_colour(city["assets-areas"]["paint"]["fill-color"], "0505")
    water = match_colour(city["assets-lines"]["paint"]["line-color"], "0130")
    hydrant = match_colour(city["assets-points"]["paint"]["circle-color"], "0114")
    alarm = match_colour(city["sensors-points"]["paint"]["circle-color"], "alarm")
    assert 80 <= hue(green) <= 160, green
    assert 190 <= hue(water) <= 250, water
    assert hue(hydrant) < 15 or hue(hydrant) > 345, hydrant
    assert hue(alarm) < 15 or hue(alarm) > 345, alarm


def test_no_circles_overplot_at_the_city_zoom_and_points_come_when_tiles_send_them() -> None:
    doc = load_style("city", BASE)
    catalog = load_catalog()
    for zoom in range(0, 13):  # the city zoom (11) and one step in: areas, lines, heat only
        circles = [x["id"] for x in doc["layers"] if x["type"] == "circle" and visible_at(x, zoom)]
        assert circles == [], (zoom, circles)
    at_city_zoom = [x["source-layer"] for x in doc["layers"] if "source" in x and visible_at(x, 11)]
    assert "incidents_hex" in at_city_zoom and "incidents" not in at_city_zoom
    for layer in doc["layers"]:
        if layer["type"] == "circle":
            first = catalog.get(layer["source-layer"]).cluster_below
            assert layer["minzoom"] >= first, layer["id"]


def test_open_cases_show_by_default_and_closed_ones_are_hidden(
    web: tuple[TestClient, dict, str],
) -> None:
    """The shown cases source counts exactly the open cases (SQL), the hidden one the
    closed and cancelled ones; every layer of the closed source is hidden."""
    client, keys, url = web
    key = keys["dispatcher"]
    doc = served(client, key)["incidents"]
    for layer in doc["layers"]:
        if layer.get("source") == "closed-cases":
            assert layer["layout"]["visibility"] == "none"
        elif "source" in layer:
            assert layer.get("layout", {}).get("visibility", "visible") == "visible"
    z, x, y = tile_of(*CENTER, 10)
    for source, sql in (
        ("cases", "status NOT IN ('closed', 'cancelled')"),
        ("closed-cases", "status IN ('closed', 'cancelled')"),
    ):
        template = get(client, doc["sources"][source]["url"], key).json()["tiles"][0]
        parts = urlsplit(template.replace("{z}/{x}/{y}", f"{z}/{x}/{y}"))
        tile = get(client, f"{parts.path}?{parts.query}", key)
        cells = mapbox_vector_tile.decode(tile.content)["incidents_hex"]["features"]
        expected = scalar(url, f"SELECT count(*) FROM incidents WHERE {sql}")
        assert expected > 0
        assert sum(f["properties"]["count"] for f in cells) == expected, source


def glyphs_message():
    """The message class of MapLibre's glyph protobuf (glyphs.proto of node-fontnik),
    built here from its field list."""
    proto = descriptor_pb2.FileDescriptorProto(name="cityhex_glyphs.proto", package="glyphs")
    f = descriptor_pb2.FieldDescriptorProto
    glyph = proto.message_type.add(name="glyph")
    for number, (name, kind) in enumerate(
        [("id", f.TYPE_UINT32), ("bitmap", f.TYPE_BYTES), ("width", f.TYPE_UINT32),
         ("height", f.TYPE_UINT32), ("left", f.TYPE_SINT32), ("top", f.TYPE_SINT32),
         ("advance", f.TYPE_UINT32)], start=1,
    ):  # fmt: skip
        glyph.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    stack = proto.message_type.add(name="fontstack")
    stack.field.add(name="name", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    stack.field.add(name="range", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    stack.field.add(
        name="glyphs", number=3, type=f.TYPE_MESSAGE, type_name=".glyphs.glyph",
        label=f.LABEL_REPEATED,
    )  # fmt: skip
    glyphs = proto.message_type.add(name="glyphs")
    glyphs.field.add(
        name="stacks", number=1, type=f.TYPE_MESSAGE, type_name=".glyphs.fontstack",
        label=f.LABEL_REPEATED,
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("glyphs.glyphs"))


def local_ideograph(char: str) -> bool:
    """Whether MapLibre draws ``char`` with the page's localIdeographFontFamily (CJK
    ideographs, kana, Hangul, CJK punctuation and full-width forms) rather than from glyphs."""
    c = ord(char)
    return (
        0x2E80 <= c <= 0x9FFF
        or 0xAC00 <= c <= 0xD7AF
        or 0xF900 <= c <= 0xFAFF
        or (0xFF00 <= c <= 0xFFEF)
    )


def test_the_glyphs_of_every_label_are_served(web: tuple[TestClient, dict, str]) -> None:
    """Every character the district labels show (their names from SQL) that MapLibre asks
    the server for has an SDF glyph in the served range; CJK names are drawn locally."""
    client, keys, url = web
    doc = served(client, keys["anonymous"])["city"]
    labels = [layer for layer in doc["layers"] if layer["type"] == "symbol"]
    assert labels
    assert doc["glyphs"] == f"{BASE}/styles/glyphs/{{fontstack}}/{{range}}.pbf"
    fonts = {tuple(layer["layout"]["text-font"]) for layer in labels}
    assert fonts == {(FONT,)}
    text = scalar(url, "SELECT string_agg(name || name_en, '') FROM districts")
    chars = set(text) | set("0123456789 ")
    message = glyphs_message()
    ranges: dict[int, set[int]] = {}
    for char in chars:
        ranges.setdefault(ord(char) // 256 * 256, set()).add(ord(char))
    assert any(local_ideograph(c) for c in chars)
    for start, codes in ranges.items():
        path = f"/styles/glyphs/{FONT},Arial Unicode MS Regular/{start}-{start + 255}.pbf"
        answer = get(client, path, {})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(
            "application/x-protobuf"
        )
        parsed = message.FromString(answer.content)
        (stack,) = parsed.stacks
        assert stack.range == f"{start}-{start + 255}"
        have = {g.id for g in stack.glyphs if g.bitmap or chr(g.id).isspace()}
        needed = {c for c in codes if not local_ideograph(chr(c))}
        assert needed <= have, [chr(c) for c in needed - have]


def test_glyphs_are_compressed_for_clients_that_accept_it(
    web: tuple[TestClient, dict, str],
) -> None:
    client, _, _ = web
    path = f"/styles/glyphs/{FONT}/0-255.pbf"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    packed = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(plain.content) == len(packed.content)
    assert packed.content == plain.content
    assert plain.headers["cache-control"].startswith("public")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/styles/glyphs/{FONT}/0-254.pbf", 400, "invalid_glyph_range"),
        (f"/styles/glyphs/{FONT}/1-256.pbf", 400, "invalid_glyph_range"),
        (f"/styles/glyphs/{FONT}/65536-65791.pbf", 400, "invalid_glyph_range"),
        ("/styles/glyphs/Comic Sans/0-255.pbf", 404, "unknown_font"),
        ("/styles/glyphs/../0-255.pbf", 404, None),
        ("/styles/nowhere.json", 404, "unknown_style"),
    ],
)
def test_bad_glyph_and_style_requests_are_4xx_json(
    web: tuple[TestClient, dict, str], path: str, status: int, code: str | None
) -> None:
    client, _, _ = web
    answer = client.get(path)
    assert answer.status_code == status
    assert code is None or answer.json()["code"] == code


def test_without_glyphs_styles_have_no_labels(
    web: tuple[TestClient, dict, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, keys, _ = web
    monkeypatch.setenv("CITYHEX_GLYPHS_DIR", str(tmp_path))
    glyph_settings.cache_clear()
    try:
        doc = served(client, keys["anonymous"])["city"]
        assert "glyphs" not in doc
        assert all(layer["type"] != "symbol" for layer in doc["layers"])
        assert client.get(f"/styles/glyphs/{FONT}/0-255.pbf").status_code == 404
    finally:
        monkeypatch.undo()
        glyph_settings.cache_clear()
