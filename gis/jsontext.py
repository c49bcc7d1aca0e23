"""JSON text from outside (request bodies, MQTT payloads) parsed with a bound on its nesting.

Nothing CityHex reads nests deeper than a few levels (a GeoJSON MultiPolygon is five), while
a parser that follows 50,000 levels exhausts the stack and one that stops at 1,024 still
hands over values no serializer writes back. The depth is measured on the bytes before
parsing, outside strings, so a deep body costs one vectorized pass and no recursion.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson

from gis.errors import BadRequest

MAX_DEPTH = 32
"""How deep arrays and objects may nest in a JSON body."""
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in the JSON text ``raw`` (brackets inside strings
    do not count; unbalanced text is measured as far as it goes)."""
    if not _OPEN.intersection(raw):
        return 0
    codes = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    opens = (codes == ord("[")) | (codes == ord("{"))
    closes = (codes == ord("]")) | (codes == ord("}"))
    steps = opens[opens | closes].astype(np.int32) * 2 - 1
    return int(np.cumsum(steps).max(initial=0))


def parse_json(raw: bytes, allow_non_finite: bool = False, max_depth: int = MAX_DEPTH) -> Any:
    """The value of the JSON text ``raw``; 400 ``invalid_json`` when it is not JSON or nests
    deeper than ``max_depth``. With ``allow_non_finite`` the non-standard ``NaN`` and
    ``Infinity`` and numbers past a double (``1e999``) are read as non-finite floats, so the
    caller can refuse them one by one."""
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise BadRequest(
            f"the body is not JSON that CityHex reads: it nests {depth} levels deep; at most "
            f"{max_depth}",
            code="invalid_json",
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not allow_non_finite:
            raise BadRequest(f"the body is not JSON: {exc}", code="invalid_json") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}", code="invalid_json") from None
