"""Streaming ingest: sensor readings from MQTT."""
