"""Alembic environment: migrates the database CityHex is configured for."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from layers.db import database_url, with_driver
from layers.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or database_url()


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave PostGIS's own tables and the readings partitions out of autogenerate."""
    ours = name != "spatial_ref_sys" and not (name or "").startswith("readings_")
    return type_ != "table" or ours


def run_migrations() -> None:
    """Apply the migrations over one connection, in one transaction."""
    engine = create_engine(with_driver(url, "psycopg"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
