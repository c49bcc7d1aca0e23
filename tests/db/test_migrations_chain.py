"""The migrations form one chain: one head, reached by ``migrate()`` from an empty database
and from a database stamped at the six heads that branched from 0002 before the merge; no
revision imports the project's own code, and the frozen tile-key SQL is the one the live
tile math generates."""

from __future__ import annotations

import ast
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from layers.db.migrate import MIGRATIONS, alembic_config, migrate
from layers.db.tile_keys import tile_key_function_sql

PROJECT_PACKAGES = {"layers", "gis", "etl", "tiles", "spatial_api", "styles", "tests"}


def the_head() -> str:
    """The one head of the migration scripts."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, heads
    return heads[0]


def old_heads() -> tuple[str, ...]:
    """The heads the merge revision joins (the revisions that branched from 0002)."""
    merge = ScriptDirectory.from_config(alembic_config()).get_revision("0011_one_chain")
    assert isinstance(merge.down_revision, tuple)
    return merge.down_revision


def stamped(url: str) -> set[str]:
    """The revisions a database is stamped at."""
    with psycopg.connect(url) as conn:
        return {v for (v,) in conn.execute("SELECT version_num FROM alembic_version")}


def imported_modules(path: Path) -> set[str]:
    """The top-level names of the modules a Python file imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            names.add(".")
    return names


def test_the_scripts_have_one_head() -> None:
    assert the_head() == "0013_audit"
    assert len(old_heads()) == 6


@pytest.mark.parametrize(
    "path", sorted((MIGRATIONS / "versions").glob("*.py")), ids=lambda p: p.name
)
def test_no_revision_imports_project_code(path: Path) -> None:
    assert not imported_modules(path) & (PROJECT_PACKAGES | {"."})


def test_a_fresh_database_is_migrated_to_the_head(db_url: str) -> None:
    # the session database was made empty and migrated by migrate()
    assert stamped(db_url) == {the_head()}


def test_the_frozen_tile_key_function_is_the_live_one(conn: psycopg.Connection) -> None:
    schema, body = conn.execute(
        "SELECT quote_ident(n.nspname), p.prosrc FROM pg_proc p, pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE p.proname = 'tile_key' AND e.extname = 'postgis'"
    ).fetchone()
    assert body == tile_key_function_sql(schema).split("$$")[1]


def test_a_database_at_the_six_old_heads_upgrades_to_the_head(admin_url: str) -> None:
    name = "cityhex_old_heads"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION postgis")
        cfg = alembic_config(url)
        for revision in old_heads():
            command.upgrade(cfg, revision)
        assert stamped(url) == set(old_heads())
        migrate(url)
        assert stamped(url) == {the_head()}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
