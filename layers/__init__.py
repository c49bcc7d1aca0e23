"""Storage: the embedded PostGIS, engine and sessions, models, migrations, repositories."""
