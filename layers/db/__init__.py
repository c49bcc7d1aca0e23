"""Storage plumbing: engine, embedded cluster, migrations, models, API keys, health."""
