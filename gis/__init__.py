"""Pure spatial core: CRS, H3, tile math, geometry validation and analytics on arrays.

Imports no other CityHex package: no database, no web.
"""
