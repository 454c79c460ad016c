"""Clusters of the map: HDBSCAN over the 2D layout, so a cluster is a group the eye sees."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

NOISE = -1


def default_min_cluster_size(n: int) -> int:
    """Five points, or one in 200 on large maps, so a 50k map gets tens of topics, not thousands."""
    return max(5, n // 200)


def cluster_points(xy: np.ndarray, min_cluster_size: int | None = None) -> np.ndarray:
    """A cluster number per point (0, 1, ... by decreasing size), NOISE for points in no cluster."""
    n = len(xy)
    size = min_cluster_size or default_min_cluster_size(n)
    if n < max(size, 3):
        return np.full(n, NOISE, dtype=np.int32)
    from sklearn.cluster import HDBSCAN

    labels = HDBSCAN(min_cluster_size=size, min_samples=min(size, 10), copy=True).fit_predict(np.asarray(xy, dtype=np.float64))
    # renumber by size so that colours and label priority follow importance, deterministically
    ids, counts = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    remap = {int(old): new for new, old in enumerate(order)}
    return np.array([remap.get(int(label), NOISE) for label in labels], dtype=np.int32)
