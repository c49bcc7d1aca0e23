"""The city grid: lookups, cells, assignments, coverage, territories, category routing."""

from __future__ import annotations

from pydantic import Field

from spatial_api.schemas import Coded, Named, Number, Schema


class Staff(Schema):
    """A member of staff who answers for a cell: their id, and their name for the roles
    that read names (not app keys)."""

    id: int
    name: str | None = None


class SupervisorArea(Schema):
    """A cell's supervisor area: a district (with its supervisor) or a coarser cell."""

    area: str
    kind: str
    name: str | None = None
    supervisor: Staff | None = None
    res: int | None = None


class Department(Schema):
    """A department: id, code and name."""

    id: int | None
    code: str | None
    name: str | None


class GridLookup(Schema):
    """The cell at a point and who answers for it (for a category: its department)."""

    cell: str
    res: int
    district: Coded | None
    inspector: Staff | None
    supervisor: SupervisorArea | None
    category: str | None = None
    department: Department | None = None
    outside_scope: bool | None = None
    """True when the cell lies outside the caller's districts (or is another inspector's,
    for an inspector key): then inspector and supervisor are withheld."""


class CellRow(Schema):
    """One cell of a listing."""

    cell: str
    res: int
    district: str | None
    inspector_id: int | None
    supervisor: str | None
    area_m2: Number | None


class CellPage(Schema):
    """One page of cells, and how many match in all."""

    total: int
    limit: int
    offset: int
    cells: list[CellRow]


class Holder(Schema):
    """Who holds a cell at one point of its history."""

    inspector_id: int | None
    supervisor: str | None


class AssignmentChange(Schema):
    """One change of a cell's assignment."""

    id: int
    from_: Holder = Field(alias="from")
    to: Holder
    actor: str | None
    at: str
    note: str | None


class Assignment(Schema):
    """A cell's inspector and supervisor area, and its changes, newest first."""

    cell: str
    inspector: Named | None
    supervisor: str | None
    history: list[AssignmentChange]


class Reassignment(Assignment):
    """A cell's assignment after a change, and whether anything changed."""

    changed: bool


class BulkAssignment(Schema):
    """How many cells changed (listed) and how many already had the asked-for values."""

    changed: int
    unchanged: int
    cells: list[str]


class InspectorLoad(Schema):
    """An inspector's cells and workload."""

    id: int | None
    name: str | None
    cells: int
    workload: Number


class Coverage(Schema):
    """Cells covered and unassigned, each inspector's workload and the balance."""

    weight: str
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    total_cells: int
    assigned_cells: int
    unassigned_cells: int
    unassigned_workload: Number
    unassigned: list[str]
    unassigned_truncated: bool
    inspectors: list[InspectorLoad]
    balance: Number | None


class TerritoryHolder(Schema):
    """The inspector of a territory (``new``: made when the plan is applied)."""

    id: int | None
    name: str | None
    new: bool


class Territory(Schema):
    """One inspector's territory: its cells and workload."""

    inspector: TerritoryHolder
    cells: int
    workload: Number
    cell_list: list[str] | None = None


class PartitionPlan(Schema):
    """A territory plan: balance, connectivity, moves and each territory."""

    weight: str
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    inspectors: int
    keep_current: bool
    applied: bool
    tolerance: Number
    balance: Number
    balanced: bool
    connected: bool
    moved: int
    seconds: Number
    territories: list[Territory]
    changed: int | None = None


class BuildReport(Schema):
    """What a grid build did: cells added and dropped, assignments kept."""

    res: int
    cells: int
    added_count: int
    dropped_count: int
    kept_assignments: int
    added: list[str]
    dropped: list[str]
    truncated: bool
    seconds: Number


class RoutedDepartment(Department):
    """A department routing a category, ``by_district`` when the district overrides it."""

    by_district: bool


class CategoryRoute(Schema):
    """A category routed to a department of its own in a district."""

    category: str
    category_name: str | None
    district: Coded
    department: Department
    updated_at: str
    updated_by: str | None


class CategoryRouting(Schema):
    """The department now handling a category in a district."""

    category: str
    district: str
    department: RoutedDepartment
