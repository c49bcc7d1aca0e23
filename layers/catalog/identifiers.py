"""Catalog identifiers in SQL: validated names, quoted."""

from __future__ import annotations

from layers.catalog.registry import Layer


def quote(name: str) -> str:
    """A validated identifier, quoted (``schema.table`` → ``"schema"."table"``)."""
    return ".".join(f'"{part}"' for part in name.split("."))


def column(layer: Layer, name: str, alias: str = "t") -> str:
    """A column of the layer's table under ``alias``."""
    return f"{alias}.{quote(name)}"
