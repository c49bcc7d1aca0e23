"""Each import module writes to a database of its own (``url``), and the modules that create
layers publish them in a catalog of their own (``own_catalog``), so what one module makes no
other module sees."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from layers.db.settings import storage_settings


@pytest.fixture(scope="module")
def url(new_database, request: pytest.FixtureRequest) -> str:
    """A migrated database of this module's own."""
    return new_database(request.module.__name__.replace(".", "_"))


@pytest.fixture(scope="module")
def own_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Layers made here are published in a catalog.d of this module's own (a CITYHEX_HOME in
    a temporary folder). Modules that create layers use it: ``pytest.mark.usefixtures``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYHEX_HOME", str(tmp_path_factory.mktemp("home")))
        storage_settings.cache_clear()
        yield
        storage_settings.cache_clear()
    storage_settings.cache_clear()
