"""gis.crs: what clients name, axis order by the OGC rules, transforms checked by formula."""

from __future__ import annotations

import math

import pytest
import shapely

from gis.crs import CRS84, parse_crs, served_crs_uris, transform_bbox, transform_geometry
from gis.errors import BadRequest

R = 6378137.0


@pytest.mark.parametrize(
    ("name", "srid", "lat_first"),
    [
        (None, 4326, False),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326, False),
        ("http://www.opengis.net/def/crs/EPSG/0/4326", 4326, True),
        ("EPSG:4326", 4326, True),
        ("urn:ogc:def:crs:EPSG::4490", 4490, True),
        ("[EPSG:3857]", 3857, False),
        ("http://www.opengis.net/def/crs/EPSG/0/32650", 32650, False),
        ("EPSG:32750", 32750, False),
        ("EPSG:4547", 4547, True),
    ],
)
def test_names_resolve_with_ogc_axis_order(name: str | None, srid: int, lat_first: bool) -> None:
    crs = parse_crs(name)
    assert (crs.srid, crs.lat_first) == (srid, lat_first)
    assert crs.uri in served_crs_uris()


@pytest.mark.parametrize("name", ["EPSG:2000", "EPSG:99999", "foo", "EPSG:4326; DROP"])
def test_unsupported_crs_is_a_bad_request(name: str) -> None:
    with pytest.raises(BadRequest, match="unsupported CRS"):
        parse_crs(name)


def test_web_mercator_matches_the_spherical_formula() -> None:
    lon, lat = 114.0579, 22.5431
    out = transform_geometry(shapely.Point(lon, lat), CRS84, parse_crs("EPSG:3857"))
    assert out.x == pytest.approx(R * math.radians(lon), abs=1e-3)
    assert out.y == pytest.approx(
        R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)), abs=1e-3
    )


def test_epsg_4326_output_is_lat_lon_and_round_trips() -> None:
    point = shapely.Point(114.05, 22.54)
    latlon = transform_geometry(point, CRS84, parse_crs("EPSG:4326"))
    assert (latlon.x, latlon.y) == (22.54, 114.05)
    utm = parse_crs("EPSG:32650")
    back = transform_geometry(transform_geometry(point, CRS84, utm), utm, CRS84)
    assert back.distance(point) < 1e-9


def test_utm_distance_is_true_metres() -> None:
    # two points 1 km apart along a meridian near the zone's centre: UTM scale factor 0.9996
    utm = parse_crs("EPSG:32650")
    a = transform_geometry(shapely.Point(117.0, 22.5), CRS84, utm)
    b = transform_geometry(shapely.Point(117.0, 22.5 + 1000 / 110_758.0), CRS84, utm)
    assert a.distance(b) == pytest.approx(1000 * 0.9996, rel=2e-3)


def test_bbox_in_lat_lon_order_becomes_a_lon_lat_box() -> None:
    box = transform_bbox((22.5, 114.0, 22.6, 114.1), parse_crs("EPSG:4326"), CRS84)
    assert box == (114.0, 22.5, 114.1, 22.6)
