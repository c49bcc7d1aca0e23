"""Analytics on arrays: Getis-Ord Gi* hotspots on H3 cells, kernel density and IDW rasters.

Nothing here touches a database or the web: callers pass numpy arrays and get arrays back.
"""
