"""Query parameters several routers share, typed with the bounds of the columns they reach:
a number past what PostgreSQL holds is refused with a 400 before any query is written."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

INT_MAX = 2**31 - 1
"""The largest value of an ``integer`` column (user, department and sensor ids)."""

Offset = Annotated[int, Query(ge=0, le=INT_MAX, description="How many results to skip")]
UserId = Annotated[int | None, Query(ge=1, le=INT_MAX, description="A user (inspector) id")]
