"""The built web app (``spatial_api/web``, built by ``make install`` into ``web/dist``):
its page, its files and its service worker (``sw.js``, which keeps them for offline starts).

The build writes each file under a name holding a hash of its content and lists them in
``dist/manifest.json``; only listed names are served, with a year-long immutable cache
lifetime (a new build has new names), while the page that names them is never cached. The
page forbids every origin but CityHex's own (Content-Security-Policy), so no code of the
app can reach another host.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from pathlib import Path

from gis.errors import NotFound, ServiceUnavailable

DIST = Path(__file__).resolve().parent / "web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
CSP = (
    "default-src 'self'; script-src 'self'{inline}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; child-src blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""The app's Content-Security-Policy: CityHex's origin only (MapLibre starts its workers from
a blob URL and sets inline styles), and the page's inline bootstrap by its hash."""
MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="cityhex-maplibre" content="{maplibre}">
{boot}
<meta name="theme-color" content="#0b63c5">
<title>CityHex 城市网格</title>
<link rel="icon" href="data:,">
{styles}
</head>
<body>
<div id="app"></div>
{scripts}
</body>
</html>
"""

NOT_BUILT = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>网页应用尚未构建 The web app is not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto">
<h1>网页应用尚未构建<br><small>The web app is not built</small></h1>
<p>请在服务器上运行 <code>make install</code>（需要 Node.js 与 npm），然后刷新本页。</p>
<p>Run <code>make install</code> on the server (it needs Node.js and npm: it runs
<code>npm ci</code> and the build in <code>spatial_api/web</code>), then reload this page.</p>
</body>
</html>
"""


@dataclass(frozen=True)
class Build:
    """A build of the web app: its files in load order, the chunks its code imports lazily
    (served, not named by the page), and the page's inline bootstrap."""

    styles: tuple[str, ...]
    scripts: tuple[str, ...]
    chunks: tuple[str, ...] = ()
    inline: str = ""

    @property
    def csp(self) -> str:
        """The page's Content-Security-Policy, allowing its inline bootstrap by hash."""
        if not self.inline:
            return CSP.format(inline="")
        digest = hashlib.sha256(self.inline.encode()).digest()
        return CSP.format(inline=f" 'sha256-{base64.b64encode(digest).decode()}'")

    @property
    def files(self) -> frozenset[str]:
        """Every file name the build serves."""
        return frozenset(self.styles + self.scripts + self.chunks)


class NotBuilt(ServiceUnavailable):
    """The web app has not been built on this server."""

    code = "app_not_built"


@lru_cache(maxsize=4)
def _read(manifest: Path, mtime_ns: int) -> Build:
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return Build(
        tuple(data["styles"]),
        tuple(data["scripts"]),
        tuple(data.get("chunks", ())),
        data.get("inline", ""),
    )


def current_build(dist: Path = DIST) -> Build:
    """The build in ``dist`` (re-read when a new build replaces it); NotBuilt without one."""
    manifest = dist / "manifest.json"
    try:
        return _read(manifest, manifest.stat().st_mtime_ns)
    except FileNotFoundError:
        raise NotBuilt(
            "the web app is not built: run `make install` (npm ci and the build in spatial_api/web)"
        ) from None


def app_page(assets_url: str, build: Build) -> str:
    """The app's HTML page, naming the build's files under ``assets_url``: the inline
    bootstrap first (it starts the first screen's requests before any download, and before
    the stylesheets, which would hold it back), the app's module async, and MapLibre only
    named (``cityhex-maplibre``, above the bootstrap, which reads it): the app loads it after
    the first view, so it never takes the bandwidth the first view needs."""
    styles = "\n".join(
        f'<link rel="stylesheet" href="{escape(assets_url)}/{escape(f)}">' for f in build.styles
    )
    scripts = "\n".join(
        f'<script async type=module src="{escape(assets_url)}/{escape(f)}"></script>'
        for f in build.scripts
        if f.startswith("app-")
    )
    maplibre = next((f for f in build.scripts if not f.startswith("app-")), "")
    boot = f"<script>{build.inline}</script>" if build.inline else ""
    return PAGE.format(
        boot=boot,
        maplibre=escape(f"{assets_url}/{maplibre}"),
        styles=styles,
        scripts=scripts,
    )


def service_worker(dist: Path = DIST) -> Path:
    """The build's service worker (``sw.js``); NotBuilt without a build."""
    current_build(dist)
    return dist / "sw.js"


def asset_file(name: str, build: Build, dist: Path = DIST) -> tuple[Path, str]:
    """The path and media type of one file of the build; 404 for a name it does not list."""
    if name not in build.files:
        raise NotFound(f"the web app has no file {name!r}", code="unknown_asset")
    return dist / name, MEDIA_TYPES[name.rsplit(".", 1)[1]]
