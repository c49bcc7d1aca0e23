"""Feature exports to files (GeoPackage, GeoJSON, CSV, ...) in any CRS."""
