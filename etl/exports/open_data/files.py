"""Built downloads, reused while younger than ``CITYHEX_OPEN_DATA_MAX_AGE`` seconds.

Anyone may ask for any open dataset as often as they like; a download asked for again and
again is built once per max-age, and never by two requests at a time. Each process keeps
its files in a temporary folder of its own, removed when it exits.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import BinaryIO

from etl.exports.open_data.datasets import Dataset
from etl.exports.open_data.export import Export, export_dataset
from etl.exports.open_data.settings import open_data_settings
from etl.exports.open_data.writers import Format

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Built:
    """A written download and when it was finished (monotonic seconds)."""

    export: Export
    path: Path
    at: float


class BuiltFiles:
    """The downloads this process has built, one file per database, dataset and format."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._guard = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}
        self._built: dict[Key, Built] = {}

    def _lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _path(self, key: Key) -> Path:
        """Where the download ``key`` is kept (the folder is made on first use)."""
        with self._guard:
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="cityhex-open-")
        url, dataset, suffix = key
        database = hashlib.sha256(url.encode()).hexdigest()[:12]
        return Path(self._folder.name) / f"{database}-{dataset}.{suffix}"

    def open(self, url: str, dataset: Dataset, fmt: Format) -> tuple[Export, BinaryIO]:
        """The download of ``dataset`` in ``fmt`` from the database at ``url``, opened for
        reading: the file built last unless it is older than the max age, else a new one."""
        key = (url, dataset.id, fmt.suffix)
        with self._lock(key):
            built = self._built.get(key)
            if built is None or monotonic() - built.at >= open_data_settings().max_age:
                path = self._path(key)
                built = Built(export_dataset(url, dataset, fmt, path), path, monotonic())
                self._built[key] = built
            return built.export, built.path.open("rb")


built_files = BuiltFiles()
"""This process's built downloads."""
