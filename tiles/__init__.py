"""Vector tiles: MVT built in PostGIS, H3 aggregates, TileJSON, a cache kept true by change
notices, and MBTiles/PMTiles export."""
