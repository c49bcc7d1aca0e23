"""The landing page, health, styles and TileJSON."""

from __future__ import annotations

from spatial_api.schemas import Number, Schema


class Link(Schema):
    """A link to something this server offers."""

    rel: str
    href: str
    title: str


class Landing(Schema):
    """What this server is and the links to everything it offers."""

    title: str
    description: str
    links: list[Link]


class DatabaseVersions(Schema):
    """The versions the database runs."""

    postgresql: str
    postgis: str


class Health(Schema):
    """The server is up and its database answers."""

    status: str
    database: DatabaseVersions


class StyleEntry(Schema):
    """One map style: its name, title and URL."""

    name: str
    title: str
    url: str


class StyleList(Schema):
    """The map styles this server offers."""

    styles: list[StyleEntry]


class VectorLayer(Schema):
    """One MVT layer of a tile: its id, zooms and attribute types."""

    id: str
    description: str
    minzoom: int
    maxzoom: int
    fields: dict[str, str]


class TileJSON(Schema):
    """A TileJSON 3.0.0 document."""

    tilejson: str
    name: str
    description: str
    scheme: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: list[Number]
    center: list[Number]
    vector_layers: list[VectorLayer]
