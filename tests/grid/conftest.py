"""Each grid module fills a city of its own: ``grid_city(name)`` gives it an empty migrated
database and the app on it, as a ``GridCity`` (tests.helpers) that adds districts and users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from fastapi.testclient import TestClient

from tests.helpers import GridCity


@pytest.fixture(scope="session")
def grid_city(new_database) -> Callable[[str], AbstractContextManager[GridCity]]:
    """``with grid_city(name) as city``: a fresh database ``name`` and the app serving it."""
    from spatial_api.app import create_app

    @contextmanager
    def make(name: str) -> Iterator[GridCity]:
        url = new_database(name)
        with TestClient(create_app(url)) as client:
            yield GridCity(url, client)

    return make
