"""MapLibre style documents: one per layer and ``city``, which combines them.

The documents live next to this file as JSON, their tile sources written as
``{base}/tiles/<layers>/tilejson.json``; :func:`load_style` puts in the base URL of the
server that serves them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BASE = "{base}"


def style_names() -> list[str]:
    """The names of the styles, sorted."""
    return sorted(p.stem for p in HERE.glob("*.json"))


@lru_cache
def _template(name: str) -> str:
    return (HERE / f"{name}.json").read_text(encoding="utf-8")


def load_style(name: str, base_url: str) -> dict[str, Any]:
    """The style ``name`` with its sources on the server at ``base_url``; KeyError naming
    the known styles when there is no such style."""
    if name not in style_names():
        raise KeyError(f"no style {name!r}; known styles: {', '.join(style_names())}")
    return json.loads(_template(name).replace(BASE, base_url.rstrip("/")))


def style_title(name: str, base_url: str = "") -> str:
    """The human name of a style."""
    return load_style(name, base_url).get("name", name)
