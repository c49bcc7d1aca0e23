"""The rule district rows obey: a 6-digit administrative division code (and a name, which
the table itself requires). Their boundaries become MultiPolygons on the way in."""

from __future__ import annotations

import re

from etl.imports.property_types import Coerced
from etl.imports.report import Problem
from etl.imports.source_table import SourceTable

DIVISION_CODE = re.compile(r"^[0-9]{6}$")


def district_problems(columns: dict[str, Coerced], table: SourceTable) -> list[Problem]:
    """A problem for every district whose code is not a 6-digit division code."""
    code = columns.get("code")
    if code is None:
        return []
    return [
        Problem(table.label(i), f"code {value!r} is not a 6-digit division code")
        for i, value in enumerate(code.values.tolist())
        if value is not None and not DIVISION_CODE.match(value)
    ]
