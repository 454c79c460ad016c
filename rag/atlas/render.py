"""The map as one self-contained HTML file: data and a canvas renderer inline, no network."""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

import numpy as np

from rag.atlas.builder import MapLayer, link_layers
from rag.atlas.clustering import NOISE
from rag.citations import is_trusted_url
from rag.lang import detect_lang
from rag.records import Locator

logger = logging.getLogger(__name__)

# Tableau-20-like categorical palette; categories past it share "other"
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#aec7e8",
)  # fmt: skip
OTHER_COLOR = "#9aa0a6"
NOISE_COLOR = "#c8c8c8"


def source_href(source: str, metadata: dict, trusted_urls: Iterable[str] = ()) -> str | None:
    """Where a click on a point goes: its URL when answer.trusted_urls vouches for it (as in answers),
    or its file as a file:// URI; None otherwise (an untrusted web address is not a link)."""
    url = metadata.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return url if is_trusted_url(url, trusted_urls) else None
    if source.startswith(("http://", "https://")):
        return source if is_trusted_url(source, trusted_urls) else None
    path = Path(source)
    if path.is_absolute():
        return path.as_uri()
    return None


def short_source(source: str) -> str:
    """The last two parts of a path, or the host and path of a URL, for legends."""
    if "://" in source:
        return source.split("://", 1)[1][:60]
    parts = Path(source).parts
    return "/".join(parts[-2:]) if parts else source


def category_values(layer: MapLayer, color_by: str) -> list[str]:
    """The category of each point under a colouring."""
    recs = layer.records
    if color_by == "cluster":
        names = {t.cluster: t.label for t in layer.topics}
        return [names.get(int(c), "unclustered") if c != NOISE else "unclustered" for c in layer.clusters]
    if color_by == "set":
        return [str(m.get("set", "")) or "(no set)" for m in recs.metadatas]
    if color_by == "lang":
        return [str(m.get("lang") or detect_lang(t)) for m, t in zip(recs.metadatas, recs.texts)]
    return [short_source(str(m.get("source", ""))) for m in recs.metadatas]


def effective_color_by(layers: list[MapLayer], color_by: str) -> tuple[str, str | None]:
    """The colouring to use, and a note when the requested one is not possible."""
    if color_by == "set" and not any("set" in m for layer in layers for m in layer.records.metadatas):
        return "source", "No chunk has a knowledge set yet, so points are coloured by source."
    return color_by, None


def _palette(values_per_layer: list[list[str]], shared: bool) -> list[dict[str, str]]:
    """Category -> colour, per layer; shared categories (sources, languages) keep one colour."""

    def assign(counts: Counter) -> dict[str, str]:
        colours: dict[str, str] = {}
        ranked = [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if name != "unclustered"]
        for i, name in enumerate(ranked):
            colours[name] = PALETTE[i] if i < len(PALETTE) else OTHER_COLOR
        colours["unclustered"] = NOISE_COLOR
        return colours

    if shared:
        total: Counter = Counter()
        for values in values_per_layer:
            total.update(values)
        common = assign(total)
        return [common for _ in values_per_layer]
    return [assign(Counter(values)) for values in values_per_layer]


def _excerpt(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def layer_payload(
    layer: MapLayer, values: list[str], colours: dict[str, str], excerpt_chars: int, trusted_urls: Iterable[str] = ()
) -> dict:
    """The JSON a panel of the page draws from: columns of numbers and strings."""
    recs = layer.records
    categories: list[str] = []
    index: dict[str, int] = {}
    color_idx = []
    for v in values:
        if v not in index:
            index[v] = len(categories)
            categories.append(v)
        color_idx.append(index[v])
    counts = Counter(values)
    sources: list[str] = []
    hrefs: list[str | None] = []
    source_index: dict[str, int] = {}
    src_idx = []
    for m in recs.metadatas:
        source = str(m.get("source", ""))
        key = source + "\0" + str(m.get("url", ""))
        if key not in source_index:
            source_index[key] = len(sources)
            sources.append(source)
            hrefs.append(source_href(source, m, trusted_urls))
        src_idx.append(source_index[key])
    xy = layer.projection.xy
    nbr = layer.projection.neighbors
    return {
        "name": layer.name,
        "model": recs.model,
        "n": len(recs),
        # 0..10000 integers: 4-5 characters a coordinate, finer than any screen
        "x": np.rint(xy[:, 0] * 10000).astype(int).tolist() if len(recs) else [],
        "y": np.rint(xy[:, 1] * 10000).astype(int).tolist() if len(recs) else [],
        "cluster": layer.clusters.astype(int).tolist(),
        "color": color_idx,
        "categories": [{"name": c, "color": colours.get(c, OTHER_COLOR), "count": counts[c]} for c in categories],
        "src": src_idx,
        "sources": sources,
        "hrefs": hrefs,
        "text": [_excerpt(t, excerpt_chars) for t in recs.texts],
        "loc": [Locator.from_fields(m).label() for m in recs.metadatas],
        "k": int(nbr.shape[1]) if nbr.ndim == 2 else 0,
        "nbr": nbr.astype(int).ravel().tolist(),
        "topics": [
            {"cluster": t.cluster, "label": t.label, "size": t.size, "x": round(t.x * 10000), "y": round(t.y * 10000)}
            for t in layer.topics
        ],
    }


def render_html(
    layers: list[MapLayer],
    color_by: str = "cluster",
    excerpt_chars: int = 240,
    title: str | None = None,
    linked: bool | None = None,
    trusted_urls: Iterable[str] = (),
) -> tuple[str, str | None]:
    """The page: one panel per layer, side by side; and any note.

    Two layers are linked (hover and selection follow the same chunk) when they are a
    comparison of one corpus (`linked`, by default when there are exactly two); the panels of
    a store's different spaces hold different chunks and are not. A point's web address opens
    on click only when trusted_urls (answer.trusted_urls) vouches for it, as in answers.
    """
    if not layers:
        raise ValueError("at least one layer")
    linked = len(layers) == 2 if linked is None else linked
    color_by, note = effective_color_by(layers, color_by)
    values = [category_values(layer, color_by) for layer in layers]
    palettes = _palette(values, shared=color_by != "cluster")
    panels = [layer_payload(layer, v, p, excerpt_chars, trusted_urls) for layer, v, p in zip(layers, values, palettes)]
    if linked and len(layers) == 2:
        a_to_b, b_to_a = link_layers(layers[0], layers[1])
        panels[0]["partner"] = a_to_b.tolist()
        panels[1]["partner"] = b_to_a.tolist()
    joiner = " vs " if linked else " + "
    title = title or "Knowledge map: " + joiner.join(f"{layer.name} ({len(layer.records):,} chunks)" for layer in layers)
    data = {"title": title, "colorBy": color_by, "note": note, "panels": panels}
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    blob = blob.replace("</", "<\\/").replace("<!--", "<\\!--")  # cannot close the script element
    package = files("rag.atlas")
    template = package.joinpath("template.html").read_text(encoding="utf-8")
    script = package.joinpath("map.js").read_text(encoding="utf-8")
    page = (
        template.replace("__TITLE__", html.escape(title))
        .replace("/*__MAP_JS__*/", script.replace("</", "<\\/"))
        .replace("__MAP_DATA__", blob)
    )
    return page, note
