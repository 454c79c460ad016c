"""From a store's space to a drawn map: read vectors, project, cluster, label."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.atlas.clustering import NOISE, cluster_points
from rag.atlas.config import MapConfig
from rag.atlas.projection import Projection, project
from rag.atlas.topics import Topic, label_clusters
from rag.errors import RagError

logger = logging.getLogger(__name__)

STAGES = ("reading", "projecting", "clustering", "labelling")


@dataclass(frozen=True)
class SpaceRecords:
    """Every chunk of one embedding space: ids, texts, metadata and vectors, in one order."""

    space: str
    model: str
    ids: list[str]
    texts: list[str]
    metadatas: list[dict]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class MapLayer:
    """One drawn map: the records, their 2D layout and neighbours, clusters and topics."""

    name: str
    records: SpaceRecords
    projection: Projection
    clusters: np.ndarray
    topics: list[Topic]


def read_space(kb, space: str, page: int = 5000) -> SpaceRecords:
    """Read a whole space (vectors included) from a KnowledgeBase, page by page."""
    info = kb.space_info(space)
    if not info or not info.get("chunks"):
        raise RagError(
            f"The '{space}' space is empty: there is nothing to map. "
            "Ingest documents first (`ragbot ingest PATH...`), or pick another space with --space "
            "(`ragbot status` lists them)."
        )
    model = str(info.get("model") or "")
    ids: list[str] = []
    texts: list[str] = []
    metas: list[dict] = []
    vectors: list[np.ndarray] = []
    for got in kb.pages(space, size=page):
        ids.extend(got.ids)
        texts.extend(got.texts)
        metas.extend(got.metadatas)
        vectors.append(got.vectors)
    # a stable order (by id) makes the map the same whatever order Chroma returns
    order = sorted(range(len(ids)), key=ids.__getitem__)
    matrix = np.concatenate(vectors)[order]
    return SpaceRecords(
        space, model, [ids[i] for i in order], [texts[i] for i in order], [metas[i] for i in order], matrix
    )


def build_layer(
    records: SpaceRecords,
    config: MapConfig,
    *,
    namer: Callable[[list[str], list[str]], str | None] | None = None,
    tokenize: Callable[[str], list[str]] | None = None,
    step: Callable[[str], None] | None = None,
    name: str | None = None,
) -> MapLayer:
    """Project, cluster and label one space's records; `step(stage)` is told as each stage starts."""
    step = step or (lambda stage: None)
    step("projecting")
    projection = project(
        records.vectors,
        seed=config.seed,
        n_neighbors=config.n_neighbors,
        min_dist=config.min_dist,
        pca_dims=config.pca_dims,
        neighbors=config.neighbors,
    )
    step("clustering")
    clusters = cluster_points(projection.xy, config.min_cluster_size)
    step("labelling")
    topics = label_clusters(records.texts, clusters, projection.xy, tokenize=tokenize, words=config.label_words, namer=namer)
    logger.info(
        "map of %s: %d points, %d clusters, %d unclustered",
        records.space,
        len(records),
        len(topics),
        int((clusters == NOISE).sum()),
    )
    return MapLayer(name or records.space, records, projection, clusters, topics)


def link_layers(a: MapLayer, b: MapLayer) -> tuple[np.ndarray, np.ndarray]:
    """For each point of a, its index in b (and back), -1 where absent: by chunk id, else by text."""

    def keys(layer: MapLayer, by_id: bool) -> Sequence[str]:
        return layer.records.ids if by_id else layer.records.texts

    by_id = bool(set(a.records.ids) & set(b.records.ids))
    index_b = {k: i for i, k in enumerate(keys(b, by_id))}
    index_a = {k: i for i, k in enumerate(keys(a, by_id))}
    a_to_b = np.array([index_b.get(k, -1) for k in keys(a, by_id)], dtype=np.int32)
    b_to_a = np.array([index_a.get(k, -1) for k in keys(b, by_id)], dtype=np.int32)
    return a_to_b, b_to_a


def draw_map(
    spaces: Sequence[SpaceRecords],
    config: MapConfig,
    *,
    color_by: str | None = None,
    progress: Callable[..., object] | None = None,
    namer: Callable[[list[str], list[str]], str | None] | None = None,
    compare: bool = False,
    trusted_urls: Sequence[str] = (),
) -> tuple[str, str | None, list[MapLayer]]:
    """Build a map per space, side by side (two linked ones for a comparison), and render the page: (html, note, layers)."""
    from rag.atlas.render import render_html

    bar = progress(total=len(spaces) * 3 + 1, desc="map", unit="step") if progress else None

    def step(stage: str) -> None:
        if bar is not None:
            if stage != "projecting" or bar.n:  # the first stage starts at 0
                bar.update()
            bar.set_description(f"map {stage}")

    names = [r.space for r in spaces]
    if len(names) == 2 and names[0] == names[1]:
        names = [f"{names[0]} (1)", f"{names[1]} (2)"]
    try:
        layers = [build_layer(r, config, namer=namer, step=step, name=name) for r, name in zip(spaces, names)]
        step("writing")
        page, note = render_html(
            layers, color_by or config.color_by, config.excerpt_chars, linked=compare, trusted_urls=trusted_urls
        )
        if bar is not None:
            bar.update()
    finally:
        if bar is not None:
            bar.close()
    return page, note, layers
