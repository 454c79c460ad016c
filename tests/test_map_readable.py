"""A map a person can read, and one that shows every document: visible points, the bulk of the
points filling the view, no filler labels, a search box that shows its hint, Japanese labels in
a Japanese font, and every space of a mixed corpus in the default map."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from rag.atlas.clustering import NOISE
from rag.atlas.render import render_html
from rag.atlas.topics import label_clusters
from tests.browser import find_chromium, run_page
from tests.conftest import SAMPLES, fast_config
from tests.test_map import EN_GROUPS, FILLER, JA_GROUPS, blobs, corpus, make_layer

BACKGROUND = np.array([0xFA, 0xFA, 0xFA])


@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    if exe is None:  # CI installs it (.ci/run): a missing browser is a failure, not a skip
        pytest.fail("the map's browser tests need Chromium: apt-get install -y chromium (Debian)")
    return exe


def test_spoken_filler_never_labels_a_cluster():
    # transcripts: the words people say most are not what a cluster is about
    talk = [
        "Yeah, you know, it's kind of like the ray cluster thing, right? I mean the ray cluster scales out.",
        "Um, so basically we build it, you know, and the ray cluster autoscaler adds nodes, yeah.",
        "It’s really, like, the ray cluster head node that, uh, you know, schedules the tasks.",
    ] * 8
    garden = ["Water the tomato plants in the garden every morning, okay?", "Yeah so the tomato needs compost, you know, and sun in the garden."] * 12
    texts = talk + garden
    labels = np.array([0] * len(talk) + [1] * len(garden))
    xy = blobs(labels)
    from rag.atlas.clustering import cluster_points

    clusters = cluster_points(xy)
    topics = label_clusters(texts, clusters, xy)
    words = {w for t in topics for w in t.keywords}
    assert {"know", "it's", "yeah", "kind", "like", "build", "really", "um"}.isdisjoint(words), words
    assert any("tomato" in t.label or "garden" in t.label for t in topics)


def test_default_map_draws_every_space_and_space_picks_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(fast_config(tmp_path / "data").model_dump(mode="json")))
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "ingest", str(SAMPLES)]).exit_code == 0
    status = json.loads(runner.invoke(cli, ["--config", str(config), "status", "--json"]).output)
    chunks = {s["space"]: s["chunks"] for s in status["spaces"]}
    assert chunks["en"] > 0 and chunks["ja"] > 0

    result = runner.invoke(cli, ["--config", str(config), "map", "--no-llm-labels"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "ragbot-map.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
    assert sorted(p["name"] for p in data["panels"]) == ["en", "ja"]
    assert {p["name"]: p["n"] for p in data["panels"]} == chunks  # every chunk of every space is drawn
    assert all("partner" not in p for p in data["panels"])  # different chunks: nothing to link
    assert "en (" in data["title"] and "ja (" in data["title"]

    one = runner.invoke(cli, ["--config", str(config), "map", "--space", "ja", "--no-llm-labels"])
    assert one.exit_code == 0, one.output
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', (tmp_path / "ragbot-map-ja.html").read_text(), re.S).group(1).replace("<\\/", "</"))
    assert [p["name"] for p in data["panels"]] == ["ja"]


def _outlier_layer(n_per_group: int = 80):
    """Four groups in the middle and one small group far away in a corner."""
    texts, labels = corpus(EN_GROUPS | JA_GROUPS, n_per_group, FILLER)
    xy = blobs(labels, spread=0.02) * 0.3 + 0.05  # the bulk: a small area near the origin
    far = np.flatnonzero(labels == labels.max())[:6]  # a handful of chunks far away (about 1% of them)
    xy[far] = 0.97 + np.random.default_rng(1).normal(scale=0.005, size=(len(far), 2))
    return make_layer(texts, labels, xy=xy), texts


def _ink_box(shot) -> tuple[float, float, float]:
    """Share of the map area's width and height that the bulk of the drawn pixels spans (5th to
    95th percentile of their positions), and the inked share of the area."""
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    body = image[60:-10, 10:-10]  # below the header
    ink = np.abs(body - BACKGROUND).sum(axis=2) > 60
    rows, cols = np.nonzero(ink)
    span = lambda v, size: (np.percentile(v, 95) - np.percentile(v, 5)) / size
    return span(cols, ink.shape[1]), span(rows, ink.shape[0]), float(ink.mean())


@pytest.mark.integration
def test_points_are_visible_and_the_bulk_fills_the_view(chromium, tmp_path):
    layer, texts = _outlier_layer()
    page = tmp_path / "map.html"
    page.write_text(render_html([layer])[0], encoding="utf-8")
    report, requests = run_page(chromium, page, "selftest=tomato")
    assert requests == []
    panel = report["panels"][0]
    assert panel["pointSize"] >= 3  # not 1-2 px dots
    assert report["pointSizeZoomed"] > panel["pointSize"]  # zooming in makes points larger
    # the far chunks do not squeeze the rest into a corner: the bulk fills the panel's height or width
    assert max(panel["bulkSpan"]) > 0.8 and min(panel["bulkSpan"]) > 0.3, panel["bulkSpan"]
    shot = tmp_path / "map.png"
    run_page(chromium, page, "", screenshot=shot)
    width, height, inked = _ink_box(shot)
    assert max(width, height) > 0.6, (width, height)
    # each point covers at least 3x3 px: the inked area is at least 9 px per point drawn
    assert inked * (1180 * 730) >= 9 * 0.9 * panel["drawn"]


@pytest.mark.integration
def test_search_hint_is_whole_and_japanese_labels_use_a_japanese_font(chromium, tmp_path):
    texts, labels = corpus(JA_GROUPS, 60, ["よろしくお願いします。"])
    layer = make_layer(texts, labels)
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t.label) for t in layer.topics)
    page = tmp_path / "ja.html"
    page.write_text(render_html([layer])[0], encoding="utf-8")
    report, _ = run_page(chromium, page, "selftest=会議室")
    hint = report["placeholder"]
    assert "Enter" in hint["text"] and hint["width"] <= hint["room"], hint  # not cut off
    for font in ("Noto Sans CJK JP", "IPAGothic", "Hiragino Sans"):
        assert font in report["labelFont"]
    # with a Japanese font installed (CI installs fonts-ipafont-gothic), labels are glyphs, not boxes
    assert report["cjkGlyphs"], "no Japanese font found: apt-get install -y fonts-ipafont-gothic"
    assert report["panels"][0]["labels"] >= 2
    shot = tmp_path / "ja.png"
    run_page(chromium, page, "", screenshot=shot)
    assert _ink_box(shot)[2] > 0.01


def test_layers_of_different_spaces_are_not_linked():
    texts, labels = corpus(EN_GROUPS, 20, FILLER)
    a = make_layer(texts, labels, name="en")
    b = make_layer(texts, labels, name="ja", ids=[f"other-{i}" for i in range(len(texts))])
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', render_html([a, b], linked=False)[0], re.S).group(1).replace("<\\/", "</"))
    assert len(data["panels"]) == 2 and all("partner" not in p for p in data["panels"])
    three = render_html([a, b, make_layer(texts, labels, name="x")], linked=False)[0]
    assert three.count('"name":"x"') == 1
    assert NOISE == -1
