"""The rules that cut a style to its caller (styles.style_for), on the real style documents
and hand-made reader views, without a database."""

from __future__ import annotations

import pytest

from styles import LEGEND, attributes_read, carries, source_layers, style_for, style_names
from styles.glyphs import BadRange, glyph_range, parse_range

BASE = "https://maps.example"
PUBLIC = {
    "districts": frozenset({"code", "name", "name_en"}),
    "grid": frozenset({"cell", "district_id", "area_m2"}),
    "assets": frozenset({"class_code", "state", "count"}),
    "assets_hex": frozenset({"cell", "count"}),
    "sensors": frozenset({"alarm_state", "count"}),
    "sensors_hex": frozenset({"cell", "count"}),
}
STAFF = {
    **PUBLIC,
    "grid": PUBLIC["grid"] | {"inspector_id"},
    "incidents": frozenset({"status", "overdue", "count"}),
    "incidents_hex": frozenset({"cell", "count", "overdue", "status_<value>"}),
    "hotspots": frozenset({"gi_bin"}),
}


def test_attributes_read_finds_get_and_has_at_any_depth() -> None:
    expression = ["all", ["has", "count"], ["match", ["get", "status"], ["a", "b"], 1, 0]]
    assert set(attributes_read({"filter": expression, "paint": {"x": ["get", "size"]}})) == {
        "count",
        "status",
        "size",
    }
    assert list(attributes_read(["get", "name", ["properties"]])) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [("status_closed", True), ("status_", False), ("count", True), ("kind", False)],
)
def test_a_value_placeholder_stands_for_any_value(name: str, expected: bool) -> None:
    assert carries(STAFF["incidents_hex"], name) is expected


def test_the_source_layers_are_read_from_the_tilejson_url() -> None:
    url = "{base}/tiles/incidents_hex,incidents/tilejson.json?filter=status%3D%27x%27"
    assert source_layers({"type": "vector", "url": url}) == ["incidents_hex", "incidents"]
    assert source_layers({"type": "geojson", "url": url}) == []


def test_a_style_without_a_readable_source_is_not_offered() -> None:
    assert style_for("incidents", BASE, PUBLIC) is None
    assert style_for("hotspots", BASE, PUBLIC) is None
    assert style_for("incidents", BASE, STAFF) is not None
    with pytest.raises(KeyError, match="known styles"):
        style_for("nowhere", BASE, STAFF)


@pytest.mark.parametrize("fields", [PUBLIC, STAFF])
def test_every_kept_layer_reads_only_what_its_source_carries(fields: dict) -> None:
    for name in style_names():
        doc = style_for(name, BASE, fields)
        if doc is None:
            continue
        ids = {layer["id"] for layer in doc["layers"]}
        for layer in doc["layers"]:
            if "source" in layer:
                assert layer["source"] in doc["sources"]
                offered = fields[layer["source-layer"]]
                assert all(carries(offered, a) for a in attributes_read(layer)), layer["id"]
        assert {e["layer"] for e in doc["metadata"][LEGEND]} <= ids


def test_the_grid_colour_falls_back_to_the_district() -> None:
    public = {layer["id"] for layer in style_for("grid", BASE, PUBLIC)["layers"]}
    staff = {layer["id"] for layer in style_for("grid", BASE, STAFF)["layers"]}
    assert "grid-fill-district" in public and "grid-fill-inspector" not in public
    assert "grid-fill-inspector" in staff and "grid-fill-district" not in staff


def test_without_glyphs_there_are_no_labels() -> None:
    doc = style_for("city", BASE, PUBLIC, glyphs=False)
    assert "glyphs" not in doc and all(layer["type"] != "symbol" for layer in doc["layers"])
    assert style_for("city", BASE, PUBLIC)["glyphs"].startswith(f"{BASE}/styles/glyphs/")


@pytest.mark.parametrize("text", ["0-256", "256-255", "-1-254", "a-b", "65536-65791", "0-0"])
def test_a_glyph_range_is_256_code_points_from_a_multiple_of_256(text: str) -> None:
    with pytest.raises(BadRange):
        parse_range(text)


def test_glyph_ranges_are_read_from_the_first_font_of_the_stack_that_has_them(tmp_path) -> None:
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "0-255.pbf").write_bytes(b"b0")
    (tmp_path / "B" / "256-511.pbf").write_bytes(b"b1")
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "0-255.pbf").write_bytes(b"a0")
    assert parse_range("65280-65535") == 65280
    assert glyph_range("A,B", "0-255", tmp_path) == b"a0"
    assert glyph_range("A, B", "256-511", tmp_path) == b"b1"
    with pytest.raises(LookupError, match="A, B"):
        glyph_range("C", "0-255", tmp_path)
