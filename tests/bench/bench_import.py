"""Benchmark: import 1,000,000 points end to end (read, reproject, validate, H3, COPY, indexes,
commit) into a throwaway embedded PostGIS and print the rate per case and stage.

    flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_import.py [--points N]

Writes the point files in /tmp (GeoPackage and FlatGeobuf in EPSG:4326, a GeoPackage in UTM
zone 50N), makes a cluster with the same code as ``cityhex db start`` (default settings,
fsync on), and imports: each file as a new layer (``--create``), and the 4326 GeoPackage
appended to the assets table with its indexes in place. Stops the cluster and removes
everything after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import pyproj
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from layers.db.migrate import migrate
from layers.db.settings import storage_settings
from tests.bench.common import throwaway_cluster

CENTRE = (114.0579, 22.5431)


class StageClock:
    """Seconds spent in each stage of one import."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._name: str | None = None
        self._since = time.perf_counter()

    def stage(self, name: str, total: int | None = None) -> None:
        """Close the running stage and start ``name``."""
        now = time.perf_counter()
        if self._name:
            self.stages[self._name] = now - self._since
        self._name, self._since = name, now

    def advance(self, rows: int) -> None:
        """Rows are not timed one by one."""

    def close(self) -> dict[str, float]:
        """The stages, the last one closed now."""
        self.stage("")
        return self.stages


def write_points(folder: Path, n: int) -> dict[str, Path]:
    """The benchmark files: n points with a code, a kind, a name, a height and a time."""
    rng = np.random.default_rng(42)
    lon = CENTRE[0] + rng.uniform(-0.3, 0.3, n)
    lat = CENTRE[1] + rng.uniform(-0.2, 0.2, n)
    fields = {
        "code": np.array([f"4403040117{i:06d}" for i in range(n)], dtype=object),
        "class_code": np.full(n, "0117", dtype=object),
        "kind": np.full(n, "street_lamp", dtype=object),
        "name": np.array([f"lamp {i}" for i in range(n)], dtype=object),
        "height_m": rng.uniform(4, 14, n),
    }
    if n > 999_999:  # 6-digit serials: spread the codes over divisions
        fields["code"] = np.array(
            [f"{440300 + i // 999_999:06d}0117{i % 999_999 + 1:06d}" for i in range(n)],
            dtype=object,
        )
    utm = pyproj.Transformer.from_crs(4326, 32650, always_xy=True).transform(lon, lat)
    files = {
        "gpkg_4326": (folder / "points_4326.gpkg", shapely.points(lon, lat), "EPSG:4326"),
        "fgb_4326": (folder / "points_4326.fgb", shapely.points(lon, lat), "EPSG:4326"),
        "gpkg_utm": (folder / "points_utm50n.gpkg", shapely.points(*utm), "EPSG:32650"),
    }
    for path, geoms, crs in files.values():
        driver = "GPKG" if path.suffix == ".gpkg" else "FlatGeobuf"
        pyogrio.raw.write(
            path,
            shapely.to_wkb(geoms),
            list(fields.values()),
            list(fields),
            driver=driver,
            geometry_type="Point",
            crs=crs,
        )
    return {name: path for name, (path, _, _) in files.items()}


def run(url: str, path: Path, options: ImportOptions) -> tuple[float, dict[str, float]]:
    """Seconds of one import, and of its stages."""
    clock = StageClock()
    started = time.perf_counter()
    report = import_file(url, path, options, clock)
    seconds = time.perf_counter() - started
    assert report.written == report.read, report
    return seconds, clock.close()


def main() -> None:
    """Run every case once and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    with throwaway_cluster("import") as (cluster, home):
        os.environ["CITYHEX_HOME"] = str(home)
        storage_settings.cache_clear()
        made = time.perf_counter()
        files = write_points(home, args.points)
        print(
            f"{args.points:,} points written to GPKG/FGB in {time.perf_counter() - made:.1f} s "
            "(not counted)"
        )
        url = cluster.start()
        migrate(url)
        cases = [
            (
                "new layer from GPKG (EPSG:4326)",
                files["gpkg_4326"],
                ImportOptions(layer="bench_gpkg", create=True),
            ),
            (
                "new layer from FlatGeobuf (EPSG:4326)",
                files["fgb_4326"],
                ImportOptions(layer="bench_fgb", create=True),
            ),
            (
                "new layer from GPKG (UTM 50N, reprojected)",
                files["gpkg_utm"],
                ImportOptions(layer="bench_utm", create=True),
            ),
            (
                "append to assets (indexes in place)",
                files["gpkg_4326"],
                ImportOptions(layer="assets"),
            ),
        ]
        print(f"{'case':<44}{'seconds':>9}{'points/s':>12}   stages (s)")
        for name, path, options in cases:
            seconds, stages = run(url, path, options)
            detail = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
            print(f"{name:<44}{seconds:>9.2f}{args.points / seconds:>12,.0f}   {detail}")


if __name__ == "__main__":
    main()
