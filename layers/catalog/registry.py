"""The layer catalog: one description of every published layer, read by tiles, Features
and spatial queries alike.

The built-in catalog is ``layers/catalog.toml``; files named in ``CITYHEX_CATALOG``
(separated by ':') add or replace layers, so any PostGIS table can be published.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gis.errors import NotFound
from layers.db.scope import EVERYONE, Visibility
from layers.db.settings import storage_settings

BUILTIN = Path(__file__).with_name("catalog.toml")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
PropertyType = Literal["string", "integer", "number", "boolean", "datetime", "object"]

PERSONAL_KEY_PATTERN = (
    "phone|mobile|e-?mail|contact|address|id_?card|id_?no|identity|passport|plate|person"
    "|resident|reporter|householder|姓名|电话|手机|身份证|联系|住址|地址|车牌|户主"
    "|(^|[-_. ])(tel|name|owner)($|[-_. ])"
)
"""Free-form property keys named like personal data (case-insensitive search): phone
numbers, contacts, addresses, ID numbers, plates, people's names (``name``, ``*_name``).
The same text is a Python and a PostgreSQL regular expression."""
PERSONAL_KEY = re.compile(PERSONAL_KEY_PATTERN, re.IGNORECASE)
STAFF_ROLES = ["inspector", "editor", "dispatcher"]
ExtrasView = Literal["all", "impersonal", "none"]


def _identifier(value: str | None) -> str | None:
    if value is not None and not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier")
    return value


class Layer(BaseModel):
    """One published layer: where its rows live, what it exposes, who may read and edit it."""

    id: str
    title: str
    description: str = ""
    table: str
    id_column: str = "id"
    id_type: Literal["integer", "string", "h3"] = "integer"
    geometry_column: str = "geom"
    geometry_3857_column: str | None = None
    geometry_type: str = "Geometry"
    srid: int = 4326
    h3_column: str | None = None
    version_column: str | None = None
    time_column: str | None = None
    extra_properties_column: str | None = None
    properties: dict[str, PropertyType] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    public: bool = True
    read_by: list[str] = Field(default_factory=list)
    editable_by: list[str] = Field(default_factory=list)
    minzoom: int = 0
    maxzoom: int = 22
    style: str | None = None
    cluster_below: int = 0
    """Tiles of zooms below this show a point layer as clusters (a count per cell)."""
    cluster_cell_max: int = Field(32, ge=0)
    """A cluster cell (16 pixels of a tile) holding more features than this shows them as one
    cluster at any zoom, whatever the rest of the tile holds (0: only below cluster_below)."""
    tile_key: bool = False
    """Whether the table (of points) has the tile-key index on its 3857 geometry
    (layers.db.tile_keys), so tiles count and cluster its points by key range."""
    cluster_cells: str | None = None
    """A table of the layer's count and EPSG:3857 coordinate sums per zoom-17 tile-key cell
    and value of its ``count_by`` column (``cell``, the column, ``n``, ``sx``, ``sy``), kept
    by triggers: tiles of zooms ≤ 13 unfiltered or filtered by that column alone count and
    place their clusters from it (tiles.clusters)."""
    cluster_levels: str | None = None
    """A table of the layer's count and EPSG:3857 coordinate sums per tile-key cell of zooms
    18–20 and value of its ``count_by`` column (``z``, ``cell``, the column, ``n``, ``sx``,
    ``sy``), kept by triggers: tiles of zooms 14–16 unfiltered or filtered by that column
    alone count their cells and the cells around them from it (tiles.clusters)."""
    cell_counts: str | None = None
    """A table of the layer's count per H3 cell at each stored resolution and value of its
    ``count_by`` column (``res``, ``cell``, the column, ``n``), kept by triggers: unfiltered
    counts per cell (Gi*, ``/analytics/h3``) and ``_hex`` tiles unfiltered or filtered by
    that column alone read it."""
    category_column: str | None = None
    """The column that the ``category`` parameter of tiles matches (a class code)."""
    count_by: str | None = None
    """The column whose values the ``<layer>_hex`` aggregate also counts one by one."""
    editable: bool = True
    """Whether features may be written through the API at all (by editable_by and admin)."""
    updated_at_column: str | None = None
    """A column set to the time of every write."""
    updated_by_column: str | None = None
    """A column set to the writer of every write."""
    readonly: list[str] = Field(default_factory=list)
    """Properties that clients see but never write (besides version, updated_* and h3)."""
    h3_resolution: int = Field(10, ge=0, le=15)
    """The resolution of the cell computed on write into ``h3_column``."""
    h3_levels: list[int] = Field(default_factory=list)
    """Further resolutions whose cell is computed on write, each into the column
    ``<h3_column>_<res>``: the cell that contains the point (``h3.latlng_to_cell``), so counts
    at those resolutions are exact without rolling finer cells up."""
    patterns: dict[str, str] = Field(default_factory=dict)
    """Regular expressions that string properties must match on write."""
    enums: dict[str, list[str]] = Field(default_factory=dict)
    """The allowed values of string properties."""
    rules: list[str] = Field(default_factory=list)
    """Named domain rules checked on write (see layers.features.rules)."""
    department_column: str | None = None
    """The property (an integer department id) naming the department that owns a feature:
    a caller limited to departments writes only features of its departments."""
    extra_properties_read_by: list[str] = Field(default_factory=lambda: list(STAFF_ROLES))
    """The roles that read the free-form properties (``extra_properties_column``) without
    the keys named like personal data (``PERSONAL_KEY``) and without nested objects and
    lists; admin and the layer's editors read them whole, and every other role (anonymous,
    app) reads the declared properties only."""
    visible: Visibility = Field(default=EVERYONE, exclude=True)
    """Whose rows this view of a layer with a ``read_scope`` shows: set by ``for_caller``
    (the whole layer shows every row)."""
    hidden_extras: frozenset[str] = Field(default=frozenset(), exclude=True)
    """Free-form keys the impersonal view hides whole, even by filters: those found holding
    nested objects or lists (``layers.catalog.metadata.nested_extra_keys``)."""
    extras_view: ExtrasView = "all"
    """How this view of the layer shows the free-form properties: all, impersonal (without
    personal keys) or none. Set by ``for_role``; the whole layer (storage, exports) is all."""
    read_scope: dict[Literal["districts", "departments", "inspector"], str] = Field(
        default_factory=dict
    )
    """The columns that narrow reading by the caller's scope (``layers.db.scope.Visibility``):
    a district id, a department id, the user id of the inspector. A caller limited to
    districts or departments, or an inspector speaking for a user, reads only its rows, in
    features and tiles alike."""
    read_scope_ignores: list[Literal["districts", "departments", "inspector"]] = Field(
        default_factory=list
    )
    """Dimensions of a caller's scope that do not narrow this layer (the grid's cells belong
    to no department). Any other limited dimension the ``read_scope`` names no column for
    leaves every row out."""
    property_read_by: dict[str, list[str]] = Field(default_factory=dict)
    """Properties that name or identify people, each with the roles that may read it (admin
    always may). Every other role gets the layer without them: in features, queryables,
    filters, spatial queries, history and tiles."""

    @field_validator(
        "id",
        "table",
        "id_column",
        "geometry_column",
        "geometry_3857_column",
        "h3_column",
        "version_column",
        "time_column",
        "extra_properties_column",
        "category_column",
        "count_by",
        "updated_at_column",
        "updated_by_column",
        "department_column",
        "cluster_cells",
        "cluster_levels",
        "cell_counts",
    )
    @classmethod
    def _plain_identifier(cls, value: str | None) -> str | None:
        return _identifier(value)

    @model_validator(mode="after")
    def _tile_key_needs_3857_points(self) -> Layer:
        if self.tile_key and not (self.geometry_3857_column and self.geometry_type == "Point"):
            raise ValueError(
                f"layer {self.id}: tile_key needs geometry_type Point and geometry_3857_column"
            )
        return self

    @model_validator(mode="after")
    def _levels_need_a_cell_column(self) -> Layer:
        if self.h3_levels and not self.h3_column:
            raise ValueError(f"layer {self.id}: h3_levels needs h3_column")
        if any(not 0 <= r <= 15 for r in self.h3_levels):
            raise ValueError(f"layer {self.id}: h3_levels are resolutions 0–15")
        return self

    @model_validator(mode="after")
    def _department_column_is_an_integer_property(self) -> Layer:
        column = self.department_column
        if column is not None and self.properties.get(column) != "integer":
            raise ValueError(f"layer {self.id}: department_column must be an integer property")
        return self

    @model_validator(mode="after")
    def _restricted_properties_are_plain(self) -> Layer:
        """A restricted property is a catalog property, and no column the layer is
        filtered, grouped or found by (those would tell its values to every reader); the
        roles that edit the layer read it (a write answers with the whole feature)."""
        keys = (self.id_column, self.time_column, self.category_column, self.count_by)
        for name, roles in self.property_read_by.items():
            if name not in self.properties or name in keys:
                raise ValueError(
                    f"layer {self.id}: property_read_by names {name!r}, which is not a "
                    "property or is the layer's id, time, category or count_by column"
                )
            if not set(self.editable_by) <= set(roles):
                raise ValueError(
                    f"layer {self.id}: the editors {self.editable_by} must read {name!r}"
                )
        return self

    @field_validator("read_scope")
    @classmethod
    def _plain_scope_columns(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            _identifier(name)
        return value

    @field_validator("properties")
    @classmethod
    def _plain_property_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _identifier(name)
        return value

    @property
    def is_point(self) -> bool:
        """Whether every feature is a (multi)point."""
        return self.geometry_type.lower() in ("point", "multipoint")

    def can_read(self, role: str) -> bool:
        """Whether ``role`` may read this layer."""
        return self.public or role == "admin" or role in self.read_by or role in self.editable_by

    def may_read_property(self, role: str, name: str) -> bool:
        """Whether ``role`` may read property ``name`` (of a layer it may read)."""
        roles = self.property_read_by.get(name)
        return roles is None or role == "admin" or role in roles

    def extras_view_for(self, role: str) -> ExtrasView:
        """How ``role`` sees the free-form properties (see ``extra_properties_read_by``)."""
        if role == "admin" or role in self.editable_by:
            return "all"
        return "impersonal" if role in self.extra_properties_read_by else "none"

    def shows_extra(self, key: str, value: object = None) -> bool:
        """Whether this view of the layer shows (and filters by) free-form key ``key`` (with
        ``value``: the impersonal view shows no nested object or list, which could hold
        personal data under any key)."""
        if not self.extra_properties_column or self.extras_view == "none":
            return False
        if self.extras_view == "all":
            return True
        if key in self.hidden_extras or PERSONAL_KEY.search(key) is not None:
            return False
        return not isinstance(value, dict | list)

    def visibility(self, visible: Visibility) -> Visibility:
        """The part of a caller's ``visible`` that narrows this layer: none without a read
        scope, and without the dimensions it ignores (``read_scope_ignores``)."""
        if not self.read_scope:
            return EVERYONE
        return visible.without(self.read_scope_ignores)

    def for_caller(self, role: str, visible: Visibility) -> Layer:
        """The layer as a caller with ``role`` sees it (``for_role``), showing only the rows
        ``visible`` lets it read when the layer has a read scope."""
        view = self.for_role(role)
        narrowed = self.visibility(visible)
        if not narrowed.limited:
            return view
        return view.model_copy(update={"visible": narrowed})

    def for_role(self, role: str) -> Layer:
        """The layer as ``role`` sees it: without the properties it may not read (declared
        ones it is not allowed, free-form ones by ``extras_view_for``)."""
        hidden = {n for n in self.property_read_by if not self.may_read_property(role, n)}
        view = self.extras_view_for(role) if self.extra_properties_column else "all"
        if not hidden and view == "all":
            return self
        shown = {k: v for k, v in self.properties.items() if k not in hidden}
        return self.model_copy(update={"properties": shown, "extras_view": view})

    @property
    def withheld(self) -> frozenset[str]:
        """The restricted properties this view of the layer leaves out (see for_role)."""
        return frozenset(self.property_read_by) - self.properties.keys()

    @property
    def shows_restricted(self) -> bool:
        """Whether this view of the layer shows a property not every role may read."""
        return not self.property_read_by.keys() <= self.withheld

    def can_edit(self, role: str) -> bool:
        """Whether ``role`` may create, change or delete features."""
        return self.editable and (role == "admin" or role in self.editable_by)

    @property
    def cell_columns(self) -> dict[int, str]:
        """The stored cell columns by resolution: ``h3_column`` at ``h3_resolution`` and one
        ``<h3_column>_<res>`` per resolution of ``h3_levels``; empty without ``h3_column``."""
        if not self.h3_column:
            return {}
        levels = {r: f"{self.h3_column}_{r}" for r in self.h3_levels}
        return levels | {self.h3_resolution: self.h3_column}

    @property
    def managed_columns(self) -> list[str]:
        """Columns the server sets on write: id, version, updated_*, the cells, 3857 copy."""
        names = [
            self.id_column,
            self.version_column,
            self.updated_at_column,
            self.updated_by_column,
            *self.cell_columns.values(),
            self.geometry_3857_column,
        ]
        return [n for n in names if n]

    @property
    def writable_properties(self) -> dict[str, PropertyType]:
        """The catalog properties a client may write, with their types."""
        skip = set(self.managed_columns) | set(self.readonly)
        return {k: v for k, v in self.properties.items() if k not in skip}


class Catalog:
    """The layers by id."""

    def __init__(self, layers: dict[str, Layer]) -> None:
        self.layers = layers
        self._views: dict[str, Catalog] = {}

    def for_role(self, role: str) -> Catalog:
        """The catalog as ``role`` sees it: each layer without the properties the role may
        not read (made once per role)."""
        view = self._views.get(role)
        if view is None:
            view = Catalog({k: layer.for_role(role) for k, layer in self.layers.items()})
            self._views[role] = view
        return view

    def get(self, layer_id: str) -> Layer:
        """The layer ``layer_id``; NotFound naming the known layers otherwise."""
        try:
            return self.layers[layer_id]
        except KeyError:
            known = ", ".join(sorted(self.layers))
            raise NotFound(
                f"no layer {layer_id!r}; known layers: {known}", code="unknown_layer"
            ) from None

    def __iter__(self):
        return iter(self.layers.values())

    def __contains__(self, layer_id: str) -> bool:
        return layer_id in self.layers


def read_catalog_file(path: Path) -> dict[str, Layer]:
    """The layers described in one TOML file."""
    data = tomllib.loads(Path(path).read_text())
    return {name: Layer(id=name, **spec) for name, spec in data.get("layers", {}).items()}


def created_layers_dir() -> Path:
    """Where ``cityhex import --create`` writes the catalog entry of each layer it makes."""
    return storage_settings().home / "catalog.d"


def load_catalog() -> Catalog:
    """The built-in catalog, the layers made by imports, and the files in CITYHEX_CATALOG.
    A layer that an import publishes, in this process or any other, is seen from the next
    call on: the catalog is read again whenever catalog.d changes."""
    made = created_layers_dir()
    try:
        stamp = made.stat().st_mtime_ns
    except FileNotFoundError:
        stamp = 0
    return _read_catalog(made, stamp, os.environ.get("CITYHEX_CATALOG", ""))


@lru_cache(maxsize=4)
def _read_catalog(made: Path, stamp: int, extra: str) -> Catalog:
    layers = read_catalog_file(BUILTIN)
    for entry in sorted(made.glob("*.toml")):
        layers.update(read_catalog_file(entry))
    for path in filter(None, extra.split(":")):
        layers.update(read_catalog_file(Path(path)))
    return Catalog(layers)
