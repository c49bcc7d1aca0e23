"""Analytics on the layers: H3 aggregations, heatmaps (KDE, IDW) and hotspots (Gi*)."""
