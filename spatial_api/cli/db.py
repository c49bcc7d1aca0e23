"""``cityhex db start|stop|status|url``, ``cityhex db replica start|stop|url`` and
``cityhex migrate``."""

from __future__ import annotations

import json

import typer

from layers.db.engine import embedded_cluster, replica_cluster
from layers.db.migrate import migrate
from layers.db.settings import storage_settings
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="The embedded PostgreSQL + PostGIS cluster.", no_args_is_help=True)
replica_app = typer.Typer(
    help="A streaming replica of the embedded cluster, on loopback.", no_args_is_help=True
)
app.add_typer(replica_app, name="replica")


def _external_notice() -> bool:
    url = storage_settings().database_url
    if url:
        console.print("CITYHEX_DATABASE_URL is set: CityHex uses that database and runs none.")
    return bool(url)


@app.command("start")
@reports_errors
def start() -> None:
    """Make (once) and start the embedded cluster; harmless when it already runs."""
    if _external_notice():
        return
    url = embedded_cluster().start()
    console.print(f"database running: {url}")


@app.command("stop")
@reports_errors
def stop() -> None:
    """Stop the embedded cluster."""
    if _external_notice():
        return
    embedded_cluster().stop()
    console.print("database stopped")


@app.command("status")
@reports_errors
def status() -> None:
    """Print the embedded cluster's folder, port, URL and state as JSON."""
    if _external_notice():
        return
    typer.echo(json.dumps(embedded_cluster().status(), indent=2))


@app.command("url")
@reports_errors
def url() -> None:
    """Print the database URL CityHex uses."""
    typer.echo(storage_settings().database_url or embedded_cluster().url())


@replica_app.command("start")
@reports_errors
def replica_start(
    port: int = typer.Option(0, help="Loopback port when the replica is made [a free one]"),
) -> None:
    """Make (once, by pg_basebackup through a replication slot) and start a streaming
    replica of the running embedded cluster; print its URL."""
    if _external_notice():
        return
    url = replica_cluster(port).start()
    console.print(f"replica running: {url}")
    console.print(f"read from it: CITYHEX_REPLICA_URLS={url}")


@replica_app.command("stop")
@reports_errors
def replica_stop() -> None:
    """Stop the replica (its slot keeps the primary's WAL for it until it is back)."""
    if _external_notice():
        return
    replica_cluster().stop()
    console.print("replica stopped")


@replica_app.command("url")
@reports_errors
def replica_url() -> None:
    """Print the replica's URL (for CITYHEX_REPLICA_URLS)."""
    typer.echo(replica_cluster().url())


@reports_errors
def migrate_command() -> None:
    """Apply the schema migrations (starting the embedded cluster when it is used)."""
    console.print(migrate(ready_database()).describe())
