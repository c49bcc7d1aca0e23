"""The COPY text encoder that imports and the demo city share: fields escaped as COPY's text
format reads them, NULL, numbers, booleans, JSON, timestamps, hex EWKB that reads back as the
same geometry, and the chunked rows the writer sends. No database needed."""

from __future__ import annotations

import re

import numpy as np
import orjson
import shapely

from etl.copytext.ewkb import ewkb_hex, ewkb_hex_points, ewkb_hex_rings
from etl.copytext.fields import (
    NO_TIME,
    NULL,
    boolean_texts,
    escape_texts,
    json_text,
    json_texts,
    text_column,
    timestamp_texts,
    with_nulls,
)
from etl.copytext.writer import CHUNK_ROWS, copy_chunks

UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def unescape(field: str) -> str | None:
    """What PostgreSQL's COPY text format reads from one field (the escapes written here)."""
    if field == NULL:
        return None
    return re.sub(r"\\(.)", lambda m: UNESCAPES[m.group(1)], field)


def test_tab_newline_return_and_backslash_are_escaped() -> None:
    texts = ["a\tb", "line\nnext", "cr\rlf", "back\\slash", "plain"]
    escaped = escape_texts(texts)
    assert escaped == ["a\\tb", "line\\nnext", "cr\\rlf", "back\\\\slash", "plain"]
    assert not any(ch in "".join(escaped) for ch in "\t\n\r")
    assert [unescape(f) for f in escaped] == texts


def test_texts_that_need_no_escape_are_returned_as_they_are() -> None:
    texts = ["a", "b c", "中文"]
    assert escape_texts(texts) is texts


def test_none_becomes_null_and_a_literal_backslash_n_stays_text() -> None:
    fields = text_column(["x", None, "\\N", ""])
    assert fields == ["x", NULL, "\\\\N", ""]
    assert [unescape(f) for f in fields] == ["x", None, "\\N", ""]


def test_with_nulls_sets_the_given_positions() -> None:
    assert with_nulls(["a", "b", "c"], [0, 2]) == [NULL, "b", NULL]


def test_numbers_are_written_exactly() -> None:
    assert text_column(np.array([1, -2, 2**62], dtype=np.int64)) == ["1", "-2", str(2**62)]
    floats = np.array([0.1, 1e300, -0.0, 1 / 3])
    assert [float(f) for f in text_column(floats)] == floats.tolist()
    assert text_column([3, 2.5, None]) == ["3", "2.5", NULL]


def test_booleans_are_t_and_f() -> None:
    assert boolean_texts(np.array([True, False])) == ["t", "f"]
    assert text_column(np.array([False, True])) == ["f", "t"]


def test_json_texts_read_back_and_take_numpy_values() -> None:
    values = [{"a": 1.5, "b": [1, "x\ty"]}, None, "s", [True]]
    assert [orjson.loads(t) for t in json_texts(values)] == values
    assert orjson.loads(json_text({"n": np.int64(7), "v": np.array([1.5, 2.0])})) == {
        "n": 7,
        "v": [1.5, 2.0],
    }
    # JSON keeps the tab as \t; the column escape then doubles its backslash for COPY
    field = text_column(json_texts([{"k": "a\tb"}]))[0]
    assert orjson.loads(unescape(field)) == {"k": "a\tb"}


def test_timestamps_are_utc_and_no_time_is_null() -> None:
    texts = timestamp_texts(np.array([0, 1_700_000_000, NO_TIME]))
    assert texts == ["1970-01-01T00:00:00+00", "2023-11-14T22:13:20+00", None]
    assert text_column(texts)[2] == NULL


def test_ewkb_of_shapely_geometries_reads_back_with_srid_4326() -> None:
    geoms = np.array(
        [
            shapely.Point(114.05, 22.54),
            shapely.LineString([(114, 22), (114.1, 22.1)]),
            shapely.box(114, 22, 114.01, 22.01),
        ]
    )
    back = shapely.from_wkb(ewkb_hex(geoms))
    assert shapely.equals_exact(back, geoms, tolerance=0).all()
    assert shapely.get_srid(back).tolist() == [4326, 4326, 4326]


def test_ewkb_of_points_reads_back_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-180, 180, 500), rng.uniform(-90, 90, 500)
    texts = ewkb_hex_points(lon, lat)
    back = shapely.from_wkb(texts)
    assert shapely.get_x(back).tolist() == lon.tolist()
    assert shapely.get_y(back).tolist() == lat.tolist()
    assert set(shapely.get_srid(back).tolist()) == {4326}
    assert texts == [t.lower() for t in ewkb_hex(shapely.points(lon, lat))]
    assert ewkb_hex_points(lon[:0], lat[:0]) == []


def test_ewkb_of_open_rings_reads_back_as_closed_polygons() -> None:
    rings = np.array([[(114, 22), (114.01, 22), (114.01, 22.01), (114, 22.01)]], dtype=float)
    rings = np.repeat(rings, 3, axis=0) + np.arange(3)[:, None, None] * 0.1
    back = shapely.from_wkb(ewkb_hex_rings(rings))
    assert shapely.equals_exact(back, shapely.polygons(rings), tolerance=0).all()
    assert set(shapely.get_srid(back).tolist()) == {4326}
    assert ewkb_hex_rings(rings[:0]) == []


def test_copy_chunks_make_tab_separated_lines_a_chunk_at_a_time() -> None:
    count = CHUNK_ROWS + 2
    ids = text_column(np.arange(count))
    names = text_column(["a\tb"] * count)
    makers = [lambda a, b: ids[a:b], lambda a, b: names[a:b]]
    sizes: list[int] = []
    chunks = list(copy_chunks(makers, count, sizes.append))
    assert sizes == [CHUNK_ROWS, 2]
    lines = "".join(chunks).split("\n")
    assert lines[-1] == "" and len(lines) == count + 1
    assert lines[0] == "0\ta\\tb" and lines[count - 1] == f"{count - 1}\ta\\tb"
    assert list(copy_chunks(makers, 0)) == []
