"""The fields of COPY's text format, a column at a time: text escaped, NULL, numbers,
booleans, JSON and timestamps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

NULL = "\\N"
NO_TIME = np.iinfo(np.int64).min
"""The Unix time that stands for a missing timestamp in an int64 array."""
ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
SPECIAL = ("\\", "\t", "\n", "\r")


def escape_texts(texts: list[str]) -> list[str]:
    """Texts escaped for COPY's text format (backslash, tab, newline, carriage return)."""
    joined = "".join(texts)
    if not any(ch in joined for ch in SPECIAL):
        return texts
    return [t.translate(ESCAPES) for t in texts]


def with_nulls(texts: list[str], missing: Iterable[int]) -> list[str]:
    """``texts`` with the fields at the ``missing`` positions set to NULL."""
    for i in missing:
        texts[i] = NULL
    return texts


def number_texts(values: np.ndarray) -> list[str]:
    """The text of every number of a numeric array (floats as their shortest repr)."""
    return list(map(str, values.tolist()))


def boolean_texts(values: np.ndarray) -> list[str]:
    """``t`` or ``f`` for every value of a boolean array."""
    return ["t" if v else "f" for v in values.tolist()]


def text_column(values: Sequence[Any] | np.ndarray) -> list[str]:
    """The COPY fields of one column: numbers and booleans as PostgreSQL reads them, None
    as NULL, anything else as its text, escaped."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return boolean_texts(values)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return number_texts(values)
    items = values.tolist() if isinstance(values, np.ndarray) else values
    texts = escape_texts(["" if v is None else str(v) for v in items])
    return with_nulls(texts, [i for i, v in enumerate(items) if v is None])


def json_text(value: Any) -> str:
    """The JSON text of one value (numpy arrays and scalars included), for a json column."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def json_texts(values: Iterable[Any]) -> list[str]:
    """The JSON text of every value."""
    return list(map(json_text, values))


def timestamp_texts(seconds: np.ndarray) -> list[str | None]:
    """``timestamptz`` text of Unix seconds (UTC); ``NO_TIME`` becomes None (NULL)."""
    seconds = np.asarray(seconds, dtype=np.int64)
    missing = seconds == NO_TIME
    text = np.datetime_as_string(np.where(missing, 0, seconds).astype("datetime64[s]"), unit="s")
    out: list[str | None] = [t + "+00" for t in text.tolist()]
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out
