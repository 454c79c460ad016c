"""The knowledge map: a private, offline, Atlas-style 2D picture of a store's vectors.

projection (PCA + seeded UMAP) -> clustering (HDBSCAN on the layout) -> topics (c-TF-IDF
keywords, English and Japanese) -> render (one self-contained HTML file, canvas renderer).
Depends on `rag` only; `ragbot map` in bot/cli.py drives it.
"""

from rag.atlas.builder import MapLayer, SpaceRecords, build_layer, draw_map, read_space
from rag.atlas.config import MapConfig
from rag.atlas.render import render_html

__all__ = ["MapConfig", "MapLayer", "SpaceRecords", "build_layer", "draw_map", "read_space", "render_html"]
