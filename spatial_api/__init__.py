"""The CityHex HTTP API (FastAPI), its command line and its map page."""
