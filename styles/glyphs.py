"""The glyphs of the styles' labels: prebuilt SDF glyph ranges (MapLibre's
``{fontstack}/{start}-{end}.pbf``) read from a folder, one subfolder per font.

The default folder is the fonts of the npm package ``tileserver-gl-styles`` (Noto Sans
Regular, every range 0–65535, built with node-fontnik), installed from ``package.json``.
Noto Sans has no CJK glyphs: its CJK ranges are empty, and a page draws Chinese with the
browser's own font through MapLibre's ``localIdeographFontFamily`` map option.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_FONTS = (
    Path(__file__).resolve().parent.parent / "node_modules" / "tileserver-gl-styles" / "fonts"
)
RANGE_SIZE = 256
LAST_START = 65536 - RANGE_SIZE
RANGE = re.compile(r"^([0-9]{1,5})-([0-9]{1,5})$")
FIRST_RANGE = "0-255.pbf"


class GlyphSettings(BaseSettings):
    """Where the label glyphs are."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    glyphs_dir: Path | None = None
    """Folder of SDF glyph ranges, one subfolder per font holding `<start>-<end>.pbf`
    (unset: `node_modules/tileserver-gl-styles/fonts` of the repository, from `npm ci`).
    Without glyphs, styles are served without labels."""

    @property
    def folder(self) -> Path:
        """The glyph folder in use."""
        return self.glyphs_dir or PACKAGE_FONTS


@lru_cache
def glyph_settings() -> GlyphSettings:
    """The glyph settings of this process."""
    return GlyphSettings()


class UnknownFont(LookupError):
    """None of the fonts of a font stack is served."""


class BadRange(ValueError):
    """A range that is not 256 code points starting at a multiple of 256."""


@lru_cache
def fonts(folder: Path) -> tuple[str, ...]:
    """The fonts in ``folder`` (subfolders holding at least the first range), sorted."""
    if not folder.is_dir():
        return ()
    return tuple(sorted(p.name for p in folder.iterdir() if (p / FIRST_RANGE).is_file()))


def parse_range(text: str) -> int:
    """The first code point of a ``<start>-<end>`` range name; BadRange unless it names
    256 code points from a multiple of 256 within the Basic Multilingual Plane."""
    match = RANGE.match(text)
    start, end = (int(match[1]), int(match[2])) if match else (-1, -1)
    if start < 0 or start % RANGE_SIZE or start > LAST_START or end != start + RANGE_SIZE - 1:
        raise BadRange(
            f"{text!r} is not a glyph range: give <start>-<end>, 256 code points from a "
            f"multiple of 256 (0-255, 256-511, ... {LAST_START}-65535)"
        )
    return start


@lru_cache(maxsize=1024)
def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def glyph_range(fontstack: str, range_name: str, folder: Path) -> bytes:
    """The protobuf of the SDF glyphs in ``range_name`` of the first font of the comma list
    ``fontstack`` that ``folder`` holds with that range; UnknownFont (naming the fonts
    served) or BadRange."""
    start = parse_range(range_name)
    served = fonts(folder)
    for font in (f.strip() for f in fontstack.split(",")):
        name = f"{start}-{start + RANGE_SIZE - 1}.pbf"
        body = _read(folder / font / name) if font in served else None
        if body is not None:
            return body
    known = ", ".join(served) or "none (install the glyphs: npm ci)"
    raise UnknownFont(f"no font of {fontstack!r} is served; fonts: {known}")
