"""``cityhex keys create|list|revoke|rotate``: API keys and their lifecycle."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from layers.db.engine import connect_sync
from layers.db.keys import (
    KeyInfo,
    Operator,
    find_key,
    issue_key,
    list_keys,
    parse_lifetime,
    revoke_key,
    rotate_key,
)
from spatial_api.auth import key_scope
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="API keys.", no_args_is_help=True)


def operator() -> Operator:
    """The person at the command line, as the audit chain names them."""
    return Operator(f"cli:{getpass.getuser()}", "admin", None, "cli")


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
    expires: str | None = typer.Option(
        None, help="End the key after this long: days or hours, such as 90d or 12h"
    ),
) -> None:
    """Make a new key and print it once: only its digest is stored. Without scope options
    the key may do whatever its role allows; without --expires it lasts until revoked."""
    scope = key_scope(district or None, department or None, layer or None)
    lifetime = parse_lifetime(expires) if expires is not None else None
    with connect_sync(ready_database()) as conn:
        info, token = issue_key(conn, role, name, inspector, scope, lifetime, operator())
    limits = "; ".join(f"{k}: {', '.join(v)}" for k, v in scope.as_dict().items())
    ends = f", expires {info.expires_at:%Y-%m-%d %H:%M %Z}" if info.expires_at else ""
    console.print(
        f"new {role} key {info.id} (shown once{ends})"
        + (f", limited to {limits}:" if limits else ":")
    )
    typer.echo(token)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "-"


@app.command("list")
@reports_errors
def list_command() -> None:
    """Every key (newest first) with its role, scope, dates and state; never its secret."""
    with connect_sync(ready_database()) as conn:
        keys = list_keys(conn)
    now = datetime.now(UTC)
    table = Table(
        *("id", "name", "prefix", "role", "scope", "created", "expires", "last used", "state"),
        title="API keys (times in UTC)",
    )
    for k in keys:
        scope = "; ".join(f"{d}: {','.join(v)}" for d, v in k.scope.as_dict().items()) or "-"
        table.add_row(
            *(str(k.id), k.name or "-", k.prefix + "…", k.role, scope, _when(k.created_at)),
            *(_when(k.expires_at), _when(k.last_used_at), _state(k, now)),
        )
    Console(width=max(160, console.width)).print(table if keys else "no keys")


def _state(info: KeyInfo, now: datetime) -> str:
    state = info.state(now)
    return f"revoked {_when(info.revoked_at)}" if state == "revoked" else state


@app.command("revoke")
@reports_errors
def revoke(
    key_id: int | None = typer.Argument(None, metavar="[ID]", help="The key's id"),
    name: str | None = typer.Option(None, help="The key's name (instead of the id)"),
) -> None:
    """Revoke a key: every server refuses it, and the tokens made from it, within
    CITYHEX_KEY_CACHE_SECONDS."""
    with connect_sync(ready_database()) as conn:
        info = revoke_key(conn, find_key(conn, key_id, name).id, operator())
    console.print(f"key {info.id} ({info.name or 'unnamed'}) revoked at {_when(info.revoked_at)}")


@app.command("rotate")
@reports_errors
def rotate(
    key_id: int | None = typer.Argument(None, metavar="[ID]", help="The key's id"),
    name: str | None = typer.Option(None, help="The key's name (instead of the id)"),
) -> None:
    """Give a key a new secret (same id, role, scope and expiry) and print it once; the old
    secret and its tokens are refused from now on."""
    with connect_sync(ready_database()) as conn:
        info, token = rotate_key(conn, find_key(conn, key_id, name).id, operator())
    console.print(f"key {info.id} ({info.name or 'unnamed'}) has a new secret (shown once):")
    typer.echo(token)
