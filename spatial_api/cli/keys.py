"""``cityhex keys create --role R``."""

from __future__ import annotations

import typer

from layers.db.engine import connect_sync
from layers.db.keys import create_key
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="API keys.", no_args_is_help=True)


@app.command("create")
@reports_errors
def create(
    role: str = typer.Option(..., help="app, inspector, editor, dispatcher or admin"),
    name: str | None = typer.Option(None, help="Who or what the key is for"),
    inspector: int | None = typer.Option(None, help="The inspector (user id) the key speaks for"),
) -> None:
    """Make a new key and print it once: only its digest is stored."""
    with connect_sync(ready_database()) as conn:
        token = create_key(conn, role, name, inspector)
    console.print(f"new {role} key (shown once):")
    typer.echo(token)
