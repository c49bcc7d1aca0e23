"""The embedded cluster's advice when PostGIS is missing (no cluster is started)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_missing_postgis_message_says_how_to_get_it(tmp_path: Path) -> None:
    from layers.db.embedded import ClusterError, PgInstall

    install = PgInstall(bindir=tmp_path, sharedir=tmp_path, version="15")
    with pytest.raises(ClusterError) as err:
        install.require_postgis()
    assert "apt-get install postgresql-15-postgis-3" in err.value.message
    assert "brew install postgis" in err.value.message
    assert "docker" in err.value.message
