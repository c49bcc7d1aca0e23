"""Imports: vector files, CSV, OSM and rasters into the layers, checked row by row."""
