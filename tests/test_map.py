"""The knowledge map: projection, clusters and labels on a corpus with known groups; the page in a browser."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from rag.atlas.builder import MapLayer, SpaceRecords, link_layers
from rag.atlas.clustering import NOISE, cluster_points
from rag.atlas.config import MapConfig
from rag.atlas.projection import Projection, _exact_neighbors, project
from rag.atlas.render import render_html
from rag.atlas.topics import KeywordTokenizer, label_clusters, llm_namer
from tests.browser import find_chromium, run_page
from tests.conftest import fast_config

# group -> (keyword the label must contain, sentences that talk about it)
EN_GROUPS = {
    "invoice": ["The invoice was paid late, so the invoice total includes a fee.", "Send the invoice to accounting before the invoice deadline.", "Each invoice lists the payment terms and the invoice number."],
    "kubernetes": ["The kubernetes pod restarted after the deployment.", "Scale the kubernetes deployment to three pod replicas.", "A kubernetes node drains its pod workloads before an upgrade."],
    "tomato": ["Water the tomato plants in the garden every morning.", "A tomato needs compost and sun in the garden.", "Prune tomato side shoots so the garden stays tidy."],
    "guitar": ["Tune the guitar strings before the concert.", "A guitar chord needs clean fretting on the strings.", "Change guitar strings every few months."],
}  # fmt: skip
JA_GROUPS = {
    "会議室": ["会議室の予約は前日までにお願いします。", "大会議室の予約を変更するときは総務に連絡してください。", "会議室のプロジェクターは予約と一緒に申し込みます。"],
    "経費": ["経費精算の申請は月末までに提出してください。", "交通費の経費精算には領収書が必要です。", "経費の申請書は上長の承認を受けます。"],
    "休暇": ["有給休暇の申請はシステムから行います。", "休暇を取るときは二週間前に申請してください。", "夏季休暇の日程はチームで調整します。"],
}  # fmt: skip
FILLER = ["Please check with the team today.", "This note was updated last week.", "Ask in the channel if unsure."]
JA_FILLER = ["よろしくお願いします。", "詳しくはチームに確認してください。", "先週更新しました。"]


def corpus(groups: dict[str, list[str]], per_group: int, filler: list[str], seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts made of a group's sentences plus shared filler, and each text's group number."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for g, sentences in enumerate(groups.values()):
        for _ in range(per_group):
            picked = [sentences[i] for i in rng.choice(len(sentences), 2, replace=False)] + [filler[rng.integers(len(filler))]]
            rng.shuffle(picked)
            texts.append(" ".join(picked))
            labels.append(g)
    return texts, np.array(labels)


def blobs(labels: np.ndarray, seed: int = 0, spread: float = 0.03) -> np.ndarray:
    """2D points: one tight blob per group, the blobs on a circle."""
    rng = np.random.default_rng(seed)
    k = labels.max() + 1
    centres = np.column_stack([np.cos(np.arange(k) * 2 * np.pi / k), np.sin(np.arange(k) * 2 * np.pi / k)]) * 0.35 + 0.5
    return centres[labels] + rng.normal(scale=spread, size=(len(labels), 2))


def group_vectors(labels: np.ndarray, dim: int = 64, seed: int = 0) -> np.ndarray:
    """High-dimensional vectors: a random direction per group plus noise, as an embedder would give."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(labels.max() + 1, dim))
    return centres[labels] + rng.normal(scale=0.35, size=(len(labels), dim))


def ari(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b)


def make_layer(texts, labels, name="en", sources=None, ids=None, xy=None) -> MapLayer:
    """A map layer from constructed 2D points (no UMAP), clustered and labelled for real."""
    xy = blobs(labels) if xy is None else xy
    n = len(texts)
    sources = sources or [f"/docs/{name}/doc{i % 7}.md" for i in range(n)]
    ids = ids or [f"{name}-{i:05d}" for i in range(n)]
    metas = [{"source": s, "heading": f"Part {i % 3}", "lang": "ja" if re.search("[ぁ-ん]", t) else "en"} for i, (s, t) in enumerate(zip(sources, texts))]
    records = SpaceRecords(name, "hashing:test", list(ids), list(texts), metas, np.zeros((n, 4), dtype=np.float32))
    clusters = cluster_points(xy)
    topics = label_clusters(texts, clusters, xy)
    return MapLayer(name, records, Projection(xy, _exact_neighbors(xy.astype(np.float32), 5)), clusters, topics)


def labels_by_group(labels, clusters, topics) -> dict[int, str]:
    """For each true group, the label of the cluster holding most of its points."""
    names = {t.cluster: t.label for t in topics}
    out = {}
    for g in np.unique(labels):
        found = clusters[(labels == g) & (clusters != NOISE)]
        out[int(g)] = names[int(np.bincount(found).argmax())] if len(found) else ""
    return out


@pytest.mark.parametrize(
    "groups, filler",
    [(EN_GROUPS, FILLER), (JA_GROUPS, JA_FILLER)],
    ids=["english", "japanese"],
)
def test_clusters_recover_groups_and_labels_name_them(groups, filler):
    texts, labels = corpus(groups, 40, filler)
    xy = blobs(labels)
    clusters = cluster_points(xy)
    assert ari(labels, clusters) > 0.95
    topics = label_clusters(texts, clusters, xy)
    assert len(topics) == len(groups)
    for g, label in labels_by_group(labels, clusters, topics).items():
        assert list(groups)[g] in label, (label, list(groups)[g])


def test_japanese_keywords_are_words_not_particles():
    words = KeywordTokenizer()("会議室のキャンセルは三十分前までに連絡してください。Kubernetes の設定も確認。")
    assert "会議室" in words and "キャンセル" in words and "kubernetes" in words
    assert not {"の", "は", "まで", "に", "も"} & set(words)


def test_llm_names_clusters_and_a_failing_llm_keeps_keywords():
    texts, labels = corpus(EN_GROUPS, 20, FILLER)
    xy = blobs(labels)
    clusters = cluster_points(xy)

    class FakeChat:
        def __init__(self, fail=False):
            self.fail, self.prompts = fail, []

        def invoke(self, prompt):
            self.prompts.append(prompt)
            if self.fail:
                raise ConnectionError("no server")
            return "Topic " + prompt.split("Keywords: ")[1].split(",")[0]

    chat = FakeChat()
    topics = label_clusters(texts, clusters, xy, namer=llm_namer(chat))
    assert {t.label for t in topics} == {f"Topic {t.keywords[0]}" for t in topics}
    assert all("- " in p for p in chat.prompts)  # excerpts were given
    kept = label_clusters(texts, clusters, xy, namer=llm_namer(FakeChat(fail=True)))
    assert [t.label for t in kept] == [" · ".join(t.keywords) for t in kept]


def test_llm_labels_through_ragbots_own_chat_model():
    from tests.fakes import FakeChat

    texts, labels = corpus(EN_GROUPS, 8, FILLER)
    clusters = np.array(labels)
    xy = np.random.default_rng(0).normal(size=(len(texts), 2))
    chat = FakeChat(*[f'"Cluster title {i}"\nextra line' for i in range(len(EN_GROUPS))])
    topics = label_clusters(texts, clusters, xy, namer=llm_namer(chat))
    assert sorted(t.label for t in topics) == [f"Cluster title {i}" for i in range(len(EN_GROUPS))]
    assert chat.calls and chat.calls[0][0][0] == "user" and "Keywords:" in chat.calls[0][0][1]


def test_page_is_self_contained_with_every_point():
    texts, labels = corpus(EN_GROUPS, 25, FILLER)
    page, note = render_html([make_layer(texts, labels)], color_by="source")
    assert note is None
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page, re.I)
    assert "http://" not in page.split('id="map-data"')[0]  # no remote reference outside the data
    data = json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
    assert data["panels"][0]["n"] == len(texts) == len(data["panels"][0]["x"])
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_only_trusted_web_addresses_open_on_click():
    """A point opens its web page only when answer.trusted_urls vouches for it, as citations do."""
    texts, labels = corpus(EN_GROUPS, 4, FILLER)
    n = len(texts)
    sources = [["https://wiki.example.com/a", "https://wiki.example.com.evil.io/b", "/docs/local.md"][i % 3] for i in range(n)]
    layer = make_layer(texts, labels, sources=sources)
    layer.records.metadatas[0]["url"] = "https://evil.example.net/phish"  # a document that names its own URL

    def hrefs(trusted):
        page, _ = render_html([layer], color_by="source", trusted_urls=trusted)
        data = json.loads(re.search(r'id="map-data">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
        panel = data["panels"][0]
        plain = {panel["src"][i] for i in range(1, n)}  # the points without a URL of their own
        return {panel["sources"][s]: panel["hrefs"][s] for s in plain}, panel["hrefs"][panel["src"][0]]

    by_source, first = hrefs([])
    assert by_source["https://wiki.example.com.evil.io/b"] is None and first is None
    assert by_source["/docs/local.md"] == "file:///docs/local.md"  # a local file still opens
    by_source, first = hrefs(["https://wiki.example.com"])
    assert by_source["https://wiki.example.com.evil.io/b"] is None  # a look-alike host is not the trusted one
    assert first is None  # the point's own URL is not vouched for
    assert by_source["https://wiki.example.com/a"] == "https://wiki.example.com/a"


def test_colour_by_set_falls_back_to_source_with_a_note():
    texts, labels = corpus(EN_GROUPS, 10, FILLER)
    page, note = render_html([make_layer(texts, labels)], color_by="set")
    assert "knowledge set" in note and '"colorBy":"source"' in page


def test_compare_links_points_by_chunk_id():
    texts, labels = corpus(EN_GROUPS, 10, FILLER)
    a = make_layer(texts, labels, name="a", ids=[f"c{i}" for i in range(len(texts))])
    order = list(reversed(range(len(texts))))
    b = make_layer([texts[i] for i in order], labels[order], name="b", ids=[f"c{i}" for i in order])
    a_to_b, b_to_a = link_layers(a, b)
    assert a_to_b.tolist() == order and b_to_a[a_to_b].tolist() == list(range(len(texts)))


def test_map_of_an_empty_store_says_what_to_do(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(fast_config(tmp_path / "data").model_dump(mode="json")))
    result = CliRunner().invoke(cli, ["--config", str(config), "map"])
    assert result.exit_code == 1
    assert "Nothing is ingested yet" in str(result.exception)


@pytest.mark.integration
def test_projection_is_seeded_and_keeps_groups_apart():
    _, labels = corpus(EN_GROUPS | JA_GROUPS, 30, FILLER)
    vectors = group_vectors(labels)
    first = project(vectors, seed=7, pca_dims=16)
    again = project(vectors, seed=7, pca_dims=16)
    assert np.array_equal(first.xy, again.xy)
    assert first.xy.min() >= 0 and first.xy.max() <= 1
    assert ari(labels, cluster_points(first.xy)) > 0.9
    # neighbours stay within their group
    assert (labels[first.neighbors] == labels[:, None]).mean() > 0.95


@pytest.mark.integration
def test_map_command_writes_a_page(tmp_path, monkeypatch):
    from tests.conftest import SAMPLES

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(fast_config(tmp_path / "data").model_dump(mode="json")))
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "ingest", str(SAMPLES)]).exit_code == 0
    result = runner.invoke(cli, ["--config", str(config), "map", "--space", "en", "--out", "en.html", "--color-by", "lang"])
    assert result.exit_code == 0, result.output
    assert "Wrote en.html" in result.output and "clusters" in result.output
    assert '"colorBy":"lang"' in (tmp_path / "en.html").read_text()
    missing = runner.invoke(cli, ["--config", str(config), "map", "--space", "nope"])
    assert missing.exit_code == 1 and "'nope' space is empty" in str(missing.exception)


# -- the page in headless Chromium, network blocked ----------------------------------------
@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    if exe is None:  # CI installs it (.ci/run): a missing browser is a failure, not a skip
        pytest.fail("the map's browser tests need Chromium: apt-get install -y chromium (Debian)")
    return exe


def expected_highlight(layer: MapLayer, query: str) -> tuple[list[int], list[int]]:
    """What the search box should mark: matching excerpts or sources, plus their neighbours."""
    q = query.lower()
    data = json.loads(json.dumps([t for t in layer.records.texts]))
    matches = [i for i, t in enumerate(data) if q in " ".join(t.split()).lower() or q in layer.records.metadatas[i]["source"].lower()]
    marked = set(matches)
    for i in matches:
        marked.update(int(j) for j in layer.projection.neighbors[i] if j >= 0)
    return matches, sorted(marked)


@pytest.mark.integration
@pytest.mark.parametrize("query", ["tomato", "会議室"])
def test_page_renders_every_point_and_search_marks_matches_offline(chromium, tmp_path, query):
    texts, labels = corpus(EN_GROUPS | JA_GROUPS, 60, FILLER)
    layer = make_layer(texts, labels)
    page = tmp_path / "map.html"
    page.write_text(render_html([layer])[0], encoding="utf-8")
    report, requests = run_page(chromium, page, "selftest=" + query)
    assert requests == [] and report["resources"] == []  # nothing tried to leave the machine
    panel = report["panels"][0]
    assert panel["n"] == panel["drawn"] == len(texts)
    assert panel["labels"] >= 3 and panel["nonBlank"] > 5000
    matches, marked = expected_highlight(layer, query)
    assert matches and report["matches"][0] == matches
    assert report["highlighted"][0] == marked


@pytest.mark.integration
def test_compare_page_draws_both_maps_and_screenshot_is_not_blank(chromium, tmp_path):
    from PIL import Image

    texts, labels = corpus(EN_GROUPS, 50, FILLER)
    a = make_layer(texts, labels, name="model-a")
    b = make_layer(texts, labels, name="model-b", xy=blobs(labels, seed=3)[::-1].copy())
    page = tmp_path / "compare.html"
    page.write_text(render_html([a, b], color_by="source")[0], encoding="utf-8")
    report, requests = run_page(chromium, page, "selftest=guitar")
    assert requests == []
    assert [p["drawn"] for p in report["panels"]] == [len(texts), len(texts)]
    assert report["matches"][0] == report["matches"][1] != []
    shot = tmp_path / "shot.png"
    run_page(chromium, page, "", screenshot=shot)
    image = Image.open(shot).convert("RGB")
    pixels = np.asarray(image).reshape(-1, 3)
    background = np.array([0xFA, 0xFA, 0xFA])
    assert (np.abs(pixels.astype(int) - background).sum(axis=1) > 30).mean() > 0.02
    assert len(np.unique(pixels[::7], axis=0)) > 20
