"""2D projection of embedding vectors: PCA, then seeded UMAP, plus each point's neighbours."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Projection:
    """Map coordinates (n x 2, scaled into [0, 1] keeping the aspect) and k nearest neighbours."""

    xy: np.ndarray
    neighbors: np.ndarray  # n x k indices, -1 where a point has fewer neighbours


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit-length rows (zero rows stay zero), so Euclidean distance ranks as cosine does."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def reduce_dims(vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """PCA to `dims` dimensions when that is smaller than the vectors (0: unchanged)."""
    n, d = vectors.shape
    if dims <= 0 or d <= dims or n <= dims:
        return vectors
    from sklearn.decomposition import PCA

    return PCA(n_components=dims, random_state=seed, svd_solver="randomized").fit_transform(vectors).astype(np.float32)


def scale_unit(xy: np.ndarray) -> np.ndarray:
    """Shift and scale coordinates into [0, 1] with one factor for both axes."""
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) == 0:
        return xy.reshape(0, 2)
    lo = xy.min(axis=0)
    span = float((xy.max(axis=0) - lo).max()) or 1.0
    out = (xy - lo) / span
    out += (1.0 - (out.max(axis=0))) / 2  # centre the shorter axis
    return out


def _neighbors_from_graph(graph, k: int) -> np.ndarray:
    """The k strongest edges of each row of UMAP's fuzzy neighbour graph."""
    graph = graph.tocsr()
    n = graph.shape[0]
    out = np.full((n, k), -1, dtype=np.int32)
    for i in range(n):
        start, end = graph.indptr[i], graph.indptr[i + 1]
        cols, weights = graph.indices[start:end], graph.data[start:end]
        mask = cols != i
        cols, weights = cols[mask], weights[mask]
        top = cols[np.argsort(-weights, kind="stable")[:k]]
        out[i, : len(top)] = top
    return out


def _exact_neighbors(vectors: np.ndarray, k: int) -> np.ndarray:
    """Brute-force k nearest neighbours (small inputs only)."""
    n = len(vectors)
    out = np.full((n, k), -1, dtype=np.int32)
    if n < 2 or k == 0:
        return out
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, n - 1)]
    out[:, : top.shape[1]] = top
    return out


def enable_numba_cache(cache_dir: Path | None) -> None:
    """Keep numba's compiled code (UMAP's kernels) between runs; must run before umap is imported."""
    if cache_dir is not None and "NUMBA_CACHE_DIR" not in os.environ:
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(cache_dir)


def project(
    vectors: np.ndarray,
    *,
    seed: int = 42,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    pca_dims: int = 50,
    neighbors: int = 5,
) -> Projection:
    """Lay vectors out in 2D with UMAP so that nearby points have similar text; seeded, so stable.

    Vectors are normalised and, when PCA is on, reduced first; UMAP then uses Euclidean distance,
    which on unit vectors orders pairs exactly as cosine does (|a-b|^2 = 2 - 2 cos) and stays
    close to it after PCA (whose centring would distort a cosine computed afterwards).
    """
    vectors = normalize(vectors)
    n = len(vectors)
    if n == 0:
        return Projection(np.zeros((0, 2)), np.zeros((0, neighbors), dtype=np.int32))
    if n < 8:  # too few for UMAP's neighbour graph: a PCA plane is the honest picture
        plane = reduce_dims(vectors, 2, seed) if vectors.shape[1] > 2 and n > 2 else np.zeros((n, 2))
        if plane.shape[1] < 2:
            plane = np.column_stack([plane, np.zeros(n)])
        return Projection(scale_unit(plane[:, :2]), _exact_neighbors(vectors, neighbors))
    reduced = reduce_dims(vectors, pca_dims, seed)
    import umap  # heavy import (numba); only when a map is drawn

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, n - 1),
        min_dist=min_dist,
        metric="cosine" if reduced is vectors else "euclidean",
        random_state=seed,  # fixes the layout; UMAP then runs its optimisation single-threaded
        init="spectral" if n > 50 else "random",
        low_memory=True,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*overridden to 1 by setting random_state.*")
        xy = reducer.fit_transform(reduced)
    return Projection(scale_unit(xy), _neighbors_from_graph(reducer.graph_, neighbors))
