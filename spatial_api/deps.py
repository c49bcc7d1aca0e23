"""Request dependencies shared by every router: the engine and a connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def get_engine(request: Request) -> AsyncEngine:
    """The process's async engine."""
    return request.app.state.engine


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for the request, in a transaction committed on success."""
    async with request.app.state.engine.begin() as conn:
        yield conn
