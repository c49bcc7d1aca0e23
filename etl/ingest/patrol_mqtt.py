"""Inspectors' GPS fixes from an MQTT broker, stored exactly as ``POST /patrol/fixes`` stores
them.

The same subscriber as sensor readings (``etl.ingest.mqtt``: QoS 1, persistent session,
acknowledged only after commit, idempotent on redelivery), on topics such as
``city/patrol/+/fixes`` where the ``+`` level is the inspector's user id. A message is one fix
``{ts, lon, lat, accuracy_m?, speed_mps?}``, an array of them, or ``{"fixes": [...]}``. The
broker's access rules decide who may publish on an inspector's topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from functools import partial
from typing import Any

from etl.ingest.mqtt import Message, MqttIngest, message_items, retrying, topic_sensor
from gis.errors import Unprocessable
from layers.patrol.fixes import MAX_BATCH, FixReport, ingest

log = logging.getLogger("cityhex.mqtt.patrol")


def message_fixes(payload: bytes) -> list[Any]:
    """The fixes a message carries; ValueError if it is not a fix, an array of fixes or
    ``{"fixes": [...]}`` in JSON."""
    return message_items(payload, "fixes", MAX_BATCH)


def topic_inspector(filters: tuple[str, ...], topic: str) -> int:
    """The inspector id a topic names (its ``+`` level); ValueError when it names none."""
    level = topic_sensor(filters, topic)
    if level is None or not level.isdigit() or not 0 < int(level) < 2**31:
        raise ValueError(f"topic {topic!r} names no inspector id")
    return int(level)


class PatrolMqttIngest(MqttIngest):
    """A subscriber to fix topics: each received batch is stored per inspector."""

    def group(self, messages: list[Message]) -> tuple[dict[int, list[Any]], int]:
        """The fixes of ``messages`` per inspector, and how many messages were refused."""
        rows: dict[int, list[Any]] = defaultdict(list)
        malformed = 0
        for msg in messages:
            try:
                inspector = topic_inspector(self.options.topics, msg.topic)
                rows[inspector].extend(message_fixes(msg.payload))
            except ValueError as exc:
                log.warning("refused message on %s: %s", msg.topic, exc)
                malformed += 1
        return rows, malformed

    async def store_fixes(self, inspector: int, fixes: list[Any]) -> FixReport:
        """One inspector's fixes stored; when the inspector is unknown, refused whole (a
        report that received nothing)."""
        try:
            return await ingest(self.engine, inspector, fixes)
        except Unprocessable as exc:  # an unknown inspector: the rows are refused
            log.warning("refused fixes of inspector %s: %s", inspector, exc.message)
            return FixReport(inspector_id=inspector, received=0)

    async def handle(self, messages: list[Message], stop: asyncio.Event) -> bool:
        """Commit the fixes of ``messages`` (in batches of at most MAX_BATCH per inspector),
        retrying while the database is unreachable; then acknowledge them all. False when
        stopped first (they stay unacknowledged, and the broker sends them again)."""
        rows, malformed = self.group(messages)
        report = FixReport(inspector_id=0, received=0)
        for inspector, fixes in rows.items():
            for lo in range(0, len(fixes), MAX_BATCH):
                part = fixes[lo : lo + MAX_BATCH]
                stored = await retrying(partial(self.store_fixes, inspector, part), stop)
                if stored is None:
                    return False
                if not stored.received:
                    malformed += 1
                report.accepted += stored.accepted
                report.duplicate += stored.duplicate
                report.rejected.extend(stored.rejected)
        self.acknowledge(messages)
        self.stats.add(len(messages), report, malformed)  # type: ignore[arg-type]
        return True
