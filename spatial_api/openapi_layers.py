"""The items operation of every layer spelled out in the OpenAPI document, as GIS clients
read it.

GDAL's OGC API Features driver (3.8 and later) sizes its pages from the service description:
it looks up the items path of the collection it reads, literally
(``paths["/collections/assets/items"]``, not the templated ``/collections/{layer_id}/items``),
follows the ``$ref`` of its ``get`` parameter named like ``limit`` to
``#/components/parameters/limit``, and takes ``schema.default`` and ``schema.maximum``
(page = min(max(1000, default), maximum)). So the ``limit`` parameter is one shared
component (the OGC API Features template's form: default 1,000, maximum 10,000; larger
values are capped, not refused), and every catalog layer gets its own items path, a copy
of the templated operation.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from layers.catalog.registry import Catalog, load_catalog
from layers.features.filters import DEFAULT_LIMIT
from layers.features.repository import MAX_LIMIT

ITEMS = "/collections/{layer_id}/items"
LIMIT_REF = {"$ref": "#/components/parameters/limit"}
LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": False,
    "description": f"Features per page ({DEFAULT_LIMIT:,} unless given); a larger value than "
    f"{MAX_LIMIT:,} is taken as {MAX_LIMIT:,}",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
}


def with_layer_items(schema: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """A copy of ``schema`` whose items operations take the shared ``limit`` parameter, with
    one items path per layer of ``catalog``."""
    doc = copy.deepcopy(schema)
    doc.setdefault("components", {}).setdefault("parameters", {})["limit"] = LIMIT
    template = doc["paths"][ITEMS]["get"]
    template["parameters"] = [
        LIMIT_REF if p.get("name") == "limit" else p for p in template["parameters"]
    ]
    for layer in catalog:
        operation = copy.deepcopy(template)
        operation["parameters"] = [p for p in operation["parameters"] if p.get("in") != "path"]
        operation["operationId"] = f"{template['operationId']}_{layer.id}"
        operation["summary"] = f"The features of {layer.id} (GeoJSON)"
        doc["paths"][f"/collections/{layer.id}/items"] = {"get": operation}
    return doc


def install_layer_items(app: FastAPI) -> None:
    """Serve ``app``'s OpenAPI document with the items path of every layer, made again when
    the catalog changes (an import can publish a layer)."""
    generate = app.openapi
    made: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        catalog = load_catalog()
        if made.get("catalog") is not catalog:
            made.update(catalog=catalog, doc=with_layer_items(generate(), catalog))
        return made["doc"]

    app.openapi = openapi  # type: ignore[method-assign]
