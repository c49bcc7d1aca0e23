"""Loading data into CityHex: importers, the demo city generator, sensor stream ingest."""
