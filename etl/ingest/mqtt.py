"""Sensor readings from an MQTT broker, stored exactly as HTTP batches are.

The client subscribes with QoS 1 in a persistent MQTT 5 session (fixed client id, no clean
start, a session expiry), so the broker keeps what it has not delivered while the client
or the broker is down. Messages are acknowledged by hand, and only after the batch that
holds them is committed: a message the broker counts as delivered is in the database.
After a reconnect, messages of the old connection are not acknowledged; the broker sends
them again and the idempotent ingest stores each reading once.

A message is one reading ``{property, ts, value}``, an array of them, or an object with a
``readings`` array; the sensor is the topic level matched by ``+`` in the subscription
(``city/sensors/+/readings``) unless a row names its ``sensor``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.errors import BadRequest, ServiceUnavailable
from gis.jsontext import parse_json
from layers.sensors.readings import MAX_BATCH, IngestReport, ingest

log = logging.getLogger("cityhex.mqtt")
T = TypeVar("T")
RETRYABLE = (OSError, DBAPIError, ServiceUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class MqttOptions:
    """Where to read from and how to batch."""

    host: str
    port: int
    topics: tuple[str, ...]
    client_id: str = "cityhex-ingest"
    batch_messages: int = 5000
    batch_seconds: float = 0.2
    receive_maximum: int = 10_000
    session_expiry_seconds: int = 7 * 24 * 3600


@dataclass(frozen=True)
class Message:
    """A received message and the connection (generation) it came on."""

    generation: int
    mid: int
    topic: str
    payload: bytes


@dataclass
class IngestStats:
    """Running totals of the stream."""

    messages: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    batches: int = 0

    def add(self, messages: int, report: IngestReport, malformed: int) -> None:
        """Count a committed batch."""
        self.messages += messages
        self.accepted += report.accepted
        self.duplicate += report.duplicate
        self.rejected += len(report.rejected) + malformed
        self.batches += 1


def parse_broker(url: str) -> tuple[str, int]:
    """Host and port of ``mqtt://HOST:PORT`` (port 1883 when absent)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise BadRequest(f"{url!r} is not a broker URL like mqtt://HOST:PORT", code="bad_broker")
    try:
        return parts.hostname, parts.port or 1883
    except ValueError:
        raise BadRequest(f"{url!r} has a bad port", code="bad_broker") from None


def topic_sensor(filters: tuple[str, ...], topic: str) -> str | None:
    """The topic level that the first ``+`` of a matching subscription stands for."""
    levels = topic.split("/")
    for topic_filter in filters:
        parts = topic_filter.split("/")
        if "+" in parts and mqtt.topic_matches_sub(topic_filter, topic):
            return levels[parts.index("+")]
    return None


def message_items(payload: bytes, key: str, limit: int) -> list[Any]:
    """The items a message carries: one JSON object, an array of them, or an object with a
    ``key`` array; ValueError for anything else or more than ``limit`` items."""
    try:
        data = parse_json(payload, allow_non_finite=True)  # NaN/Infinity: refused per row
    except BadRequest as exc:
        raise ValueError(exc.message) from None
    if isinstance(data, dict):
        data = data.get(key, [data])
    if not isinstance(data, list):
        raise ValueError(f"the payload is not an object, an array or {{{key}: [...]}}")
    if len(data) > limit:
        raise ValueError(f"{len(data)} {key} in one message; at most {limit}")
    return data


def message_rows(payload: bytes, sensor: str | None) -> list[Any]:
    """The readings a message carries, each naming its sensor; ValueError if it is not a
    reading, an array of readings or ``{"readings": [...]}`` in JSON."""
    data = message_items(payload, "readings", MAX_BATCH)
    if sensor is not None:
        data = [{"sensor": sensor, **r} if isinstance(r, dict) else r for r in data]
    return data


async def retrying(store: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T | None:
    """What ``store`` returns, called again (with a growing pause) while the database is
    unreachable; None when ``stop`` is set first."""
    delay = 0.5
    while True:
        try:
            return await store()
        except RETRYABLE as exc:  # the database is down or restarting: try again
            log.warning("could not store a batch (%s); retrying in %.1f s", exc, delay)
            if stop.is_set():
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@dataclass
class Chunk:
    """Messages whose readings go in one transaction."""

    messages: list[Message] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)
    malformed: int = 0


def chunks(messages: list[Message], filters: tuple[str, ...]) -> Iterator[Chunk]:
    """The messages' readings, cut at message boundaries into ingestible batches."""
    chunk = Chunk()
    for msg in messages:
        try:
            rows = message_rows(msg.payload, topic_sensor(filters, msg.topic))
        except ValueError as exc:
            log.warning("refused message on %s: %s", msg.topic, exc)
            rows = []
            chunk.malformed += 1
        if chunk.rows and len(chunk.rows) + len(rows) > MAX_BATCH:
            yield chunk
            chunk = Chunk()
        chunk.messages.append(msg)
        chunk.rows.extend(rows)
    if chunk.messages:
        yield chunk


class MqttIngest:
    """One subscriber: receives on paho's network thread, stores and acknowledges on the
    asyncio loop."""

    def __init__(self, engine: AsyncEngine, options: MqttOptions) -> None:
        self.engine = engine
        self.options = options
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.generation = 0
        self.stats = IngestStats()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 5)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self.generation += 1
        log.info("connected to the broker (session present: %s)", flags.session_present)
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.options.topics])

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Message(self.generation, msg.mid, msg.topic, msg.payload))

    def start(self) -> None:
        """Connect (retrying until the broker answers) and start the network thread."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.options.session_expiry_seconds
        props.ReceiveMaximum = self.options.receive_maximum
        self.client.connect_async(
            self.options.host, self.options.port, keepalive=30, clean_start=False, properties=props
        )
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the network thread (the session stays on the broker)."""
        self.client.disconnect()
        self.client.loop_stop()

    def take(self, wait: float) -> list[Message]:
        """The next batch: waits up to ``wait`` s for a first message, then collects more
        for at most ``batch_seconds`` or until ``batch_messages``."""
        try:
            batch = [self.inbox.get(timeout=wait)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.options.batch_seconds
        while len(batch) < self.options.batch_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self.inbox.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def acknowledge(self, messages: list[Message]) -> None:
        """PUBACK the messages that came on the current connection."""
        for msg in messages:
            if msg.generation == self.generation:
                self.client.ack(msg.mid, 1)

    async def store(self, chunk: Chunk, stop: asyncio.Event) -> bool:
        """Commit a chunk, retrying while the database is unreachable; then acknowledge it.
        False when stopped before it could be stored (it stays unacknowledged)."""
        report = await retrying(partial(ingest, self.engine, chunk.rows), stop)
        if report is None:
            return False
        self.acknowledge(chunk.messages)
        self.stats.add(len(chunk.messages), report, chunk.malformed)
        for rejection in report.rejected[:3]:
            log.warning("refused reading: %s %s", rejection.code, rejection.reason)
        return True

    async def handle(self, messages: list[Message], stop: asyncio.Event) -> bool:
        """Store and acknowledge received ``messages``; False when stopped first."""
        for chunk in chunks(messages, self.options.topics):
            if not await self.store(chunk, stop):
                return False
        return True

    async def run(self, stop: asyncio.Event) -> IngestStats:
        """Receive, store and acknowledge until ``stop`` is set."""
        self.start()
        try:
            while not stop.is_set():
                batch = await asyncio.to_thread(self.take, 0.5)
                if batch and not await self.handle(batch, stop):
                    break
        finally:
            self.close()
        return self.stats
