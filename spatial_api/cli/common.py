"""What every command needs: a console, error reporting, the database it works on."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from gis.errors import CityHexError
from layers.db.engine import database_url, embedded_cluster
from layers.db.settings import storage_settings

console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a CityHexError into a one-line message and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CityHexError as exc:
            console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
            raise typer.Exit(1) from exc

    return wrapper


def ready_database() -> str:
    """The URL to work on: CITYHEX_DATABASE_URL as is, or the embedded cluster, started."""
    if storage_settings().database_url:
        return database_url()
    return embedded_cluster().start()
