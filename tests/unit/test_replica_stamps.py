"""The WAL positions a read needs from a replica, from the change notices heard (no database:
the bookkeeping of layers.db.replicas.ReplicaSet)."""

from __future__ import annotations

import asyncio

from layers.db.replicas import ReplicaSet


def replica_set() -> ReplicaSet:
    """A set with no replicas (none is connected to here), hearing notices from 100."""
    replicas = ReplicaSet([], 5.0)
    replicas.hearing(100)
    return replicas


def test_a_notice_keeps_its_layer_on_the_primary_until_stamped() -> None:
    async def run() -> None:
        rs = replica_set()
        assert rs.required(["assets"]) == 100 and rs.required(None) == 100
        rs.heard("assets")
        assert rs.wake.is_set()
        assert rs.required(["assets"]) is None and rs.required(None) is None
        assert rs.required(["grid"]) == 100  # another layer is not held back
        mark = rs.stamp_mark()
        rs.heard("grid")  # arrives while the position is asked for: not covered by it
        rs.stamp(mark, 250)
        assert rs.required(["assets"]) == 250 and rs.required(["grid"]) is None
        assert rs.required(None) is None
        rs.stamp(rs.stamp_mark(), 300)
        assert rs.required(["assets", "grid"]) == 300 and rs.required(["assets"]) == 250
        assert rs.required(None) == 300

    asyncio.run(run())


def test_not_hearing_sends_every_read_to_the_primary_and_a_new_start_raises_the_floor() -> None:
    async def run() -> None:
        rs = replica_set()
        rs.heard("assets")
        rs.stamp(rs.stamp_mark(), 120)
        rs.hearing(None)
        assert rs.required(["assets"]) is None and rs.required(["grid"]) is None
        rs.hearing(500)  # notices may have been missed meanwhile
        assert rs.required(["assets"]) == 500 and rs.required(["grid"]) == 500

    asyncio.run(run())
