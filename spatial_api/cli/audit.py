"""``cityhex audit prune --older-than 365d`` and ``cityhex audit verify``."""

from __future__ import annotations

import asyncio
import getpass
from functools import partial

import orjson
import typer

from layers.audit.chain import ChainReport, verify
from layers.audit.retention import PruneResult, prune
from layers.db.batches import parse_age
from layers.db.engine import create_async_engine
from spatial_api.cli.common import console, in_transaction, ready_database, reports_errors

app = typer.Typer(help="The audit trail.", no_args_is_help=True)
ROLE = "cli"
"""The role the audit log names for the command line (it acts with the database's rights)."""


async def _verify(url: str) -> ChainReport:
    engine = create_async_engine(url, pool_size=1)
    try:
        return await verify(engine)
    finally:
        await engine.dispose()


@app.command("prune")
@reports_errors
def prune_command(
    older_than: str = typer.Option("365d", help="Remove entries older than this (365d, 12h)"),
) -> None:
    """Remove the oldest entries, leaving an anchor from which the rest verifies."""
    age = parse_age(older_than)
    actor = f"{ROLE}:{getpass.getuser()}"
    work = partial(prune, older_than=age, actor=actor, role=ROLE, client=None)
    result: PruneResult = asyncio.run(in_transaction(ready_database(), work, job=False))
    anchor = f"; the chain now starts after row {result.anchor.seq}" if result.anchor else ""
    console.print(f"removed {result.removed:,} entries older than {result.cutoff}{anchor}")


@app.command("verify")
@reports_errors
def verify_command() -> None:
    """Walk the whole chain; print the report as JSON; exit 1 when it is broken."""
    report = asyncio.run(_verify(ready_database()))
    typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    if not report.ok:
        raise typer.Exit(1)
