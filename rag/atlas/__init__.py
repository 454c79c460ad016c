"""The knowledge map: a private, offline, Atlas-style 2D picture of a store's vectors.

projection (PCA + seeded UMAP) -> clustering (HDBSCAN on the layout) -> topics (c-TF-IDF
keywords, English and Japanese) -> render (one self-contained HTML file, canvas renderer).
`builder.draw_map` runs the whole chain. Depends on `rag` only; `ragbot map` drives it.
Submodules are imported where used, so reading the config does not load numpy or UMAP.
"""
