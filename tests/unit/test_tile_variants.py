"""Compressed variants in the tile cache: made once per tile and coding, counted against the
bound (which still holds), and not kept for an entry that has left the cache."""

from __future__ import annotations

import gzip

from tiles.cache import ENTRY_OVERHEAD, CachedTile, TileCache


def entry(x: int, size: int = 10_000) -> CachedTile:
    """A cached tile of ``size`` bytes at z14/x/0."""
    return CachedTile(("assets", 14, x, 0, ""), bytes(range(256)) * (size // 256), '"e"', ())


def test_a_variant_is_compressed_once_and_counted() -> None:
    cache = TileCache(1 << 20)
    tile = entry(1)
    cache.put(tile, cache.generation([]))
    calls: list[bytes] = []

    def squeeze(body: bytes) -> bytes:
        calls.append(body)
        return gzip.compress(body, mtime=0)

    first = cache.variant(tile, "gzip", squeeze)
    assert cache.variant(tile, "gzip", squeeze) is first
    assert gzip.decompress(first) == tile.body
    assert len(calls) == 1 and cache.compressions == 1
    assert cache.size == len(tile.body) + len(first) + ENTRY_OVERHEAD


def test_variants_keep_the_cache_within_its_bound() -> None:
    old, new = entry(1), entry(2)
    cache = TileCache(old.size + new.size + 100)
    cache.put(old, cache.generation([]))
    cache.put(new, cache.generation([]))
    cache.variant(new, "br", lambda body: body[:5_000])
    assert cache.size <= cache.max_bytes
    assert cache.get(old.key) is None and cache.get(new.key) is new


def test_a_variant_of_a_dropped_entry_is_made_but_not_kept() -> None:
    cache = TileCache(1 << 20)
    tile = entry(1)
    cache.put(tile, cache.generation([]))
    cache.drop([tile.key])
    assert cache.variant(tile, "gzip", lambda body: body[:10]) == tile.body[:10]
    assert tile.variants == {} and cache.size == 0
