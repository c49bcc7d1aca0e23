"""The attachments city: the incident test city (tests.incidents.conftest.build_city) with a
CITYHEX_HOME of its own, so the files on disk are this folder's alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from layers.db.settings import storage_settings
from tests.helpers import City
from tests.incidents.conftest import build_city


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """CITYHEX_HOME of the attachment tests (the files live in its ``attachments``)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("attachments-home")
        patch.setenv("CITYHEX_HOME", str(folder))
        storage_settings.cache_clear()
        yield folder
    storage_settings.cache_clear()


@pytest.fixture(scope="session")
def city(new_database, home: Path) -> Iterator[City]:
    """The incident city with an asset, served in process."""
    from spatial_api.app import create_app

    url = new_database("cityhex_attachments")
    build_city(url)
    with TestClient(create_app(url)) as client:
        yield City(url, client)
