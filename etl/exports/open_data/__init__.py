"""Open data: the desensitized datasets the public may download (``/open/``), their DCAT-style
catalog, and the files they are written to (CSV, GeoJSON, GeoPackage).

Every dataset names the fields it publishes (an allow-list): nothing that names or
identifies staff or reporters, no free text, no exact location of a reported case.
"""
