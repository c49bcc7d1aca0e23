"""``cityhex ingest mqtt``: the sensor stream (and inspectors' GPS fixes) from an MQTT
broker."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

from etl.ingest.mqtt import IngestStats, MqttIngest, MqttOptions, parse_broker
from etl.ingest.patrol_mqtt import PatrolMqttIngest
from layers.db.engine import create_async_engine
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="Sensor readings from streams.", no_args_is_help=True)


async def _run(url: str, options: MqttOptions, fixes: MqttOptions | None) -> IngestStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = create_async_engine(url, pool_size=3)
    try:
        if fixes is None:
            return await MqttIngest(engine, options).run(stop)
        readings, _ = await asyncio.gather(
            MqttIngest(engine, options).run(stop), PatrolMqttIngest(engine, fixes).run(stop)
        )
        return readings
    finally:
        await engine.dispose()


@app.command("mqtt")
@reports_errors
def mqtt(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="mqtt://HOST:PORT"),
    topic: list[str] = typer.Option(
        ["city/sensors/+/readings"], help="Subscription; '+' stands for the sensor code"
    ),
    client_id: str = typer.Option(
        "cityhex-ingest", help="Client id: the broker keeps this session's messages"
    ),
    batch_messages: int = typer.Option(5000, min=1, help="Messages per transaction at most"),
    batch_seconds: float = typer.Option(0.2, min=0.0, help="Longest wait to fill a batch"),
    fixes_topic: list[str] = typer.Option(
        ["city/patrol/+/fixes"],
        help="Subscription for inspectors' GPS fixes; '+' stands for the inspector id "
        "(an empty value: none)",
    ),
) -> None:
    """Store readings from MQTT (QoS 1) until stopped; each message is acknowledged only
    after its readings are committed."""
    host, port = parse_broker(broker)
    options = MqttOptions(host, port, tuple(topic), client_id, batch_messages, batch_seconds)
    fix_topics = tuple(t for t in fixes_topic if t)
    fixes = (
        MqttOptions(host, port, fix_topics, f"{client_id}-patrol", batch_messages, batch_seconds)
        if fix_topics
        else None
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = ready_database()
    console.print(f"ingesting {', '.join(topic)} from {host}:{port} as {client_id}")
    stats = asyncio.run(_run(url, options, fixes))
    console.print(
        f"stopped: {stats.messages} messages, {stats.accepted} readings stored, "
        f"{stats.duplicate} duplicates, {stats.rejected} refused"
    )
