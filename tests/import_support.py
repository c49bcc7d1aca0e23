"""Fixtures the import and export test modules share: a database and a layer catalog of each
module's own, so the layers a module creates are seen by it alone.

A module takes them by assignment, under the names its tests use::

    url = database_of_its_own("cityhex_etl_csv")
    own_catalog = catalog_of_its_own()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from layers.db.settings import storage_settings
from tests.test_import_helpers import fresh_database


def database_of_its_own(name: str) -> Callable[..., str]:
    """A module-scoped ``url`` fixture: a new migrated database ``name`` for one module."""

    @pytest.fixture(scope="module")
    def url(admin_url: str) -> str:
        """A database of this module's own."""
        return fresh_database(admin_url, name)

    return url


def catalog_of_its_own() -> Callable[..., Iterator[None]]:
    """A module-scoped autouse fixture: the layers the module makes are published in a
    catalog.d of its own (a CITYHEX_HOME in a temporary folder)."""

    @pytest.fixture(scope="module", autouse=True)
    def own_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        """Layers made here are published in a catalog.d of this module's own."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CITYHEX_HOME", str(tmp_path_factory.mktemp("home")))
            storage_settings.cache_clear()
            yield
            storage_settings.cache_clear()
        storage_settings.cache_clear()

    return own_catalog
