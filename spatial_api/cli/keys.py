"""``cityhex keys create --role R [--district CODE …] [--department CODE …] [--layer ID …]``."""

from __future__ import annotations

import typer

from layers.catalog.registry import load_catalog
from layers.db.engine import connect_sync
from layers.db.keys import create_key
from layers.db.scope import Scope
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="API keys.", no_args_is_help=True)


@app.command("create")
@reports_errors
def create(
    role: str = typer.Option(..., help="app, inspector, editor, dispatcher or admin"),
    name: str | None = typer.Option(None, help="Who or what the key is for"),
    inspector: int | None = typer.Option(None, help="The inspector (user id) the key speaks for"),
    district: list[str] | None = typer.Option(
        None, help="Limit the key to this district (6-digit code); repeat for more"
    ),
    department: list[str] | None = typer.Option(
        None, help="Limit the key to this department (its code); repeat for more"
    ),
    layer: list[str] | None = typer.Option(
        None, help="Limit the key's feature writes to this layer (its id); repeat for more"
    ),
) -> None:
    """Make a new key and print it once: only its digest is stored. Without scope options
    the key may do whatever its role allows."""
    catalog = load_catalog()
    for layer_id in layer or []:
        catalog.get(layer_id)
    scope = Scope.of(district or None, department or None, layer or None)
    with connect_sync(ready_database()) as conn:
        token = create_key(conn, role, name, inspector, scope)
    limits = "; ".join(f"{k}: {', '.join(v)}" for k, v in scope.as_dict().items())
    console.print(f"new {role} key (shown once)" + (f", limited to {limits}:" if limits else ":"))
    typer.echo(token)
