"""What the benchmarks share: a throwaway PostGIS cluster in /tmp, and one holding the demo city.

The benchmarks run as scripts (``.venv/bin/python tests/bench/bench_x.py``): each puts the
repository root on ``sys.path`` and imports this module as ``tests.bench.common``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from etl.demo.loader import load_demo
from layers.db.embedded import EmbeddedCluster, free_port
from layers.db.migrate import migrate


@contextmanager
def throwaway_cluster(name: str) -> Iterator[tuple[EmbeddedCluster, Path]]:
    """A new embedded cluster on a free port, not started yet, and its own folder
    ``/tmp/cityhex-bench-<name>-*``; on exit the cluster is stopped and the folder removed."""
    home = Path(tempfile.mkdtemp(prefix=f"cityhex-bench-{name}-", dir="/tmp"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, port=free_port())
    try:
        yield cluster, home
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def load_city(url: str, scale: float) -> None:
    """Migrate the database at ``url`` and load the demo city at ``scale`` into it, printing
    how long the load took (the migration not counted)."""
    migrate(url)
    started = time.perf_counter()
    load_demo(url, scale, progress=False)
    print(f"demo city at scale {scale:g} loaded in {time.perf_counter() - started:.1f} s")


@contextmanager
def throwaway_city(name: str, scale: float) -> Iterator[str]:
    """A throwaway cluster (see throwaway_cluster) started and holding the demo city at
    ``scale``; yields its database URL."""
    with throwaway_cluster(name) as (cluster, _home):
        url = cluster.start()
        load_city(url, scale)
        yield url
