"""The `map:` section of config.yaml: how the knowledge map is projected, clustered and drawn."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ColorBy = Literal["source", "set", "cluster", "lang"]


class MapConfig(BaseModel):
    """Settings of `ragbot map`; the defaults suit a few hundred to 50,000 chunks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(42, description="Random seed of the projection: the same data gives the same map.")
    n_neighbors: int = Field(15, ge=2, le=200, description="UMAP neighbourhood size: larger keeps more global structure.")
    min_dist: float = Field(0.1, ge=0.0, le=1.0, description="UMAP minimum distance: smaller packs clusters tighter.")
    pca_dims: int = Field(
        50, ge=0, le=1024, description="Reduce vectors to this many dimensions with PCA before UMAP (0: off); faster, same picture."
    )
    min_cluster_size: int | None = Field(
        None, ge=2, description="Smallest group HDBSCAN calls a cluster; null: max(5, chunks/200)."
    )
    label_words: int = Field(3, ge=1, le=10, description="Keywords in a cluster's label.")
    excerpt_chars: int = Field(240, ge=40, le=4000, description="Characters of chunk text shown on hover (the HTML grows with it).")
    neighbors: int = Field(5, ge=0, le=30, description="Neighbours per point highlighted along with search matches.")
    color_by: ColorBy = Field("cluster", description="Default colouring: source, set, cluster or lang.")
