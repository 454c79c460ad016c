"""Hybrid retrieval: fusion, keyword analysis, the floor, collapsing, and the keyword index kept in step."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.runtime import keywords_path, open_ingestor, open_knowledge_base
from rag.config import EmbeddingConfig, KeywordConfig, RetrievalConfig, StoreConfig
from rag.errors import ConfigError
from rag.keywords import Analyzer, LocalKeywordIndex
from rag.knowledge import KnowledgeBase
from rag.records import Chunk, Locator
from rag.retrieval import Candidates, Retriever, fuse, fuse_scores, near_duplicate
from rag.store import VectorStore
from tests.conftest import REPO, fast_config

FIXTURE = REPO / "tests" / "fixtures" / "beir-tiny"


# -- fusion ---------------------------------------------------------------------------------
def test_rrf_sums_reciprocal_ranks_and_weights():
    fused = dict(fuse([(["a", "b", "c"], 1.0), (["c", "a"], 1.0)], rrf_k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    order = [key for key, _ in fuse([(["a", "b", "c"], 1.0), (["c", "a"], 1.0)], rrf_k=60)]
    assert order == ["a", "c", "b"]
    # a heavier second ranking puts its first hit on top
    order = [key for key, _ in fuse([(["a", "b", "c"], 1.0), (["c", "a"], 3.0)], rrf_k=60)]
    assert order[0] == "c"
    assert fuse([(["a"], 0.0)]) == []


def test_score_fusion_scales_each_ranking_and_keeps_the_gaps():
    dense = (["a", "b", "d", "c"], [0.80, 0.79, 0.60, 0.40], 1.0)  # a and b nearly tied, c far behind
    keyword = (["c", "b"], [12.0, 2.0], 1.0)  # c matched every rare word, b one common word
    fused = dict(fuse_scores([dense, keyword]))
    assert fused["a"] == pytest.approx(1.0)  # top of dense, absent from keyword
    assert fused["b"] == pytest.approx((0.79 - 0.40) / 0.40 + 0.0)
    assert fused["c"] == pytest.approx(0.0 + 1.0)
    # rank fusion would put b first (2nd + 2nd); scores keep that b's keyword hit was weak
    assert [k for k, _ in fuse([(dense[0], 1.0), (keyword[0], 1.0)], rrf_k=10)][0] == "b"
    assert set([k for k, _ in fuse_scores([dense, keyword])][:2]) == {"a", "c"}
    # a single hit, or equal scores, count as the top of their ranking; weight 0 drops a ranking
    assert dict(fuse_scores([(["x"], [3.0], 2.0)])) == {"x": 2.0}
    assert fuse_scores([(["x"], [3.0], 0.0)]) == []


def test_near_duplicate_detects_copies_but_not_different_texts():
    text = "The quick brown fox jumps over the lazy dog near the river bank today"
    assert near_duplicate(text, text + " .")
    assert not near_duplicate(text, "Completely different words about installing ragbot with pip here")


# -- keyword analysis -----------------------------------------------------------------------
def test_english_tokens_are_stemmed_and_stopwords_dropped():
    tokens = Analyzer(KeywordConfig()).tokens("The runners were running to the stores")
    assert tokens == ["runner", "run", "store"]


@pytest.mark.parametrize("mode", ["sudachi", "bigram", "sudachi+bigram"])
def test_japanese_question_matches_its_passage_in_every_mode(mode):
    index = LocalKeywordIndex(None, KeywordConfig(japanese=mode))
    index.add("ja", ["a", "b"], ["会議室の予約は社内ポータルから行います。", "経費精算の締め切りは毎月二十五日です。"])
    assert index.search("ja", "経費の締め切りはいつ", 5)[0][0] == "b"
    assert index.search("ja", "会議室を予約したい", 5)[0][0] == "a"


def test_sudachi_drops_particles_and_keeps_english_words_english():
    tokens = Analyzer(KeywordConfig(japanese="sudachi")).tokens("会議室のキャンセルはSlackで")
    assert "会議室" in tokens and "キャンセル" in tokens and "slack" in tokens
    assert "の" not in tokens and "は" not in tokens


def test_bm25_prefers_rarer_terms_and_returns_only_matching_chunks():
    index = LocalKeywordIndex(None, KeywordConfig())
    index.add("en", ["1", "2", "3"], ["apple banana", "apple cherry", "banana split"])
    hits = index.search("en", "apple cherry", 10)
    assert [cid for cid, _ in hits] == ["2", "1"]
    assert index.search("en", "durian", 10) == []


# -- retriever on a small constructed store ---------------------------------------------------
class FakeEmbedder:
    """Vectors from a table: the text's first word picks the direction (deterministic, model-free)."""

    def __init__(self, model_id: str = "fake", table=None):
        self.model_id = model_id
        self.table = table or {}

    def _vec(self, text):
        return np.asarray(self.table[text.split()[0]], dtype=np.float32)

    def embed_passages(self, texts):
        return np.stack([self._vec(t) for t in texts])

    def embed_queries(self, texts):
        return self.embed_passages(texts)

    def embed_query(self, text):
        return self._vec(text)


def unit(*v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def _kb(tmp_path, min_score=None, **retrieval):
    embedding = EmbeddingConfig.model_validate(
        {"spaces": {"en": {"provider": "hashing", "model": "fake", "min_score": min_score}}, "routing": {"*": "en"}}
    )
    store = VectorStore.open(StoreConfig(), tmp_path)
    table = {"alpha": unit(1, 0, 0), "beta": unit(0, 1, 0), "gamma": unit(0.6, 0.8, 0), "delta": unit(0, 0, 1), "q": unit(1, 0.05, 0)}
    kb = KnowledgeBase(
        embedding,
        store,
        embedders={"en": FakeEmbedder("hashing:fake", table)},
        retrieval=RetrievalConfig(**retrieval),
        keywords=LocalKeywordIndex(None, KeywordConfig()),
    )
    return kb, table


def _chunk(cid, text, source="/a.md", ordinal=0):
    return Chunk(cid, text, source, Locator(), {"ordinal": ordinal})


def test_floor_drops_passages_below_min_score_and_can_leave_nothing(tmp_path):
    kb, table = _kb(tmp_path, min_score=0.5)
    chunks = [_chunk("a", "alpha apples", "/a.md"), _chunk("b", "beta bananas", "/b.md"), _chunk("d", "delta dates", "/d.md")]
    kb.write("en", chunks, kb.embedder("en").embed_passages([c.text for c in chunks]))
    hits = kb.retrieve("q bananas", k=5)  # dense: alpha (0.999); keyword: beta (cosine 0.05, below the floor)
    assert [p.id for p in hits] == ["a"]
    assert hits[0].cosine == pytest.approx(float(np.dot(table["q"], table["alpha"])), abs=1e-3)
    table["q"] = unit(-1, -1, -1)  # points away from everything: nothing is relevant
    assert kb.retrieve("q", k=5) == []
    kb.store.close()


def test_keyword_hit_without_dense_hit_is_fused_in_with_its_cosine(tmp_path):
    kb, table = _kb(tmp_path, dense_k=1)
    chunks = [_chunk("a", "alpha apples", "/a.md"), _chunk("b", "beta bananas", "/b.md")]
    kb.write("en", chunks, kb.embedder("en").embed_passages([c.text for c in chunks]))
    hits = kb.retrieve("q bananas", k=5)
    assert {p.id for p in hits} == {"a", "b"}
    banana = next(p for p in hits if p.id == "b")
    assert banana.cosine == pytest.approx(float(np.dot(table["q"], table["beta"])), abs=1e-3)
    kb.store.close()


def test_adjacent_chunks_of_one_source_collapse_to_the_best(tmp_path):
    kb, _ = _kb(tmp_path, keyword={"enabled": False})
    chunks = [
        _chunk("a0", "alpha one", "/long.md", 0),
        _chunk("a1", "alpha two", "/long.md", 1),
        _chunk("a2", "alpha three", "/long.md", 2),
        _chunk("g", "gamma other", "/other.md", 0),
    ]
    kb.write("en", chunks, kb.embedder("en").embed_passages([c.text for c in chunks]))
    hits = kb.retrieve("q", k=4)
    sources = [p.source for p in hits]
    ordinals = sorted(p.metadata["ordinal"] for p in hits if p.source == "/long.md")
    assert "/other.md" in sources
    assert all(b - a > 1 for a, b in zip(ordinals, ordinals[1:]))  # never two neighbours
    uncollapsed = kb.retriever.ranked("q", 4, floor=False, collapse=False)
    assert len(uncollapsed) == 4
    kb.store.close()


def test_rerank_switch_without_a_reranker_is_refused_clearly(tmp_path):
    kb, _ = _kb(tmp_path)
    with pytest.raises(ConfigError, match="rerank"):
        Retriever(kb, RetrievalConfig(rerank=True))
    kb.store.close()


# -- the keyword index stays in step with the store -----------------------------------------
def _keyword_hits(config, query):
    with open_knowledge_base(config) as kb:
        return {kb.store.passages("en", [cid]).get(cid, (None,))[0].source for cid, _ in kb.keywords.search("en", query, 10)}


def test_keyword_index_follows_ingest_reingest_delete_and_restart(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Zebras\n\nZebras graze on the savanna grass.\n", encoding="utf-8")
    (docs / "b.md").write_text("# Kettles\n\nA kettle boils water for tea.\n", encoding="utf-8")
    config = fast_config(tmp_path / "data")

    def ingest():
        with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
            return ingestor.run([docs])

    ingest()
    assert keywords_path(config).exists()
    assert _keyword_hits(config, "zebras savanna") == {(docs / "a.md").as_posix()}

    (docs / "a.md").write_text("# Zebras\n\nZebras now eat only acacia leaves.\n", encoding="utf-8")
    report = ingest()
    assert report.updated == 1
    assert _keyword_hits(config, "savanna") == set()  # the old text is gone from the index
    assert _keyword_hits(config, "acacia") == {(docs / "a.md").as_posix()}

    (docs / "b.md").unlink()
    ingest()
    assert _keyword_hits(config, "kettle") == set()

    # restart: a new process reads the index from disk; the corpus is never read again
    (docs / "a.md").unlink()
    docs.rmdir()
    with open_knowledge_base(config) as kb:
        assert kb.sync_keywords() == 0
        assert kb.keywords.count("en") == kb.store.count("en") > 0
        assert kb.keywords.search("en", "acacia", 5)


def test_keyword_index_rebuilt_from_stored_texts_when_out_of_step(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Penguins live in Antarctica.\n", encoding="utf-8")
    config = fast_config(tmp_path / "data")
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        ingestor.run([docs])
    keywords_path(config).unlink()  # lost, or a data dir from before the keyword index
    with open_knowledge_base(config) as kb:
        assert kb.keywords.count("en") == kb.store.count("en") == 1
        assert kb.keywords.search("en", "penguin", 5)


# -- search and eval from the command line ----------------------------------------------------
def _write_config(tmp_path):
    import yaml

    from tests.conftest import FAST_SPACES

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **FAST_SPACES}), encoding="utf-8")
    return path


def test_eval_runs_end_to_end_on_a_small_beir_fixture(tmp_path):
    config = _write_config(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "eval", str(FIXTURE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "queries", "seconds"}
    assert data["queries"] == 5  # q6 is judged only in dev
    assert data["recall@100"] == 1.0
    assert data["ndcg@10"] > 0.8  # words shared with the question find the passage, in English and Japanese
    assert not (tmp_path / "data").exists()  # the user's store is untouched


def test_eval_names_the_splits_that_exist(tmp_path, capsys):
    from bot.cli import main

    config = _write_config(tmp_path)
    assert main(["--config", str(config), "eval", str(FIXTURE), "--split", "train"]) == 1
    assert "available: dev, test" in capsys.readouterr().err


def test_search_uses_hybrid_retrieval_and_keeps_its_json_fields(tmp_path):
    config = _write_config(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "ingest", str(FIXTURE / "corpus.jsonl")]).exit_code == 0
    result = runner.invoke(cli, ["--config", str(config), "search", "経費精算の締め切り", "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits[0]["row"] == 6 and hits[0]["space"] == "ja"
    assert {"text", "source", "locator", "score", "space"} <= set(hits[0])


def test_spaces_the_question_is_not_routed_to_weigh_less(tmp_path):
    embedding = EmbeddingConfig.model_validate(
        {
            "spaces": {"en": {"provider": "hashing", "model": "e"}, "ja": {"provider": "hashing", "model": "j"}},
            "routing": {"ja": "ja", "*": "en"},
        }
    )
    store = VectorStore.open(StoreConfig(), tmp_path)
    kb = KnowledgeBase(embedding, store, retrieval=RetrievalConfig(other_space_weight=0.3), keywords=LocalKeywordIndex(None, KeywordConfig()))
    en, ja = _chunk("e", "an english page"), _chunk("j", "日本語のページです")
    kb.write("en", [en], kb.embedder("en").embed_passages([en.text]))
    kb.write("ja", [ja], kb.embedder("ja").embed_passages([ja.text]))
    weights = {c.name: c.weight for c in kb.retriever.candidates("日本語のページはどこ").channels}
    assert weights["dense:ja"] == 1.0 and weights["dense:en"] == pytest.approx(0.3)
    weights = {c.name: c.weight for c in kb.retriever.candidates("where is the english page").channels}
    assert weights["dense:en"] == 1.0 and weights["dense:ja"] == pytest.approx(0.3)
    store.close()


# -- one keyword ranking across spaces ---------------------------------------------------------
def test_keyword_search_is_one_ranking_across_spaces():
    texts = {"e1": "kettle boils water", "e2": "kettle handle", "j1": "kettle kettle boils water quickly", "j2": "tea leaves"}
    split = LocalKeywordIndex(None, KeywordConfig())
    split.add("en", ["e1", "e2"], [texts["e1"], texts["e2"]])
    split.add("ja", ["j1", "j2"], [texts["j1"], texts["j2"]])
    together = LocalKeywordIndex(None, KeywordConfig())
    together.add("all", list(texts), list(texts.values()))
    # the same ranking and scores as if every chunk were in one space (document frequencies over all of them)
    expected = together.search("all", "kettle boils water", 10)
    hits = split.search_all("kettle boils water", 10)
    assert [cid for (_, cid), _ in hits] == [cid for cid, _ in expected]
    assert [s for _, s in hits] == pytest.approx([s for _, s in expected])
    assert {space for (space, _), _ in hits} == {"en", "ja"}
    split.delete("ja", ["j1"])  # a write in any space is seen by the next search
    assert ("ja", "j1") not in {key for key, _ in split.search_all("kettle", 10)}


def test_a_space_with_a_few_stray_chunks_cannot_crowd_out_the_real_matches(tmp_path):
    """Keyword search only: a Japanese question must not get an English-space aside first."""
    config = fast_config(tmp_path / "data", retrieval={"dense_weight": 0.0})
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = ["会議室の予約", "経費精算の締め切り", "有給休暇の申請", "社内ポータルの使い方", "名刺の注文"]
    for i, topic in enumerate(topics):
        (docs / f"ja{i}.md").write_text(f"# {topic}\n\n{topic}について説明します。手順は総務部に確認してください。\n", encoding="utf-8")
    (docs / "ja-ingest.md").write_text(
        "# 再取り込み\n\n再取り込みは管理者だけが実行できます。再取り込みの前に管理者を設定します。\n", encoding="utf-8"
    )
    # mostly English, so it is routed to the English space, but it shares the question's rarest word
    (docs / "glossary.md").write_text(
        "# Glossary\n\nThe Japanese UI says 管理者 where the English one says admin; see the admin guide for details.\n",
        encoding="utf-8",
    )
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        ingestor.run([docs])
        assert kb.store.count("en") >= 1 and kb.store.count("ja") >= 6
        hits = kb.retriever.ranked("再取り込みは誰が実行できますか？管理者ですか", 3, floor=False)
    assert hits[0].source.endswith("ja-ingest.md")


# -- the context line: a chunk is indexed with the title and heading it lacks ------------------
def test_a_chunk_from_the_middle_of_a_document_is_found_by_its_heading(tmp_path):
    config = fast_config(tmp_path / "data", retrieval={"dense_weight": 0.0})  # hashing vectors carry no meaning
    docs = tmp_path / "docs"
    docs.mkdir()
    filler = " ".join(f"Paragraph {i} describes routine maintenance steps in plain words." for i in range(60))
    (docs / "vaccines.md").write_text(
        "# Zoster vaccine trial\n\n" + filler + "\n\nThe second dose was well tolerated by older adults.\n", encoding="utf-8"
    )
    (docs / "other.md").write_text("# Kettles\n\nA kettle boils water. The second kettle was tolerated.\n", encoding="utf-8")
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        ingestor.run([docs])
        last = kb.retriever.ranked("zoster second dose tolerated", 5, floor=False, collapse=False)
    assert last[0].source.endswith("vaccines.md")
    assert "well tolerated" in last[0].text
    # what users see and quote is the chunk itself, not the context line
    assert not last[0].text.startswith("Zoster vaccine trial")
    assert last[0].metadata.get("context") == "Zoster vaccine trial"


def test_renaming_a_heading_re_embeds_the_chunks_under_it(tmp_path):
    config = fast_config(tmp_path / "data")
    docs = tmp_path / "docs"
    docs.mkdir()
    body = " ".join(f"Sentence {i} about the setup of the service." for i in range(80))
    (docs / "guide.md").write_text("# Guide\n\n## Install\n\n" + body + "\n", encoding="utf-8")

    def ingest():
        with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
            return ingestor.run([docs])

    first = ingest()
    assert first.embedded >= 2
    (docs / "guide.md").write_text("# Guide\n\n## Installation on Linux\n\n" + body + "\n", encoding="utf-8")
    second = ingest()
    assert second.updated == 1
    assert second.embedded == first.embedded  # same texts, new context: every chunk is embedded again
    with open_knowledge_base(config) as kb:
        hits = kb.keywords.search("en", "linux", 10)
        assert len(hits) == kb.store.count("en")  # the new heading is in every chunk's keyword tokens


# -- bilingual: a chunk in several spaces, weights by what can read the question, one decision ----------
def _two_spaces(tmp_path, routing, min_en=0.5, min_ja=0.5, **retrieval):
    embedding = EmbeddingConfig.model_validate(
        {
            "spaces": {"en": {"provider": "hashing", "model": "e", "min_score": min_en},
                       "ja": {"provider": "hashing", "model": "j", "min_score": min_ja}},
            "routing": routing,
        }
    )
    store = VectorStore.open(StoreConfig(), tmp_path)
    return KnowledgeBase(embedding, store, retrieval=RetrievalConfig(**retrieval), keywords=LocalKeywordIndex(None, KeywordConfig()))


def test_routing_lists_and_which_spaces_read_a_language():
    emb = EmbeddingConfig()
    assert emb.spaces_for("en") == ["en", "ja"] and emb.space_for("en") == "en" and emb.spaces_for("ja") == ["ja"]
    assert emb.reads("ja", "en") and emb.reads("ja", "ja") and emb.reads("en", "en") and not emb.reads("en", "ja")
    with pytest.raises(ValueError, match="names a space twice"):
        EmbeddingConfig.model_validate({"routing": {"*": ["en", "en"]}})
    with pytest.raises(ValueError, match="empty list"):
        EmbeddingConfig.model_validate({"routing": {"*": []}})


def test_an_english_question_weighs_every_space_that_holds_english(tmp_path):
    kb = _two_spaces(tmp_path, {"ja": "ja", "*": ["en", "ja"]})
    en, ja = _chunk("e", "an english page"), _chunk("j", "日本語のページです")
    for space in ("en", "ja"):
        kb.write(space, [en], kb.embedder(space).embed_passages([en.text]))
    kb.write("ja", [ja], kb.embedder("ja").embed_passages([ja.text]))
    weights = {c.name: c.weight for c in kb.retriever.candidates("where is the english page").channels}
    assert weights["dense:en"] == 1.0 and weights["dense:ja"] == 1.0  # e5 holds English: both dense rankings count
    weights = {c.name: c.weight for c in kb.retriever.candidates("日本語のページはどこ").channels}
    assert weights["dense:ja"] == 1.0 and weights["dense:en"] == pytest.approx(0.3)  # MiniLM cannot read Japanese
    hits = kb.retriever.ranked("where is the english page", 5, floor=False)
    assert [p.id for p in hits].count("e") == 1  # one chunk in two spaces is one candidate
    store_rows = kb.keywords.spaces_of(["e", "j"])
    assert store_rows == {"e": {"en", "ja"}, "j": {"ja"}}
    kb.store.close()


def test_exact_rare_term_counts_even_where_the_cosine_cannot_read_the_question(tmp_path):
    # English chunk only in the English space, whose cosine to a Japanese question is noise
    kb = _two_spaces(tmp_path, {"ja": "ja", "*": "en"}, min_en=0.99, min_ja=0.99)
    chunks = [_chunk("k", "KubeRay runs Ray clusters on Kubernetes", "/kuberay.md"), _chunk("p", "Photos kept on your own server", "/photos.md")]
    kb.write("en", chunks, kb.embedder("en").embed_passages([c.text for c in chunks]))
    hits = kb.retrieve("KubeRay とは何ですか？", k=5)
    assert [p.source for p in hits] == ["/kuberay.md"]
    assert hits[0].cosine < 0.99  # kept by its keyword evidence, not its cosine
    assert kb.retrieve("Astral を買収したのはどの会社？", k=5) == []  # no rare term matches: not found
    strict = _two_spaces(tmp_path / "strict", {"ja": "ja", "*": "en"}, min_en=0.99, min_ja=0.99, keyword={"min_share": None})
    strict.write("en", chunks, strict.embedder("en").embed_passages([c.text for c in chunks]))
    assert strict.retrieve("KubeRay とは何ですか？", k=5) == []  # cosine alone would have said "not found"
    kb.store.close()
    strict.store.close()


def test_search_prints_the_score_it_ranks_by(tmp_path):
    config = _write_config(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "ingest", str(FIXTURE / "corpus.jsonl")]).exit_code == 0
    hits = json.loads(runner.invoke(cli, ["--config", str(config), "search", "expense deadline", "--json", "-k", "5"]).stdout)
    scores = [h["score"] for h in hits]
    assert len(hits) >= 2 and scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert all("cosine" in h for h in hits)
    text = runner.invoke(cli, ["--config", str(config), "search", "expense deadline", "-k", "5"]).stdout
    shown = [float(line.split("[", 1)[1].split()[0].rstrip(",")) for line in text.splitlines() if line[:1].isdigit()]
    assert shown == sorted(shown, reverse=True) and shown[0] == pytest.approx(scores[0], abs=1e-3)


class _MeetingEmbedder:
    """Hashing vectors; embedding a question first waits for the other space's embedder to be at it too."""

    def __init__(self, space: str, meeting):
        from rag.config import SpaceConfig
        from rag.embedders import HashingEmbedder

        self._inner = HashingEmbedder(SpaceConfig(provider="hashing", model="e" if space == "en" else "j"))
        self.model_id = self._inner.model_id
        self.meeting = meeting
        self.threads: list[str] = []

    def embed_passages(self, texts):
        return self._inner.embed_passages(texts)

    def embed_query(self, text):
        import threading

        self.threads.append(threading.current_thread().name)
        self.meeting.wait()  # BrokenBarrierError after its timeout when the spaces take turns
        return self._inner.embed_query(text)


def test_a_question_is_embedded_in_both_spaces_at_once_with_the_same_results(tmp_path):
    import threading

    kb = _two_spaces(tmp_path, {"ja": "ja", "*": ["en", "ja"]}, min_en=0.2, min_ja=0.2)
    chunks = [_chunk("e", "the relevance floor says not found", "/floor.md"), _chunk("f", "Chroma holds the vectors", "/store.md"),
              _chunk("j", "関連性の下限で見つからないと答えます", "/floor.ja.md")]
    kb.write("en", chunks[:2], kb.embedder("en").embed_passages([c.text for c in chunks[:2]]))
    kb.write("ja", chunks, kb.embedder("ja").embed_passages([c.text for c in chunks]))
    question = "what does the relevance floor say"
    one_by_one = kb.retriever
    one_by_one._dense_all = lambda q, spaces, where: [one_by_one._dense(q, space, where) for space in spaces]
    expected = [(p.id, p.space, p.score, p.cosine) for p in kb.retrieve(question, k=5)]
    assert expected and expected[0][0] == "e"
    # one after another (as before), each space's embedding would wait for the other's: the barrier breaks
    meeting = threading.Barrier(2, timeout=10)
    embedders = {space: _MeetingEmbedder(space, meeting) for space in ("en", "ja")}
    for space, embedder in embedders.items():
        kb.use_embedder(space, embedder)
    kb._retriever = None
    got = [(p.id, p.space, p.score, p.cosine) for p in kb.retrieve(question, k=5)]
    assert got == expected  # the same passages, scores and cosines, bit for bit
    assert embedders["en"].threads[0] != embedders["ja"].threads[0]
    kb.store.close()


# -- the bridge: a space that cannot read the question, searched with the best hits' own vectors ----------
QUESTION_JA = "心筋梗塞の危険因子は？"
OFF_TOPIC_JA = "経費精算の締め日はいつですか？"


def _bridged(tmp_path, **retrieval):
    """English pages in both spaces. e5 (ja) reads the Japanese question and finds two pages about its topic
    first, then two decoys; the answer page sits above e5's floor but below the decoys. In MiniLM (en),
    which cannot read the question (its vector points at the decoys), the answer page is the neighbour
    of the two pages e5 put first."""
    kb = _two_spaces(tmp_path, {"ja": "ja", "*": ["en", "ja"]}, min_en=0.5, min_ja=0.85, **retrieval)
    e = np.eye(6, dtype=np.float32)
    pages = {  # id: (text, e5 vector, MiniLM vector)
        "first": ("Smoking and high blood pressure raise the chance of an infarct", unit(1, 0.1, 0, 0, 0, 0), unit(0, 1, 0.1, 0, 0, 0)),
        "second": ("Obesity is linked with coronary disease", unit(1, 0.15, 0, 0, 0, 0), unit(0, 1, 0, 0.1, 0, 0)),
        "decoy1": ("Coronary stents are made of metal mesh", unit(1, 0.25, 0, 0, 0, 0), e[2]),
        "decoy2": ("Cardiac surgeons train for many years", unit(1, 0.3, 0, 0, 0, 0), e[3]),
        "answer": ("Diabetes and high cholesterol also add to that chance", unit(1, 0.5, 0, 0, 0, 0), e[1]),
        "filler1": ("The museum opens at nine", unit(1, 2, 0, 0, 0, 0), e[4]),
        "filler2": ("Trains leave every ten minutes", unit(1, 2.1, 0, 0, 0, 0), e[4]),
    }
    chunks = [_chunk(cid, text, f"/{cid}.md") for cid, (text, _, _) in pages.items()]
    kb.write("ja", chunks, np.stack([v for _, v, _ in pages.values()]))
    kb.write("en", chunks, np.stack([v for _, _, v in pages.values()]))
    queries = {"ja": {QUESTION_JA: e[0], OFF_TOPIC_JA: e[5], "what": e[0]},
               "en": {QUESTION_JA: unit(0, 0, 1, 1, 0, 0), OFF_TOPIC_JA: e[4], "what": e[1]}}
    for space, table in queries.items():
        kb.use_embedder(space, FakeEmbedder(f"hashing:{'e' if space == 'en' else 'j'}", table))
    return kb


def test_a_japanese_question_reaches_the_english_answer_through_the_bridge(tmp_path):
    kb = _bridged(tmp_path)
    hits = kb.retrieve(QUESTION_JA, k=3)
    assert [p.source for p in hits] == ["/first.md", "/second.md", "/answer.md"], [(p.source, round(p.score, 3)) for p in hits]
    assert hits[2].space == "ja" and hits[2].cosine == pytest.approx(0.894, abs=1e-3)  # judged by e5, not by the bridge
    assert "bridge:en" in {c.name for c in kb.retriever.candidates(QUESTION_JA).channels}
    off = _bridged(tmp_path / "off", bridge={"k": 0})  # without it, the answer page comes after the decoys
    assert [p.source for p in off.retrieve(QUESTION_JA, k=5)][-1] == "/answer.md"
    kb.store.close()
    off.store.close()


def test_the_bridge_finds_nothing_for_an_off_topic_question_and_leaves_english_ones_alone(tmp_path):
    kb = _bridged(tmp_path)
    assert kb.retrieve(OFF_TOPIC_JA, k=5) == []  # e5 cosines 0 everywhere: still "not found"
    assert kb.retriever.ranked(OFF_TOPIC_JA, 5, floor=False)  # though the bridge did rank pages
    english = kb.retriever.candidates("what raises the chance of a heart attack", lang="en")
    assert not any(c.name.startswith("bridge:") for c in english.channels)  # both spaces read English: no extra search
    kb.store.close()


def test_the_bridge_counts_as_much_as_the_best_hits_are_in_its_space(tmp_path):
    # a Japanese question over Japanese pages and one English page: MiniLM holds one of the five best hits
    kb = _two_spaces(tmp_path, {"ja": "ja", "*": ["en", "ja"]}, min_en=0.5, min_ja=0.85)
    e = np.eye(4, dtype=np.float32)
    ja = [_chunk(f"j{i}", f"日本語のページ{i}です", f"/j{i}.md") for i in range(4)]
    en = _chunk("e", "An English page about the same thing", "/e.md")
    kb.write("ja", [*ja, en], np.stack([unit(1, 0.1 * i, 0, 0) for i in range(5)]))
    kb.write("en", [en], e[1:2])
    for space, vec in (("ja", e[0]), ("en", e[2])):
        kb.use_embedder(space, FakeEmbedder(f"hashing:{'e' if space == 'en' else 'j'}", {QUESTION_JA: vec}))
    found = kb.retriever.candidates(QUESTION_JA)
    bridge = next(c for c in found.channels if c.name == "bridge:en")
    seeds = kb.retriever.fused(Candidates([c for c in found.channels if c is not bridge], found.lang))[:5]
    assert [cid for cid, _ in seeds][-1] == "e"  # the English page is the fifth best
    assert bridge.weight == pytest.approx(seeds[-1][1] / sum(s for _, s in seeds))  # its share of the five, not 1.0
    assert 0 < bridge.weight < 0.2
    kb.store.close()
