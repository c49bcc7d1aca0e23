"""A real browser for the tests of this folder: Debian's Chromium driven by Playwright, with
a profile of its own, and a static web site on a loopback port of its own (another origin
than CityHex's)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebGL on the CPU (SwiftShader), asked for rather than left to a deprecated fallback
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1024, "height": 768}


@pytest.fixture(scope="module")
def chromium() -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile; closed after the module."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: run `make test-tools` (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="cityhex-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Say nothing."""


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Path, str]]:
    """A folder served as a static web site on a free loopback port (another origin than
    CityHex's), and that site's origin ``http://127.0.0.1:PORT``."""
    with tempfile.TemporaryDirectory(prefix="cityhex-site-") as folder:
        handler = partial(QuietHandler, directory=folder)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Path(folder), f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
