"""Database health: can we reach it, and what does it run."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

VERSIONS_SQL = "SELECT current_setting('server_version'), postgis_lib_version()"


async def database_versions(engine: AsyncEngine, timeout: float) -> dict[str, str]:
    """PostgreSQL and PostGIS versions; raises if the database does not answer in time."""

    async def probe() -> dict[str, str]:
        async with engine.connect() as conn:
            pg, postgis = (await conn.execute(text(VERSIONS_SQL))).one()
        return {"postgresql": pg, "postgis": postgis}

    return await asyncio.wait_for(probe(), timeout)
