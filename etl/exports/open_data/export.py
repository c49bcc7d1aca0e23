"""One open dataset written to one file (``cityhex export open``, ``GET /open/{file}``).

The rows are read on a read-only connection with a statement timeout; the file appears
whole or not at all, and comes with a validator of its content (a weak ETag).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import orjson
import psycopg
import shapely

from etl.exports.open_data.datasets import Dataset, find_dataset
from etl.exports.open_data.settings import open_data_settings
from etl.exports.open_data.sources import Chunk
from etl.exports.open_data.writers import FORMATS, Format
from gis.errors import BadRequest, NotFound, ServiceUnavailable
from layers.catalog.registry import load_catalog
from layers.db.job_connection import job_connection

COORDINATE_DECIMALS = 7
"""Coordinates are rounded to 1e-7 degree (about a centimetre)."""


class Digest(Protocol):
    """A running hash (hashlib's objects)."""

    def update(self, data: bytes, /) -> None:
        """Feed ``data`` to the hash."""


@dataclass(frozen=True)
class Export:
    """What was written: the dataset, the format, the number of rows and the ETag."""

    dataset: str
    format: Format
    rows: int
    etag: str

    @property
    def filename(self) -> str:
        """The file name a download is saved under."""
        return f"{self.dataset}.{self.format.suffix}"


@contextmanager
def open_data_connection(url: str) -> Iterator[psycopg.Connection]:
    """A read-only connection whose statements are cancelled after the open-data statement
    timeout (ServiceUnavailable then)."""
    timeout = open_data_settings().statement_timeout_ms
    with job_connection(url) as conn:
        conn.read_only = True
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(timeout),))
        try:
            yield conn
        except psycopg.errors.QueryCanceled as exc:
            raise ServiceUnavailable(
                f"the open data query ran past {timeout} ms and was cancelled",
                code="statement_timeout",
            ) from exc


def format_named(suffix: str) -> Format:
    """The download format with file suffix ``suffix``; BadRequest naming the formats."""
    try:
        return FORMATS[suffix.lower()]
    except KeyError:
        known = ", ".join(FORMATS)
        raise BadRequest(
            f"no open data format {suffix!r}; formats: {known}", code="unknown_format"
        ) from None


def resolve_download(name: str) -> tuple[Dataset, Format]:
    """The open dataset and the format that a download file name (``assets.csv``) asks
    for; NotFound for an unknown dataset, BadRequest for an unknown format."""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        raise NotFound(
            f"no open data file {name!r}: ask for <dataset>.<format>, e.g. grid.geojson",
            code="unknown_dataset",
        )
    return find_dataset(load_catalog(), stem), format_named(suffix)


def rounded(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
    """The chunks with their coordinates rounded to ``COORDINATE_DECIMALS``."""
    for chunk in chunks:
        if chunk.geometries is None:
            yield chunk
        else:
            geometries = shapely.transform(
                chunk.geometries, lambda xy: np.round(xy, COORDINATE_DECIMALS)
            )
            yield Chunk(chunk.rows, geometries)


def fingerprinted(chunks: Iterable[Chunk], digest: Digest) -> Iterator[Chunk]:
    """The chunks unchanged, each fed to ``digest`` on its way."""
    for chunk in chunks:
        digest.update(orjson.dumps(chunk.rows))
        if chunk.geometries is not None:
            digest.update(b"".join(shapely.to_wkb(chunk.geometries).tolist()))
        yield chunk


def export_dataset(url: str, dataset: Dataset, fmt: Format, output: Path) -> Export:
    """Write the open ``dataset`` in ``fmt`` to ``output``; what was written."""
    output = Path(output)
    draft = output.with_name(f".{output.stem}.part{output.suffix}")
    draft.unlink(missing_ok=True)
    digest = hashlib.sha256(f"{dataset.id}.{fmt.suffix}".encode())
    try:
        with open_data_connection(url) as conn:
            chunks = fingerprinted(rounded(dataset.rows(conn)), digest)
            rows = fmt.write(draft, dataset, chunks)
        os.replace(draft, output)
    finally:
        draft.unlink(missing_ok=True)
    return Export(dataset.id, fmt, rows, f'W/"{digest.hexdigest()[:32]}"')


def export_to_file(url: str, dataset_id: str, output: Path) -> Export:
    """Write the open dataset ``dataset_id`` to ``output``, in the format its suffix names
    (.csv, .geojson, .gpkg); what was written."""
    dataset = find_dataset(load_catalog(), dataset_id)
    return export_dataset(url, dataset, format_named(Path(output).suffix.lstrip(".")), output)
