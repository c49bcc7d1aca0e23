"""Apply the Alembic migrations (``cityhex migrate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from layers.db.engine import with_driver

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Migration:
    """Where a database's schema stood before ``migrate`` and where it stands after."""

    before: tuple[str, ...]
    after: str

    @property
    def changed(self) -> bool:
        """Whether any migration was applied."""
        return self.before != (self.after,)

    def describe(self) -> str:
        """One line for a person: what was done to the schema."""
        if not self.changed:
            return f"schema already up to date (revision {self.after})"
        if not self.before:
            return f"schema created (revision {self.after})"
        return f"schema migrated from {', '.join(self.before)} to {self.after}"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the migrations shipped in this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def stamped_revisions(url: str) -> tuple[str, ...]:
    """The revisions the database is stamped at (empty for a database never migrated)."""
    engine = sa.create_engine(with_driver(url, "psycopg"), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def migrate(url: str) -> Migration:
    """Bring the database to the newest schema (the one head of the migration chain)."""
    cfg = alembic_config(url)
    before = stamped_revisions(url)
    command.upgrade(cfg, "head")
    return Migration(before, ScriptDirectory.from_config(cfg).get_current_head() or "")
