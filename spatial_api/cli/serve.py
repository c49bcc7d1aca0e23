"""``cityhex serve``."""

from __future__ import annotations

import os
import socket
import tempfile

import typer
import uvicorn

from gis.errors import Conflict
from layers.db.migrate import migrate
from spatial_api.cli.common import console, ready_database, reports_errors
from spatial_api.settings import api_settings


def check_port_free(host: str, port: int) -> None:
    """Conflict when ``host:port`` cannot be listened on (another server holds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise Conflict(
                f"cannot listen on {host}:{port} ({exc.strerror}); stop what holds it or pass"
                " --port (or set CITYHEX_PORT)",
                code="port_in_use",
            ) from exc


@reports_errors
def serve_command(
    host: str = typer.Option(None, help="Interface to listen on [CITYHEX_HOST, 127.0.0.1]"),
    port: int = typer.Option(None, help="Port [CITYHEX_PORT, 8000]"),
    workers: int = typer.Option(None, help="Worker processes [CITYHEX_WORKERS, 1]"),
) -> None:
    """Serve the API (migrating the database first)."""
    settings = api_settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    check_port_free(host, port)
    url = ready_database()
    console.print(migrate(url).describe())
    os.environ["CITYHEX_DATABASE_URL"] = url
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cityhex-metrics-")
    console.print(f"CityHex on http://{host}:{port} ({workers} worker(s))")
    uvicorn.run(
        "spatial_api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # forwarding headers: spatial_api.proxies, from trusted proxies only
    )
