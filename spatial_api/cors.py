"""Cross-origin access: web pages on the origins of ``CITYHEX_CORS_ORIGINS`` may call the API.

Starlette's CORSMiddleware answers the preflight ``OPTIONS`` of a listed origin and marks
the answers to it as readable; an unlisted origin gets no ``Access-Control-Allow-Origin``.
Callers authenticate with the ``Authorization`` header, which a page sets itself, so
credentials mode (cookies) is never allowed, and ``*`` can never be paired with it.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
"""The methods the API answers."""
REQUEST_HEADERS = ("Authorization", "If-Match", "If-None-Match", "Content-Crs", "Last-Event-ID")
"""Request headers the API reads, beyond those CORS always allows (Accept, Content-Type…)."""
EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Content-Crs",
    "Content-Disposition",
    "Retry-After",
    "WWW-Authenticate",
    "X-Cache",
    "X-Geometry-Repaired",
    "X-Input-Count",
    "X-Raster-CRS",
    "X-Raster-Size",
)
"""Response headers a page may read: the ETag for If-Match, Location of what it created…"""
PREFLIGHT_MAX_AGE = 3600
"""How long a browser may reuse a preflight answer, seconds (browsers cap it at 2 hours)."""


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Open ``app`` to pages on ``origins`` (``*``: any); with none, leave it closed."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        allow_credentials=False,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )
