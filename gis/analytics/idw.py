"""Inverse distance weighting from scattered measurements, with a k-d tree of the sites."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from gis.errors import Unprocessable


def idw(
    site_x: np.ndarray,
    site_y: np.ndarray,
    site_values: np.ndarray,
    qx: np.ndarray,
    qy: np.ndarray,
    power: float = 2.0,
    neighbors: int = 12,
) -> np.ndarray:
    """The IDW estimate at every query point from its ``neighbors`` nearest sites.

    z(q) = sum_i v_i d_i**-power / sum_i d_i**-power over those sites; a query point on a site
    takes that site's value exactly. Query arrays keep their shape.
    """
    values = np.asarray(site_values, dtype=np.float64)
    if len(values) == 0:
        raise Unprocessable("IDW needs at least one measured site", code="no_sites")
    sites = np.column_stack([np.asarray(site_x, np.float64), np.asarray(site_y, np.float64)])
    shape = np.shape(qx)
    query = np.column_stack([np.ravel(qx), np.ravel(qy)]).astype(np.float64)
    k = min(neighbors, len(values))
    dist, idx = cKDTree(sites).query(query, k=k, workers=-1)
    dist, idx = dist.reshape(len(query), k), idx.reshape(len(query), k)
    on_site = dist[:, 0] == 0.0
    w = 1.0 / np.where(dist > 0, dist, np.inf) ** power  # 1 / d**p, 0 on a site (set below)
    estimate = (w * values[idx]).sum(axis=1) / np.where(on_site, 1.0, w.sum(axis=1))
    estimate[on_site] = values[idx[on_site, 0]]
    return estimate.reshape(shape)
