"""The layer catalog, layer metadata and change notices."""
