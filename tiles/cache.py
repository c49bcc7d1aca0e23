"""A bounded in-process cache of tile bytes, indexed by layer and zoom for invalidation.

Entries are evicted least recently used first once their total size passes the bound.
Each entry remembers the layers it was built from and, per layer, whether it shows the
layer's rows or its H3 aggregate, so a change drops exactly the tiles it can alter.
A generation counter per layer lets a builder refuse to store a tile read before a change
that was announced while it was being built.

Next to its bytes, an entry keeps the compressed variants clients asked for (gzip, br):
each is compressed once and counts against the bound too.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Key = tuple[str, int, int, int, str]
"""(layer list, z, x, y, canonical filters)."""
Region = tuple[str, bool]
"""(catalog layer id, aggregate?): what part of a layer a tile shows."""
ENTRY_OVERHEAD = 256


def strong_etag(body: bytes) -> str:
    """The strong ETag of a tile: a hash of its bytes."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


@dataclass(frozen=True)
class CachedTile:
    """A built tile and what it was built from."""

    key: Key
    body: bytes
    etag: str
    regions: tuple[Region, ...]
    expires: float | None = None
    """Wall-clock time (epoch seconds) at which a clock-derived attribute changes."""
    variants: dict[str, bytes] = field(default_factory=dict)
    """The body compressed, by content coding, as clients asked for it."""

    @property
    def size(self) -> int:
        """The bytes this entry counts against the bound."""
        return len(self.body) + sum(map(len, self.variants.values())) + ENTRY_OVERHEAD


class TileCache:
    """Tiles by key, at most ``max_bytes`` of them; ``max_bytes == 0`` caches nothing."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[Key, CachedTile] = OrderedDict()
        self._index: dict[tuple[Region, int], dict[tuple[int, int], set[Key]]] = {}
        self._generations: dict[str, int] = {}
        self._epoch = 0
        self.compressions = 0
        """How many variants were compressed: once per tile and coding while it is cached."""

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> CachedTile | None:
        """The live entry under ``key``, freshly used; None when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= time.time():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def variant(self, entry: CachedTile, coding: str, compress: Callable[[bytes], bytes]) -> bytes:
        """``entry``'s body in content coding ``coding``: kept from before, or compressed now
        with ``compress`` and kept while the entry is (the bound still holds)."""
        found = entry.variants.get(coding)
        if found is not None:
            return found
        found = compress(entry.body)
        self.compressions += 1
        if self._entries.get(entry.key) is entry:
            entry.variants[coding] = found
            self.size += len(found)
            while self.size > self.max_bytes:
                self._remove(next(iter(self._entries)))
        return found

    def generation(self, layers: Iterable[str]) -> tuple[int, ...]:
        """A stamp that changes whenever any of ``layers`` is invalidated or all is cleared."""
        return (self._epoch, *(self._generations.get(layer, 0) for layer in layers))

    def put(self, entry: CachedTile, stamp: tuple[int, ...]) -> bool:
        """Store ``entry`` unless its layers changed since ``stamp`` was taken; evict the least
        recently used entries over the bound. Whether it was stored."""
        layers = [layer for layer, _ in entry.regions]
        if self.max_bytes <= 0 or stamp != self.generation(layers):
            return False
        if entry.size > self.max_bytes:
            return False
        if entry.key in self._entries:
            self._remove(entry.key)
        self._entries[entry.key] = entry
        self.size += entry.size
        _, z, x, y, _ = entry.key
        for region in entry.regions:
            self._index.setdefault((region, z), {}).setdefault((x, y), set()).add(entry.key)
        while self.size > self.max_bytes:
            self._remove(next(iter(self._entries)))
        return True

    def zooms(self, region: Region) -> list[int]:
        """The zooms at which tiles showing ``region`` are cached."""
        return sorted(z for (r, z) in self._index if r == region)

    def positions(self, region: Region, z: int) -> dict[tuple[int, int], set[Key]]:
        """The cached tiles showing ``region`` at zoom ``z``, by (x, y)."""
        return self._index.get((region, z), {})

    def drop(self, keys: Iterable[Key]) -> int:
        """Remove these entries; how many were present."""
        dropped = 0
        for key in list(keys):
            if key in self._entries:
                self._remove(key)
                dropped += 1
        return dropped

    def changed(self, layer: str) -> None:
        """Record that ``layer`` changed: tiles of it being built now must not be stored."""
        self._generations[layer] = self._generations.get(layer, 0) + 1

    def clear(self) -> None:
        """Drop everything; tiles being built now must not be stored."""
        self._entries.clear()
        self._index.clear()
        self.size = 0
        self._epoch += 1

    def _remove(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self.size -= entry.size
        _, z, x, y, _ = key
        for region in entry.regions:
            at = self._index.get((region, z))
            if at is None:
                continue
            keys = at.get((x, y))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del at[(x, y)]
            if not at:
                del self._index[(region, z)]
