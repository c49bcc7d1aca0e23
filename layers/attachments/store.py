"""Attachment files on disk, content-addressed: ``CITYHEX_HOME/attachments/ab/abcd…`` (the
hex SHA-256 of the stored bytes) and its thumbnail ``abcd….thumb``, shared by every row with
the same bytes.

A file and the row that points at it are kept consistent by one PostgreSQL advisory lock
per hash, held to the end of the transaction: an upload takes it, writes the file (to a
temporary file, fsync, rename, fsync of the folder) if it is not there, inserts its row and
commits; on failure it removes the files it created before the lock is released. The sweep
(``cityhex attachments sweep``) takes the same lock before it removes a file no row names,
so it never removes a file an upload is about to point at, and an upload never points at a
file the sweep removed.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from layers.db.settings import storage_settings

LOCK_CLASS = 0x61747461
"""The first key of the attachments' advisory locks ('atta'); the second comes from the hash."""
THUMBNAIL_SUFFIX = ".thumb"
TEMP_FOLDER = "tmp"


class AttachmentSettings(BaseSettings):
    """Photos and documents of cases and features."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_ATTACHMENT_", extra="ignore")

    max_mb: float = Field(10.0, gt=0, le=1024)
    """Largest file one upload may carry, in MB (10⁶ bytes); a larger one is refused with 413
    before more than this (plus 64 KB of form) is read."""
    thumbnail_px: int = Field(320, ge=32, le=2048)
    """The longer side of the thumbnail made of each photo at upload, in pixels."""

    @property
    def max_bytes(self) -> int:
        """``max_mb`` in bytes."""
        return int(self.max_mb * 1_000_000)


@lru_cache
def attachment_settings() -> AttachmentSettings:
    """The process-wide attachment settings."""
    return AttachmentSettings()


def root() -> Path:
    """The folder of the attachment files (under ``CITYHEX_HOME``)."""
    return storage_settings().home.absolute() / "attachments"


def file_path(sha256: str, thumbnail: bool = False) -> Path:
    """Where the file (or its thumbnail) with this hash lives."""
    name = sha256 + (THUMBNAIL_SUFFIX if thumbnail else "")
    return root() / sha256[:2] / name


async def lock_hash(conn: AsyncConnection, sha256: str) -> None:
    """Take the advisory lock of ``sha256`` until the end of ``conn``'s transaction."""
    key = int.from_bytes(bytes.fromhex(sha256[:8]), signed=True)
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": LOCK_CLASS, "key": key}
    )


def write_file(path: Path, data: bytes) -> bool:
    """Store ``data`` at ``path`` durably unless a file is there already (same hash, same
    bytes); whether it wrote one. Call it holding the hash's lock."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_dir = root() / TEMP_FOLDER
    temp_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=temp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return True


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class SweepReport:
    """What a sweep found and removed."""

    files: int = 0
    """Attachment files (thumbnails not counted) looked at."""
    removed: list[str] = field(default_factory=list)
    """Hashes of the files no attachment names, removed with their thumbnails."""
    temporary_removed: int = 0
    """Temporary files left by interrupted uploads, removed."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready data."""
        return {
            "files": self.files,
            "removed": self.removed,
            "temporary_removed": self.temporary_removed,
        }


def _stored_hashes() -> set[str]:
    """The hashes of the files on disk."""
    found: set[str] = set()
    folder = root()
    if not folder.is_dir():
        return found
    for sub in folder.iterdir():
        if sub.is_dir() and len(sub.name) == 2:
            for path in sub.iterdir():
                name = path.name.removesuffix(THUMBNAIL_SUFFIX)
                if len(name) == 64 and name.startswith(sub.name):
                    found.add(name)
    return found


async def sweep(
    engine: AsyncEngine, *, temporary_older_than_s: float = 3600.0, dry_run: bool = False
) -> SweepReport:
    """Remove the files (and thumbnails) no attachment row names, each under its hash's lock,
    and temporary files older than ``temporary_older_than_s``; with ``dry_run`` only say
    which."""
    report = SweepReport()
    stored = sorted(_stored_hashes())
    report.files = len(stored)
    async with engine.connect() as conn:
        named = set(
            (
                await conn.execute(
                    text("SELECT DISTINCT sha256 FROM attachments WHERE sha256 = ANY(:h)"),
                    {"h": stored},
                )
            ).scalars()
        )
    for sha in (s for s in stored if s not in named):
        async with engine.begin() as conn:
            await lock_hash(conn, sha)
            again = await conn.execute(
                text("SELECT 1 FROM attachments WHERE sha256 = :h LIMIT 1"), {"h": sha}
            )
            if again.first() is not None:
                continue
            if not dry_run:
                for thumbnail in (False, True):
                    file_path(sha, thumbnail).unlink(missing_ok=True)
            report.removed.append(sha)
    temp_dir = root() / TEMP_FOLDER
    if temp_dir.is_dir():
        cutoff = time.time() - temporary_older_than_s
        for path in temp_dir.iterdir():
            try:
                stale = path.stat().st_mtime < cutoff
            except FileNotFoundError:  # an upload has just renamed it into place
                continue
            if stale:
                if not dry_run:
                    path.unlink(missing_ok=True)
                report.temporary_removed += 1
    return report
