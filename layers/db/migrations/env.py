"""Alembic environment: migrates the database CityHex is configured for."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from layers.db.engine import database_url, with_driver
from layers.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or database_url()


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Compare only the tables models.py declares.

    PostGIS's own tables, the readings partitions and the tables that later migrations
    create without a model (sensor_alarms, hotspot_cells, ...) are left out of autogenerate.
    """
    return type_ != "table" or not (reflected and compare_to is None)


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
