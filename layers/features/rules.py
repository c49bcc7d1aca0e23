"""Property rules of a write: types, required, patterns and enums from the catalog, plus the
named domain rules of digital urban management (the 16-digit asset code).

:func:`check_properties` turns a feature's ``properties`` into column values (typed for the
database) and free-form extras, or raises :class:`gis.errors.Unprocessable` naming every
property that breaks a rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gis.errors import Unprocessable
from layers.catalog.registry import Layer

ASSET_CODE = re.compile(
    r"^(?P<division>[0-9]{6})(?P<major>[0-9]{2})(?P<minor>[0-9]{2})"
    r"(?P<serial>[0-9]{6})$"
)
MAX_STRING = 10_000


@dataclass
class CheckedProperties:
    """A write's properties split into typed column values and free-form extras."""

    columns: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def _typed(name: str, kind: str, value: Any) -> Any:
    """``value`` as the database binds a ``kind`` property; ValueError saying why not."""
    if value is None:
        return None
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {type(value).__name__}")
        if len(value) > MAX_STRING:
            raise ValueError(f"is longer than {MAX_STRING} characters")
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"must be an integer, not {value!r}")
        if abs(value) >= 2**63:
            raise ValueError("is out of the 64-bit integer range")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {value!r}")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value
    if kind == "datetime":
        if not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date-time string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if kind == "object":
        return orjson.dumps(value).decode()
    raise ValueError(f"has an unknown type {kind}")


def _check_constraints(layer: Layer, name: str, value: Any) -> str | None:
    """Why ``value`` breaks the catalog's pattern or enum for ``name`` (None: it does not)."""
    if value is None or not isinstance(value, str):
        return None
    pattern = layer.patterns.get(name)
    if pattern and not re.fullmatch(pattern, value):
        return f"{value!r} does not match {pattern}"
    allowed = layer.enums.get(name)
    if allowed and value not in allowed:
        return f"{value!r} is not one of {', '.join(allowed)}"
    return None


def _asset_code(props: dict[str, Any], problems: dict[str, str]) -> None:
    """Rule 'asset_code': the code's major+minor class is the asset's class_code (derived
    when the write leaves class_code out)."""
    code = props.get("code")
    match = ASSET_CODE.match(code) if isinstance(code, str) else None
    if not match:
        if "code" not in problems:
            problems["code"] = (
                "an asset code is 16 digits: 6-digit division, 2-digit major "
                "class, 2-digit minor class, 6-digit serial"
            )
        return
    class_code = match.group("major") + match.group("minor")
    given = props.get("class_code")
    if given is None:
        props["class_code"] = class_code
    elif given != class_code:
        problems["class_code"] = f"{given!r} does not match the class {class_code} in code {code}"


RULES: dict[str, Callable[[dict[str, Any], dict[str, str]], None]] = {
    "asset_code": _asset_code,
}


def check_properties(layer: Layer, properties: Any) -> CheckedProperties:
    """A full set of ``properties`` for ``layer`` checked and split; 422 naming every problem.

    Server-managed and read-only properties are ignored; properties the catalog does not
    list go to the free-form column (a 422 on a layer without one).
    """
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise Unprocessable("properties must be a JSON object", code="invalid_properties")
    ignored = set(layer.managed_columns) | set(layer.readonly) | {"id", "h3"}
    props = {k: v for k, v in properties.items() if k not in ignored}
    problems: dict[str, str] = {}
    for rule in layer.rules:
        RULES[rule](props, problems)
    writable = layer.writable_properties
    checked = CheckedProperties()
    for name, value in props.items():
        if name in writable:
            try:
                checked.columns[name] = _typed(name, writable[name], value)
            except ValueError as exc:
                problems.setdefault(name, str(exc))
                continue
            broken = _check_constraints(layer, name, value)
            if broken:
                problems.setdefault(name, broken)
        elif layer.extra_properties_column and name not in layer.properties:
            checked.extras[name] = value
        else:
            problems[name] = "is not a property of this layer; writable: " + ", ".join(
                sorted(writable)
            )
    for name in layer.required:
        if props.get(name) is None and name not in problems:
            problems[name] = "is required"
    if problems:
        summary = "; ".join(
            f"{k} {v}" if not v.startswith("'") else f"{k}: {v}"
            for k, v in sorted(problems.items())
        )
        raise Unprocessable(
            f"invalid properties: {summary}", code="invalid_properties", details=problems
        )
    return checked
