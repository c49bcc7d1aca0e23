"""Each tile module works on a copy of the tile city of its own (see ``tiles_city`` in
tests/conftest.py), served in process as ``web``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def city(tiles_city, request: pytest.FixtureRequest) -> str:
    """URL of this module's copy of the tile city."""
    return tiles_city(request.module.__name__.replace(".", "_"))


@pytest.fixture(scope="module")
def web(city: str) -> Iterator[TestClient]:
    """The app on this module's tile city."""
    from spatial_api.app import create_app

    with TestClient(create_app(city)) as client:
        yield client
