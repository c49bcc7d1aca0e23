"""The jsonb column of extra properties: every source field without a typed column of its
own, one JSON object per row (missing values left out)."""

from __future__ import annotations

import numpy as np
import orjson

from etl.copytext.fields import number_texts
from etl.imports.property_types import is_null, json_value_text


def json_values(values: np.ndarray, kind: str | None) -> list[str | None]:
    """The JSON text of every value of one field (None where the value is missing)."""
    null = is_null(values)
    if values.dtype.kind == "b":
        out: list[str | None] = ["true" if v else "false" for v in values.tolist()]
    elif values.dtype.kind in "iu":
        out = number_texts(values)
    elif values.dtype.kind == "f":
        integral = kind == "integer" and bool(np.all(np.where(null, 0, values) % 1 == 0))
        out = number_texts(np.where(null, 0, values).astype(np.int64) if integral else values)
    elif values.dtype.kind == "M":
        out = [orjson.dumps(t).decode() for t in np.datetime_as_string(values).tolist()]
    else:
        parse = kind == "object"
        out = [None if v is None else json_value_text(v, parse_text=parse) for v in values.tolist()]
    for i in np.flatnonzero(null).tolist():
        out[i] = None
    return out


def extra_objects(columns: dict[str, np.ndarray], kinds: dict[str, str]) -> list[str]:
    """One JSON object text per row holding the given fields."""
    if not columns:
        raise ValueError("no extra fields")
    pairs = []
    for name, values in columns.items():
        key = orjson.dumps(name).decode() + ":"
        pairs.append([None if t is None else key + t for t in json_values(values, kinds.get(name))])
    return [
        "{" + ",".join(p for p in row if p is not None) + "}" for row in zip(*pairs, strict=True)
    ]
