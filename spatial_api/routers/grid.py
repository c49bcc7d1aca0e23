"""The city grid over HTTP: look up a point, list and read cells, assign them, check
coverage, balance territories, build the grid, and route categories per district.

Roles: lookup and reading cells — app, inspector, editor, dispatcher (ids, and names for
all but app keys; never phone numbers); a cell's assignment history — inspector, editor, dispatcher;
assignment changes, coverage, territories and category routing changes — dispatcher;
building the grid — admin only. Admin may do everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool, StrictInt

from gis.analytics.grid import parse_bbox
from gis.boundary import boundary_from_bbox, boundary_from_geojson
from gis.errors import BadRequest
from gis.hexgrid import DEFAULT_RES, parse_cell
from layers.db.engine import plain_url
from layers.grid.assignments import Change, assign, assignment_of, cells_in_polygon
from layers.grid.build import build_from
from layers.grid.cells import CellFilter, cell_feature, check_cell_visible, list_cells
from layers.grid.coverage import coverage
from layers.grid.lookup import lookup, may_read_names, open_lookup_pool
from layers.grid.territories import TerritoryRequest, plan_territories
from layers.grid.weights import parse_weight
from layers.incidents.category_departments import clear_override, list_overrides, set_override
from spatial_api.deps import (
    Admin,
    Caller,
    Dispatcher,
    Engine,
    GridLookupPool,
    HistoryReader,
    ReadConnection,
    Reader,
)
from spatial_api.openapi import errors
from spatial_api.params import INT_MAX, Offset, UserId
from spatial_api.responses import json_response
from spatial_api.schemas.grid import (
    Assignment,
    BuildReport,
    BulkAssignment,
    CategoryRoute,
    CategoryRouting,
    CellPage,
    Coverage,
    GridLookup,
    PartitionPlan,
    Reassignment,
)
from tiles.overview import MAX_SIZE, MIN_SIZE, overview


@asynccontextmanager
async def lookup_pool(app: FastAPI) -> AsyncIterator[None]:
    """A dedicated asyncpg pool for /grid/lookup, for the life of the process."""
    url = plain_url(app.state.engine.url.render_as_string(hide_password=False))
    app.state.grid_lookup_pool = await open_lookup_pool(url)
    try:
        yield
    finally:
        await app.state.grid_lookup_pool.close()


router = APIRouter(tags=["grid"], lifespan=lookup_pool)

From = Annotated[
    datetime | None, Query(alias="from", description="Start (inclusive) of the period, ISO 8601")
]
To = Annotated[datetime | None, Query(alias="to", description="End (exclusive), ISO 8601")]
InspectorId = Annotated[StrictInt, Field(ge=1, le=INT_MAX)]
"""An inspector (user id) in a body."""
WeightName = Annotated[
    str,
    Query(
        description="Workload measure: area, cells, assets, incidents (over from/to) or "
        "property:NAME (a numeric cell property such as population)"
    ),
]


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    return boundary_from_bbox(text).bounds if text else None


@router.get(
    "/grid/lookup",
    summary="The grid cell at a point and who answers for it",
    response_class=Response,
    responses={200: {"model": GridLookup}, **errors(404)},  # hot path: orjson, unvalidated
)
async def grid_lookup(
    pool: GridLookupPool,
    principal: Reader,
    lon: Annotated[float, Query(description="Longitude (EPSG:4326)")],
    lat: Annotated[float, Query(description="Latitude (EPSG:4326)")],
    category: Annotated[
        str | None, Query(description="A 4-digit incident category: adds its department")
    ] = None,
) -> Response:
    """The cell (hex string), its resolution, district, inspector, supervisor area (people by
    id, and by name for inspector, editor, dispatcher and admin keys) and, for a category,
    the department that handles it there. A cell outside the caller's districts (or, for an
    inspector key, another inspector's) comes without inspector and supervisor, marked
    ``outside_scope``. 404 when the point is outside the grid; 400 for a bad lon/lat or an
    unknown category."""
    names = may_read_names(principal.role)
    answer = await lookup(pool, lon, lat, category, names=names, visible=principal.visibility)
    return json_response(answer)


@router.get(
    "/grid/overview.svg",
    summary="A first view of an area as SVG: base layers and the caller's cells",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The picture"},
        204: {"description": "No bbox, and the caller has no cells: nothing to show"},
        **errors(400),
    },
)
async def grid_overview(
    conn: ReadConnection,
    caller: Caller,
    width: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE, description="Pixels")],
    height: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE, description="Pixels")],
    bbox: Annotated[
        str | None,
        Query(description="W,S,E,N in lon/lat (at most 0.25° each way); default: my cells"),
    ] = None,
) -> Response:
    """The area (``bbox``, or the caller's own cells) fitted into width × height pixels
    with 20 pixels around it, drawn by PostGIS: the city style's base layers the caller's
    role reads whole, and the cells of the inspector the key speaks for outlined (each path's
    ``data-cell``). The picture's bounds are in ``data-bounds`` and ``X-Bounds`` (W,S,E,N):
    a MapLibre map opened on them shows the same view. Never shared between callers
    (``Cache-Control: private``). 204 without a bbox for a caller with no cells (the web
    app's bootstrap asks before it knows the caller's role); 400 for a bad size or bbox."""
    picture = await overview(
        conn,
        role=caller.role,
        visible=caller.visibility,
        inspector_id=caller.inspector_id,
        width=width,
        height=height,
        bbox=parse_bbox(bbox) if bbox is not None else None,
    )
    if picture is None:
        return Response(status_code=204, headers={"Cache-Control": "private, no-cache"})
    headers = {
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization",
        "X-Bounds": ",".join(f"{v:.7f}" for v in picture.bounds),
    }
    return Response(picture.svg, media_type="image/svg+xml", headers=headers)


@router.get("/grid/cells", summary="Grid cells, filtered and paged", response_model=CellPage)
async def grid_cells(
    engine: Engine,
    principal: Reader,
    district: Annotated[str | None, Query(description="District code")] = None,
    inspector_id: UserId = None,
    supervisor: Annotated[str | None, Query(description="Supervisor area")] = None,
    unassigned: Annotated[bool, Query(description="Only cells without inspector")] = False,
    bbox: Annotated[str | None, Query(description="W,S,E,N in lon/lat")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """One page of cells in cell order with the total that match: of the caller's
    districts only, and for an inspector key, of that inspector only (403 for another's)."""
    asked = CellFilter(district, inspector_id, supervisor, unassigned, _bbox(bbox))
    where = asked.within(principal.visibility)
    async with engine.connect() as conn:
        return await list_cells(conn, where, limit, offset)


@router.get("/grid/cells/{cell}", summary="One grid cell as a GeoJSON Feature")
async def grid_cell(cell: str, engine: Engine, principal: Reader) -> Response:
    """The cell's polygon, district, inspector (by id, and by name for inspector, editor,
    dispatcher and admin keys), supervisor area, area and properties; 400 for a malformed
    cell, 404 for a cell not in the grid, 403 for one outside the caller's districts
    (``out_of_scope``) or, for an inspector key, another inspector's (``not_your_cell``)."""
    h3cell = parse_cell(cell)
    names = may_read_names(principal.role)
    async with engine.connect() as conn:
        feature = await cell_feature(conn, h3cell, names=names, visible=principal.visibility)
    return json_response(feature)


@router.get(
    "/grid/cells/{cell}/assignment",
    summary="A cell's assignment and its history",
    response_model=Assignment,
)
async def get_assignment(
    cell: str,
    engine: Engine,
    principal: HistoryReader,
    limit: Annotated[int, Query(ge=1, le=1000, description="History entries")] = 100,
) -> dict[str, Any]:
    """The cell's inspector and supervisor area, and its changes (who, when, from, to),
    newest first; 403 for a cell outside the caller's districts or, for an inspector key,
    another inspector's (as for the cell itself)."""
    h3cell = parse_cell(cell)
    async with engine.connect() as conn:
        await check_cell_visible(conn, h3cell, principal.visibility)
        return await assignment_of(conn, h3cell, limit)


class AssignmentBody(BaseModel):
    """What to set: ``inspector_id`` (null frees the cell), ``supervisor`` (a district
    code or a coarser cell holding the cell; null clears it), or both; and a note."""

    model_config = {"extra": "forbid"}

    inspector_id: InspectorId | None = None
    supervisor: str | None = None
    note: str | None = Field(None, max_length=2000)

    def change(self) -> Change:
        """The change this body asks for."""
        given = self.model_fields_set
        return Change(
            set_inspector="inspector_id" in given,
            inspector_id=self.inspector_id,
            set_supervisor="supervisor" in given,
            supervisor=self.supervisor,
            note=self.note,
        )


@router.put(
    "/grid/cells/{cell}/assignment",
    summary="Assign a cell",
    response_model=Reassignment,
    responses=errors(422),
)
async def put_assignment(
    cell: str, body: AssignmentBody, engine: Engine, principal: Dispatcher
) -> dict[str, Any]:
    """Set the cell's inspector and/or supervisor area; the change goes into the history
    and the grid tiles refresh. Answers the cell's assignment after the change."""
    h3cell = parse_cell(cell)
    async with engine.begin() as conn:
        await assignment_of(conn, h3cell, 1)
        result = await assign(conn, [h3cell], body.change(), principal.actor, principal.scope)
        current = await assignment_of(conn, h3cell)
    return {**current, "changed": bool(result.changed)}


class BulkAssignmentBody(AssignmentBody):
    """An assignment of many cells: a list of cells, or a polygon (GeoJSON geometry, in
    ``src_crs``, default EPSG:4326) whose cells (by their centre) are assigned."""

    cells: list[str] | None = Field(None, max_length=1_000_000)
    polygon: dict[str, Any] | None = None
    src_crs: str | None = None


@router.post(
    "/grid/assignments",
    summary="Assign many cells: a list or a polygon",
    response_model=BulkAssignment,
    responses=errors(404, 422),
)
async def bulk_assignment(
    body: BulkAssignmentBody, engine: Engine, principal: Dispatcher
) -> dict[str, Any]:
    """Give every listed cell (or every cell centred in the polygon) the inspector and/or
    supervisor area; one history entry per changed cell. 422 names cells not in the grid."""
    if (body.cells is None) == (body.polygon is None):
        raise BadRequest("give either cells or polygon", code="invalid_selection")
    area = boundary_from_geojson(body.polygon, body.src_crs) if body.polygon else None
    async with engine.begin() as conn:
        cells = (
            [parse_cell(c) for c in body.cells or []]
            if area is None
            else await cells_in_polygon(conn, area)
        )
        result = await assign(conn, cells, body.change(), principal.actor, principal.scope)
    return result.as_json()


@router.get(
    "/grid/coverage",
    summary="Cells covered, unassigned cells, workload balance",
    response_model=Coverage,
    response_model_exclude_unset=True,
    responses=errors(422),
)
async def grid_coverage(
    engine: Engine,
    principal: Dispatcher,
    weight: WeightName = "cells",
    since: From = None,
    until: To = None,
    limit: Annotated[int, Query(ge=0, le=100_000, description="Unassigned cells listed")] = 1000,
) -> dict[str, Any]:
    """Total and unassigned cells (listed), each inspector's cells and workload, and the
    balance (max/mean of the workloads); over the caller's districts only."""
    measure = parse_weight(weight, since, until)
    async with engine.connect() as conn:
        return await coverage(conn, measure, limit, principal.scope.districts)


class PartitionBody(BaseModel):
    """A territory split: ``inspectors`` is N (existing inspectors holding most cells
    first, new ones made on apply) or a list of inspector ids."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    inspectors: StrictInt | list[InspectorId]
    weight: str = "cells"
    since: datetime | None = Field(None, alias="from")
    until: datetime | None = Field(None, alias="to")
    keep_current: StrictBool = False
    apply: StrictBool = False
    tolerance: float = 1.10
    include_cells: StrictBool | None = None

    def request(self) -> TerritoryRequest:
        """The layers-level request."""
        return TerritoryRequest(
            inspectors=self.inspectors,
            weight=parse_weight(self.weight, self.since, self.until),
            keep_current=self.keep_current,
            apply=self.apply,
            tolerance=self.tolerance,
            include_cells=not self.apply if self.include_cells is None else self.include_cells,
        )


@router.post(
    "/grid/partition",
    summary="Balanced connected territories for the inspectors",
    response_model=PartitionPlan,
    response_model_exclude_unset=True,
    responses=errors(422),
)
async def grid_partition(
    body: PartitionBody, engine: Engine, principal: Dispatcher
) -> dict[str, Any]:
    """Split the grid into one connected territory per inspector with balanced workload.
    A dry run (default) returns the plan with each territory's cells; ``"apply": true``
    writes it, each change in the history."""
    territory_request = body.request()
    async with engine.begin() as conn:
        plan = await plan_territories(conn, territory_request, principal.actor, principal.scope)
    return plan


class BuildBody(BaseModel):
    """Where to build the grid: a GeoJSON boundary (in ``src_crs``, default EPSG:4326), a
    bbox 'W,S,E,N', or the districts table; and the H3 resolution."""

    model_config = {"extra": "forbid"}

    boundary: dict[str, Any] | None = None
    src_crs: str | None = None
    bbox: str | None = None
    districts: StrictBool = False
    res: int = Field(DEFAULT_RES, ge=0, le=15)


@router.post(
    "/grid/build",
    summary="Build or rebuild the grid (admin)",
    response_model=BuildReport,
    responses=errors(422),
)
async def grid_build(body: BuildBody, engine: Engine, principal: Admin) -> dict[str, Any]:
    """Cover the boundary with cells at ``res``, keeping the assignments of cells that
    stay; reports the cells added and dropped."""
    sources = [body.boundary is not None, body.bbox is not None, body.districts]
    if sum(sources) != 1:
        raise BadRequest("give exactly one of boundary, bbox or districts", code="invalid_source")
    if body.boundary is not None:
        area = boundary_from_geojson(body.boundary, body.src_crs)
    else:
        area = boundary_from_bbox(body.bbox) if body.bbox else None
    url = plain_url(engine.url.render_as_string(hide_password=False))
    report = await asyncio.to_thread(build_from, url, area, body.res, principal.actor)
    return report.as_json()


@router.get(
    "/grid/category-departments",
    summary="Per-district departments of categories",
    response_model=list[CategoryRoute],
)
async def category_departments(engine: Engine, _: Reader) -> list[dict[str, Any]]:
    """Every district that routes a category to a department other than the category's."""
    async with engine.connect() as conn:
        return await list_overrides(conn)


class DepartmentBody(BaseModel):
    """The department (its code) to handle the category in the district."""

    model_config = {"extra": "forbid"}

    department: str


@router.put(
    "/grid/category-departments/{category}/{district}",
    summary="Route a category to a department in one district",
    response_model=CategoryRouting,
    responses=errors(422),
)
async def put_category_department(
    category: str, district: str, body: DepartmentBody, engine: Engine, principal: Dispatcher
) -> dict[str, Any]:
    """From now on the department handles the category in the district."""
    async with engine.begin() as conn:
        department = await set_override(
            conn, category, district, body.department, principal.actor, principal.scope
        )
    return {"category": category, "district": district, "department": department}


@router.delete(
    "/grid/category-departments/{category}/{district}",
    status_code=204,
    summary="Route a category in a district back to the category's own department",
)
async def delete_category_department(
    category: str, district: str, engine: Engine, principal: Dispatcher
) -> Response:
    """The district no longer has a department of its own for the category."""
    async with engine.begin() as conn:
        await clear_override(conn, category, district, principal.scope)
    return Response(status_code=204)
