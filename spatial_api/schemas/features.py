"""OGC API Features discovery documents and feature history."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from spatial_api.schemas import Number, Schema


class Conformance(Schema):
    """The conformance classes this server implements."""

    conformsTo: list[str]


class TypedLink(Schema):
    """An OGC link: relation, media type, target and title."""

    rel: str
    type: str
    href: str
    title: str


class SpatialExtent(Schema):
    """A collection's bounding box."""

    bbox: list[list[Number]]
    crs: str


class Extent(Schema):
    """A collection's extent."""

    spatial: SpatialExtent


class Collection(Schema):
    """One layer as an OGC collection."""

    id: str
    title: str
    description: str | None
    itemType: str
    crs: list[str]
    storageCrs: str
    links: list[TypedLink]
    extent: Extent | None = None


class Collections(Schema):
    """Every layer the caller may read."""

    collections: list[Collection]
    links: list[TypedLink]
    crs: list[str]


class Queryables(Schema):
    """What a layer's features can be filtered by, as a JSON Schema."""

    id: str = Field(alias="$id")
    schema_: str = Field(alias="$schema")
    type: str
    title: str
    description: str | None
    properties: dict[str, dict[str, Any]]
    additionalProperties: bool


class FeatureVersion(Schema):
    """One version of a feature: the operation, who, when, before and after (GeoJSON)."""

    version: int
    op: str
    actor: str | None
    at: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class FeatureHistory(Schema):
    """Every version of a feature, oldest first."""

    layer: str
    id: int | str
    versions: list[FeatureVersion]
