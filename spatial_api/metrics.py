"""Prometheus metrics: request counts and latencies per route, and the state and lag of each
read replica, across worker processes."""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from layers.db.replicas import Replica

REQUESTS = Counter(
    "cityhex_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "cityhex_http_request_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

REPLICA_STATES = ("up", "lagging", "down", "unknown")
REPLICA_LAG = Gauge(
    "cityhex_replica_lag_seconds",
    "How far a read replica is behind the primary at the last check (NaN: not reachable)",
    ["replica"],
    multiprocess_mode="max",
)
REPLICA_UP = Gauge(
    "cityhex_replica_up",
    "1 while reads may go to the replica, 0 while it is skipped (down or lagging)",
    ["replica"],
    multiprocess_mode="min",
)
REPLICA_STATE = Gauge(
    "cityhex_replica_state",
    "1 for the replica's state at the last check (up, lagging, down, unknown)",
    ["replica", "state"],
    multiprocess_mode="max",
)


def observe_replicas(replicas: list[Replica]) -> None:
    """Record what the last health check found of each replica."""
    for r in replicas:
        REPLICA_LAG.labels(r.name).set(float("nan") if r.lag_s is None else r.lag_s)
        REPLICA_UP.labels(r.name).set(1 if r.healthy else 0)
        for state in REPLICA_STATES:
            REPLICA_STATE.labels(r.name, state).set(1 if r.state == state else 0)


class MetricsMiddleware:
    """Counts and times every request under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - start)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text, merged over worker processes when they share a metrics folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
