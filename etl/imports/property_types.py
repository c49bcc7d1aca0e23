"""Property values: the type of each column, source values coerced to it (with a problem
naming field and row for every value that does not fit), and their COPY text.

Kinds: integer, number, boolean, datetime, date, string and object (JSON).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import orjson

from etl.copytext.fields import json_text, text_column, with_nulls
from etl.imports.report import Problem
from etl.imports.source_table import SourceTable

TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0"}
INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
LENGTH = re.compile(r"^(character varying|character)\((\d+)\)$")


@dataclass(frozen=True)
class ColumnType:
    """What a column stores: its kind, and for text a maximum length, for integers a width."""

    kind: str
    max_length: int | None = None
    bits: int = 64


def column_type(sql_type: str) -> ColumnType:
    """The ColumnType of a PostgreSQL type as ``format_type`` spells it."""
    sql_type = sql_type.lower()
    if sql_type in INT_BITS:
        return ColumnType("integer", bits=INT_BITS[sql_type])
    if sql_type in ("double precision", "real") or sql_type.startswith("numeric"):
        return ColumnType("number")
    if sql_type == "boolean":
        return ColumnType("boolean")
    if sql_type.startswith("timestamp"):
        return ColumnType("datetime")
    if sql_type == "date":
        return ColumnType("date")
    if sql_type in ("jsonb", "json"):
        return ColumnType("object")
    match = LENGTH.match(sql_type)
    return ColumnType("string", max_length=int(match.group(2)) if match else None)


@dataclass
class Coerced:
    """One column's values in its kind: numbers in numeric arrays, the rest as text (ISO
    times, JSON for objects); ``null`` marks missing values."""

    kind: str
    values: np.ndarray
    null: np.ndarray

    def item(self, index: int) -> Any:
        """The value of one row (None when null)."""
        if self.null[index]:
            return None
        value = self.values[index]
        return value.item() if isinstance(value, np.generic) else value

    def texts_of(self, start: int, stop: int) -> list[str]:
        """The COPY text fields of rows ``start`` to ``stop``."""
        fields = text_column(self.values[start:stop])
        return with_nulls(fields, np.flatnonzero(self.null[start:stop]).tolist())


def is_null(values: np.ndarray) -> np.ndarray:
    """Which values are missing (None, or NaN / NaT in numeric arrays)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind == "O":
        return np.equal(values, None) | np.not_equal(values, values)  # None, or NaN
    return np.zeros(len(values), dtype=bool)


def coerce(
    values: np.ndarray, ctype: ColumnType, field: str, table: SourceTable
) -> tuple[Coerced, list[Problem]]:
    """``values`` as ``ctype``, and a Problem (naming field and row) for each misfit."""
    null = is_null(values)
    converter = CONVERTERS[ctype.kind]
    result, bad = converter(values, null)
    problems = [Problem(table.label(i), f"{field}: {reason}") for i, reason in bad]
    if ctype.kind == "integer" and ctype.bits < 64:
        limit = 2 ** (ctype.bits - 1)
        out_of_range = np.flatnonzero(
            ~result.null & ((result.values < -limit) | (result.values >= limit))
        )
        problems += [
            Problem(table.label(i), f"{field}: {result.values[i]} is too large")
            for i in out_of_range.tolist()
        ]
    if ctype.max_length is not None:
        texts = result.values.tolist()
        longest = max(map(len, filter(None, texts)), default=0)
        long = (
            []
            if longest <= ctype.max_length
            else [i for i, v in enumerate(texts) if v is not None and len(v) > ctype.max_length]
        )
        problems += [
            Problem(
                table.label(i),
                f"{field}: {result.values[i]!r} is longer than {ctype.max_length} characters",
            )
            for i in long
        ]
    return result, problems


Bad = list[tuple[int, str]]


def _per_item(
    values: np.ndarray, null: np.ndarray, parse: Callable[[Any], Any], out: np.ndarray, what: str
) -> Bad:
    bad: Bad = []
    items = values.tolist()
    for i in np.flatnonzero(~null).tolist():
        try:
            out[i] = parse(items[i])
        except (ValueError, TypeError, OverflowError):
            bad.append((i, f"{items[i]!r} is not {what}"))
    return bad


def _to_integer(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    if values.dtype.kind in "iub":
        return Coerced("integer", values.astype(np.int64), null), []
    out = np.zeros(len(values), dtype=np.int64)
    if values.dtype.kind == "f":
        filled = np.where(null, 0.0, values)
        fraction = np.flatnonzero(filled != np.round(filled))
        out[:] = filled
        return Coerced("integer", out, null), [
            (i, f"{values[i]!r} is not a whole number") for i in fraction.tolist()
        ]
    return Coerced("integer", out, null), _per_item(values, null, _parse_int, out, "an integer")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool | int):
        return int(value)
    number = float(value) if isinstance(value, float) else None
    if number is None:
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def _to_number(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    if values.dtype.kind in "iufb":
        out = values.astype(np.float64)
    else:
        out = np.zeros(len(values))
        bad = _per_item(values, null, _parse_float, out, "a number")
        return Coerced("number", out, null), bad
    infinite = np.flatnonzero(~null & ~np.isfinite(out))
    return Coerced("number", out, null), [(i, "is not a finite number") for i in infinite.tolist()]


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    number = float(value.strip() if isinstance(value, str) else value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(value)
    return number


def _to_boolean(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    if values.dtype.kind == "b":
        return Coerced("boolean", values, null), []
    out = np.zeros(len(values), dtype=bool)
    return Coerced("boolean", out, null), _per_item(values, null, _parse_bool, out, "true or false")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(value)


def parse_datetime(value: Any) -> datetime:
    """A date-time from ISO 8601 text (also with '/' dates or a space before the time)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value).strip()
    if len(text) >= 10 and text[4] == "/" and text[7] == "/":
        text = f"{text[:4]}-{text[5:7]}-{text[8:]}"
    return datetime.fromisoformat(text)


def _to_datetime(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    return _times(values, null, "datetime", lambda v: parse_datetime(v).isoformat())


def _to_date(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    return _times(values, null, "date", lambda v: parse_datetime(v).date().isoformat())


def _times(
    values: np.ndarray, null: np.ndarray, kind: str, parse: Callable[[Any], str]
) -> tuple[Coerced, Bad]:
    out = np.full(len(values), None, dtype=object)
    if values.dtype.kind == "M":
        out[~null] = np.datetime_as_string(values[~null]).astype(object)
        return Coerced(kind, out, null), []
    what = "a date-time (ISO 8601)" if kind == "datetime" else "a date (YYYY-MM-DD)"
    return Coerced(kind, out, null), _per_item(values, null, parse, out, what)


def _to_string(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    if values.dtype.kind == "f" and np.all(np.where(null, 0, values) % 1 == 0):
        values = np.where(null, 0, values).astype(np.int64)
    if values.dtype.kind in "iub":
        out = np.array(list(map(str, values.tolist())), dtype=object)
    elif set(map(type, values.tolist())) <= {str, type(None)}:
        return Coerced("string", values, null), []
    else:
        out = np.array(
            [v if isinstance(v, str) or v is None else _as_text(v) for v in values.tolist()],
            dtype=object,
        )
    out[null] = None
    return Coerced("string", out, null), []


def _as_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _to_object(values: np.ndarray, null: np.ndarray) -> tuple[Coerced, Bad]:
    out = np.full(len(values), None, dtype=object)
    items = values.tolist()
    for i in np.flatnonzero(~null).tolist():
        out[i] = json_value_text(items[i], parse_text=True)
    return Coerced("object", out, null), []


def json_value_text(value: Any, parse_text: bool = False) -> str:
    """The JSON text of one value; with ``parse_text`` a string holding JSON is taken as it."""
    if parse_text and isinstance(value, str):
        try:
            return json_text(orjson.loads(value))
        except orjson.JSONDecodeError:
            pass
    return json_text(value)


CONVERTERS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[Coerced, Bad]]] = {
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "date": _to_date,
    "string": _to_string,
    "object": _to_object,
}
