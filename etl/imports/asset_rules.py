"""The rules every asset (部件) row obeys, checked on whole columns before anything is written.

A code is 16 digits: 6-digit administrative division, 2-digit major and 2-digit minor class
(``class_code``), 6-digit serial. A row without a code gets the next free serial of its
division and class (the division from ``--division`` or the district the asset stands in);
a row without a class code takes it from its code; the state defaults to intact.
"""

from __future__ import annotations

import re

import numpy as np
import psycopg
import shapely

from etl.imports.property_types import Coerced
from etl.imports.report import Problem, refuse
from etl.imports.source_table import SourceTable
from gis.errors import Unprocessable
from layers.db.models import ASSET_STATES

CODE = re.compile(r"^[0-9]{16}$")
CLASS_CODE = re.compile(r"^[0-9]{4}$")
MAX_SERIAL = 999_999
NEXT_SERIAL_SQL = """
SELECT p.prefix, coalesce(max(right(a.code, 6)::int), 0)
FROM unnest(%s::text[]) AS p(prefix)
LEFT JOIN assets a ON a.code LIKE p.prefix || '%%'
GROUP BY p.prefix
"""
# serialises imports that hand out asset serials, so two never pick the same one
CODE_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('cityhex.asset_codes'))"


def string_column(values: list[str | None] | np.ndarray) -> Coerced:
    """A string column from values (None for missing)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return Coerced("string", array, np.equal(array, None))


def apply_asset_rules(
    conn: psycopg.Connection,
    columns: dict[str, Coerced],
    table: SourceTable,
    lon: np.ndarray,
    lat: np.ndarray,
    division: str | None,
) -> list[Problem]:
    """Fill codes, class codes and states the rules can give; the problems of every row
    that breaks a rule (codes, class codes, kinds, states)."""
    n = len(table)
    code = columns.get("code") or string_column([None] * n)
    klass = columns.get("class_code") or string_column([None] * n)
    problems: list[Problem] = []
    codes, classes = code.values.copy(), klass.values.copy()
    derive = np.flatnonzero(klass.null & ~code.null)
    classes[derive] = [str(c)[6:10] for c in codes[derive].tolist()]
    missing = np.flatnonzero(code.null)
    if len(missing):
        problems += _class_problems(classes, missing, table)
        if not problems:
            divisions = _divisions(conn, lon[missing], lat[missing], division, table, missing)
            codes[missing] = new_codes(conn, divisions, classes[missing].astype(str))
    problems += _code_problems(codes, classes, table)
    columns["code"] = string_column(codes)
    columns["class_code"] = string_column(classes)
    problems += _state_problems(columns, table)
    return problems


def _code_problems(codes: np.ndarray, classes: np.ndarray, table: SourceTable) -> list[Problem]:
    """Codes that are not 16 digits, and class codes that differ from their code's digits."""
    texts = codes.tolist()
    present = [c for c in texts if c is not None]
    if set(map(len, present)) <= {16} and ("".join(present).isdigit() or not present):
        bad: list[int] = []
    else:
        bad = [i for i, c in enumerate(texts) if c is not None and not CODE.match(c)]
    problems = [
        Problem(
            table.label(i),
            f"code {texts[i]!r} is not 16 digits (6-digit division, 4-digit class, 6-digit serial)",
        )
        for i in bad
    ]
    derived = np.array([None if c is None else c[6:10] for c in texts], dtype=object)
    differ = np.not_equal(classes, derived) & np.not_equal(classes, None)
    differ &= np.not_equal(derived, None)
    differ[bad] = False
    problems += [
        Problem(
            table.label(i),
            f"class_code {classes[i]!r} does not match the class digits "
            f"of code {texts[i]!r} ({derived[i]})",
        )
        for i in np.flatnonzero(differ).tolist()
    ]
    return problems


def _class_problems(classes: np.ndarray, rows: np.ndarray, table: SourceTable) -> list[Problem]:
    return [
        Problem(table.label(i), "no code, and no 4-digit class_code to make one from")
        for i in rows.tolist()
        if classes[i] is None or not CLASS_CODE.match(str(classes[i]))
    ]


def _state_problems(columns: dict[str, Coerced], table: SourceTable) -> list[Problem]:
    state = columns.get("state")
    if state is None:
        return []
    values = state.values.copy()
    values[state.null] = "intact"
    columns["state"] = string_column(values)
    allowed = ", ".join(ASSET_STATES)
    wrong = np.flatnonzero(~np.isin(values, np.array(ASSET_STATES, dtype=object)))
    return [
        Problem(table.label(i), f"state {values[i]!r} is not one of {allowed}")
        for i in wrong.tolist()
    ]


def _divisions(
    conn: psycopg.Connection,
    lon: np.ndarray,
    lat: np.ndarray,
    division: str | None,
    table: SourceTable,
    rows: np.ndarray,
) -> list[str]:
    """The division code of each row: ``division``, else the district it stands in."""
    if division:
        return [division] * len(lon)
    districts = conn.execute("SELECT code, ST_AsBinary(geom) FROM districts").fetchall()
    found = np.full(len(lon), None, dtype=object)
    if districts:
        shapes = shapely.from_wkb([bytes(g) for _, g in districts])
        where, which = shapely.STRtree(shapes).query(shapely.points(lon, lat), predicate="within")
        found[where] = np.array([c for c, _ in districts], dtype=object)[which]
    outside = np.flatnonzero(found == None)  # noqa: E711 (element-wise)
    if len(outside):
        problems = [
            Problem(table.label(rows[i]), "has no code and stands in no district")
            for i in outside.tolist()
        ]
        raise refuse(
            "assets without a code need a division: give --division CODE (6 digits) "
            "or import the districts first",
            problems,
            "missing_division",
        )
    return found.tolist()


def new_codes(conn: psycopg.Connection, divisions: list[str], classes: np.ndarray) -> np.ndarray:
    """Fresh 16-digit codes: the next free serials of each division and class, in row order."""
    conn.execute(CODE_LOCK_SQL)
    prefixes = np.array([d + c for d, c in zip(divisions, classes.tolist(), strict=True)])
    unique = sorted(set(prefixes.tolist()))
    last = dict(conn.execute(NEXT_SERIAL_SQL, (unique,)).fetchall())
    out = np.empty(len(prefixes), dtype=object)
    for prefix in unique:
        rows = np.flatnonzero(prefixes == prefix)
        start = last[prefix] + 1
        if start + len(rows) - 1 > MAX_SERIAL:
            raise Unprocessable(
                f"division and class {prefix} have no serials left for {len(rows)} more assets",
                code="serials_exhausted",
            )
        out[rows] = [f"{prefix}{s:06d}" for s in range(start, start + len(rows))]
    return out
