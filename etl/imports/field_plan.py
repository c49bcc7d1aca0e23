"""Where each source field goes: its own typed column (a catalog property of the layer),
the layer's jsonb column of extra properties, or nowhere (said in the report)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from etl.imports.target_table import TargetTable

UNSAFE = re.compile(r"[^a-z0-9_]")
MAX_IDENTIFIER = 63


def launder(name: str) -> str | None:
    """The plain SQL column name for a field name (lower case, '_' for other characters);
    None for names that are not ASCII (they stay as they are, in the extra properties)."""
    if not name.isascii() or not name.strip():
        return None
    text = UNSAFE.sub("_", name.strip().lower())
    if text[0].isdigit():
        text = f"f_{text}"
    return text[:MAX_IDENTIFIER]


@dataclass
class FieldPlan:
    """Source fields by destination."""

    typed: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def plan_fields(fields: list[str], target: TargetTable, key: str | None) -> FieldPlan:
    """Send each field to the typed property of the same (laundered) name, else to the extra
    properties, else drop it; the id column is filled only when it is the upsert key."""
    typed_columns = set(target.typed_properties())
    id_column = target.layer.id_column
    if key == id_column:
        typed_columns.add(id_column)
    blocked = target.managed | {id_column}
    plan = FieldPlan()
    for name in fields:
        column = name if name in typed_columns else launder(name)
        if column in typed_columns and column not in plan.typed.values():
            plan.typed[name] = column
        elif name in blocked or column in blocked:
            plan.dropped.append(name)
        elif target.layer.extra_properties_column:
            plan.extra.append(name)
        else:
            plan.dropped.append(name)
    return plan
