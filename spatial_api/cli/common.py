"""What every command needs: a console, error reporting, the database it works on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import CityHexError
from layers.db.batches import parse_age
from layers.db.engine import create_async_engine, database_url, embedded_cluster
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


async def in_transaction(
    url: str, work: Callable[[AsyncConnection], Awaitable[R]], job: bool = True
) -> R:
    """``work`` done in one transaction on a one-connection engine to ``url`` (bounded by
    the jobs' statement timeout with ``job``)."""
    engine = create_async_engine(url, pool_size=1, job=job)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def prune_partitions(
    prune: Callable[..., Awaitable[list[str]]],
    older_than: str,
    dry_run: bool,
) -> None:
    """Run a partition retention ``prune(conn, age, dry_run=…)`` on the database and say
    what it dropped."""
    age = parse_age(older_than)
    dropped = asyncio.run(
        in_transaction(ready_database(), lambda conn: prune(conn, age, dry_run=dry_run))
    )
    verb = "would drop" if dry_run else "dropped"
    console.print(f"{verb} {len(dropped)} partition(s): {', '.join(dropped) or 'none'}")
