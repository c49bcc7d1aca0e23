"""Each analytics module loads its own pattern into a database of its own (its ``db``
fixture); ``http`` serves that database in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def http(db: str) -> Iterator[TestClient]:
    """The app on this module's database, in process."""
    from spatial_api.app import create_app

    with TestClient(create_app(db)) as client:
        yield client
