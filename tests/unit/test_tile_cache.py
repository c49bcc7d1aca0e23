"""The tile cache in memory: invalidation drops exactly the touched tiles at every zoom, a
tile built across a change is not stored, the cache stays within its bound."""

from __future__ import annotations

import shapely

from tests.helpers import tile_box, tile_of
from tiles.cache import CachedTile, TileCache
from tiles.invalidation import invalidate

MARGIN = 64 / 4096


def entry(
    z: int, x: int, y: int, layer: str = "assets", aggregate: bool = False, size: int = 100
) -> CachedTile:
    return CachedTile((layer, z, x, y, ""), b"x" * size, '"e"', ((layer, aggregate),))


def test_invalidation_drops_exactly_the_tiles_whose_buffered_envelope_meets_the_box() -> None:
    cache = TileCache(1 << 30)
    lon, lat = 114.0512, 22.5431
    for z in range(23):
        _, cx, cy = tile_of(lon, lat, z)
        for dx in (-2, -1, 0, 1, 2):
            for dy in (-2, -1, 0, 1, 2):
                if 0 <= cx + dx < 2**z and 0 <= cy + dy < 2**z:
                    cache.put(entry(z, cx + dx, cy + dy), cache.generation(["assets"]))
                    cache.put(
                        entry(z, cx + dx, cy + dy, "incidents"), cache.generation(["incidents"])
                    )
    before = {k for k in cache._entries}
    box = (lon, lat, lon + 0.0004, lat + 0.0003)
    invalidate(cache, "assets", [box])
    dropped = before - set(cache._entries)
    from pyproj import Transformer

    t = Transformer.from_crs(4326, 3857, always_xy=True)
    changed = shapely.box(*t.transform(box[0], box[1]), *t.transform(box[2], box[3]))
    want = {
        k
        for k in before
        if k[0] == "assets" and shapely.box(*tile_box(*k[1:4], MARGIN)).intersects(changed)
    }
    assert dropped == want
    assert {k[1] for k in dropped} == set(range(23))  # every zoom lost its touched tiles
    assert all(k[0] == "incidents" or k in dropped for k in before - set(cache._entries))
    assert len(cache) == len(before) - len(want)


def test_everything_of_a_layer_goes_when_a_change_has_no_box() -> None:
    cache = TileCache(1 << 20)
    for i in range(5):
        cache.put(entry(10, i, 0), cache.generation(["assets"]))
        cache.put(entry(10, i, 0, "grid"), cache.generation(["grid"]))
    assert invalidate(cache, "assets", None) == 5
    assert len(cache) == 5


def test_a_tile_built_across_a_change_is_not_stored() -> None:
    cache = TileCache(1 << 20)
    stamp = cache.generation(["assets"])
    invalidate(cache, "assets", [(0.0, 0.0, 1.0, 1.0)])
    assert not cache.put(entry(3, 1, 1), stamp)
    assert cache.put(entry(3, 1, 1), cache.generation(["assets"]))
    stamp = cache.generation(["assets"])
    cache.clear()
    assert not cache.put(entry(3, 1, 1), stamp)


def test_the_cache_stays_within_its_bound_least_recently_used_first() -> None:
    one = entry(0, 0, 0, size=1000).size
    cache = TileCache(10 * one)
    for x in range(10):
        cache.put(entry(5, x, 0, size=1000), cache.generation(["assets"]))
    cache.get(("assets", 5, 0, 0, ""))
    cache.put(entry(5, 20, 0, size=1000), cache.generation(["assets"]))
    assert cache.size <= cache.max_bytes and len(cache) == 10
    assert cache.get(("assets", 5, 0, 0, "")) is not None  # recently used: kept
    assert cache.get(("assets", 5, 1, 0, "")) is None  # least recently used: evicted
    assert TileCache(0).put(entry(1, 0, 0), (0,)) is False
