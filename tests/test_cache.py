"""The chunk cache: a warm question reads nothing but its searches from the store, and no process
serves a chunk another process changed or deleted once the keyword channel's feed has told it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rag.cache import ChunkCache, complement, matches
from rag.config import StoreConfig
from rag.records import Chunk, Locator, Passage
from rag.store import VectorStore
from tests.conftest import fast_config


class Reads:
    """Counts what a knowledge base reads from its store by id (the round trips the cache saves)."""

    def __init__(self, store: VectorStore, monkeypatch):
        self.calls = 0
        for name in ("passages", "embeddings"):
            original = getattr(store, name)

            def counted(*args, _original=original, **kwargs):
                self.calls += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, counted)


def _guide(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text(
        "# Guide\n\nRagbot answers questions from your documents.\n\n## Ingest\n\n"
        "Admins run /ragbot-ingest to read the docs folder again.\n\n## Feedback\n\nEach answer has vote buttons.\n",
        encoding="utf-8",
    )
    return folder


def _write(kb, space: str, cid: str, text: str, heading: str) -> None:
    chunk = Chunk(id=cid, text=text, source="/docs/x.md", locator=Locator(heading=heading), metadata={"lang": "en", "set": "default"})
    kb.write(space, [chunk], kb.embedder(space).embed_passages([f"{heading}. {text}"]))  # the heading moves the vector


def test_a_warm_question_reads_only_its_searches_and_finds_the_same(tmp_path, monkeypatch):
    from bot.runtime import open_ingestor, open_knowledge_base

    docs = _guide(tmp_path / "docs")
    cached, plain = fast_config(tmp_path / "a"), fast_config(tmp_path / "b", store={"cache_chunks": 0})
    where = {"set": {"$in": ["default"]}}  # what every bot question carries: its channel's knowledge sets
    found = []
    for config in (cached, plain):
        with open_knowledge_base(config) as kb:
            with open_ingestor(config, kb) as ingestor:
                ingestor.run([docs])
            reads = Reads(kb.store, monkeypatch)
            first = kb.retrieve("Who can run ragbot-ingest?", k=3, where=where)
            before = reads.calls
            second = kb.retrieve("Who can run ragbot-ingest?", k=3, where=where)
            found.append((first, second, before, reads.calls - before))
    (first, second, cold, warm), (plain_first, plain_second, _, plain_warm) = found
    assert first and [(p.id, p.score, p.text, p.metadata) for p in first] == [(p.id, p.score, p.text, p.metadata) for p in plain_first]
    assert second == first and plain_second == plain_first
    assert cold > 0 and warm == 0  # the second time, no chunk was read again
    assert plain_warm > 0  # and without the cache it would have been


def test_this_process_writes_and_deletes_are_served_at_once(tmp_path):
    from bot.runtime import open_knowledge_base

    with open_knowledge_base(fast_config(tmp_path / "data")) as kb:
        _write(kb, "en", "c1", "Backups run nightly.", "Old heading")
        passage, old = kb.passages("en", ["c1"])["c1"]
        assert passage.locator.heading == "Old heading"
        _write(kb, "en", "c1", "Backups run nightly.", "New heading")  # same id (same text), new metadata and vector
        passage, vector = kb.passages("en", ["c1"])["c1"]
        assert passage.locator.heading == "New heading"
        assert np.array_equal(vector, kb.store.embeddings("en", ["c1"])["c1"]) and not np.allclose(vector, old)
        assert kb.passages("ja", ["c1"]) == {}  # not in that space: remembered as absent ...
        _write(kb, "ja", "c1", "Backups run nightly.", "New heading")
        assert "c1" in kb.passages("ja", ["c1"])  # ... until written there
        kb.delete("en", ["c1"])
        assert kb.passages("en", ["c1"]) == {} and kb.stored_vectors("en", ["c1"]) == {}
        kb.drop("ja")
        assert kb.passages("ja", ["c1"]) == {}


def test_another_process_changes_reach_the_cache_through_the_keyword_feed(tmp_path, chroma_server, monkeypatch):
    from bot.runtime import open_knowledge_base

    store = {"mode": "server", "host": "127.0.0.1", "port": chroma_server}
    with open_knowledge_base(fast_config(tmp_path / "a", store=store)) as kb_a, \
            open_knowledge_base(fast_config(tmp_path / "b", store=store)) as kb_b:
        _write(kb_a, "en", "c1", "Backups run nightly.", "Old heading")
        _write(kb_a, "en", "c2", "Restores take an hour.", "Restores")
        reads = Reads(kb_b.store, monkeypatch)
        assert kb_b.passages("en", ["c1", "c2"]) and reads.calls == 1
        assert kb_b.passages("en", ["c1", "c2"]) and reads.calls == 2  # B follows no feed yet: nothing is kept
        kb_b.keywords.search_all("backups", 5)  # B's first search loads the keyword channel, and with it the feed
        kb_b.passages("en", ["c1", "c2"])
        calls = reads.calls
        assert kb_b.passages("en", ["c1", "c2"])["c1"][0].locator.heading == "Old heading" and reads.calls == calls

        _write(kb_a, "en", "c1", "Backups run nightly.", "New heading")  # A rewrites one chunk and deletes the other
        kb_a.delete("en", ["c2"])
        assert kb_b.passages("en", ["c1"])["c1"][0].locator.heading == "Old heading"  # B has not looked at the feed yet
        kb_b.keywords.refresh_s = 0  # B's next read takes in the feed (no waiting for its 0.5 s turn)
        assert kb_b.passages("en", ["c1", "c2"]).keys() == {"c1"}
        assert kb_b.passages("en", ["c1"])["c1"][0].locator.heading == "New heading"
        calls = reads.calls
        kb_b.passages("en", ["c1", "c2"])
        assert reads.calls == calls  # cached again, the deleted one as absent


def test_a_read_that_raced_a_write_is_not_kept():
    cache = ChunkCache(10)
    passage = Passage("old text", "/docs/x.md", Locator(), 0.0, "en", "c1")
    version = cache.version  # a question starts reading c1 ...
    cache.forget([("en", "c1")])  # ... another process's write of c1 arrives meanwhile ...
    cache.put("en", {"c1": (passage, None)}, version)  # ... and the old read comes back
    assert cache.passages("en", ["c1"], vectors=False) == ({}, ["c1"])


def test_entries_age_out_and_the_least_recently_used_go_first():
    now = [0.0]
    cache = ChunkCache(2, max_age_s=60, clock=lambda: now[0])

    def put(cid):
        cache.put("en", {cid: (Passage(cid, "/s", Locator(), 0.0, "en", cid), np.ones(3, dtype=np.float32))}, cache.version)

    put("a"), put("b")
    cache.passages("en", ["a"], vectors=True)  # a used: b is the least recent
    put("c")
    assert cache.passages("en", ["a", "b", "c"], vectors=True)[1] == ["b"]
    now[0] = 61
    assert cache.vectors("en", ["a", "c"]) == ({}, ["a", "c"])
    put("d")
    vector = cache.vectors("en", ["d"])[0]["d"]
    with pytest.raises(ValueError):
        vector[0] = 2.0  # handed to every later question: read-only


def test_filters_decided_on_cached_metadata_agree_with_chroma(tmp_path):
    rows = [
        {"set": "default", "page": 3, "draft": False, "lang": "en"},
        {"set": "hr", "page": 4, "draft": True, "lang": "en"},
        {"set": "legal", "lang": "ja"},
        {"page": 3, "lang": "ja"},
        {"set": "default", "page": 3.0, "lang": "en"},
    ]
    values = {"set": ["default", "hr", "nowhere"], "page": [3, 4], "draft": [True, False], "lang": ["en"]}
    simple = [{key: value} for key, vs in values.items() for value in vs]
    simple += [{key: {op: value}} for key, vs in values.items() for value in vs for op in ("$eq", "$ne")]
    simple += [{key: {op: list(vs[:n])}} for key, vs in values.items() for n in (1, 2) for op in ("$in", "$nin")]
    filters = simple + [{"$and": [a, b]} for a, b in itertools.combinations(simple[:8], 2)]
    filters += [{"$or": [a, b]} for a, b in itertools.combinations(simple[:8], 2)]
    filters += [{"page": {"$gt": 3}}]  # not read here: left to Chroma
    with VectorStore.open(StoreConfig(), tmp_path) as store:
        chunks = [Chunk(id=f"c{i}", text=f"text {i}", source="/s", locator=Locator(), metadata=meta) for i, meta in enumerate(rows)]
        store.upsert("en", "m", chunks, np.eye(len(rows), dtype=np.float32))
        metadata = {c.id: meta for c in chunks for meta in [store.passages("en", [c.id], vectors=False)[c.id][0].metadata]}
        decided = 0
        for where in filters:
            chroma = set(store.passages("en", list(metadata), where=where, vectors=False))
            for cid, meta in metadata.items():
                verdict = matches(where, meta)
                if verdict is not None:
                    decided += 1
                    assert verdict == (cid in chroma), (where, meta)
            outside = complement(where)
            if outside is not None:  # exactly the chunks the filter leaves out (those without the key included)
                assert set(store.passages("en", list(metadata), where=outside, vectors=False)) == set(metadata) - chroma, where
    assert matches({"set": {"$in": ["default", "hr"]}}, {"set": "hr"}) is True  # a channel's sets: always decided here
    assert matches({"page": {"$gt": 3}}, {"page": 4}) is None and complement({"page": {"$gt": 3}}) is None
    assert decided > len(filters) * len(rows) // 2


def test_a_filter_no_chunk_fails_is_not_sent_and_never_lets_another_set_through(tmp_path, monkeypatch):
    from bot.runtime import open_knowledge_base

    with open_knowledge_base(fast_config(tmp_path / "data")) as kb:
        _write(kb, "en", "c1", "Backups run nightly at two.", "Backups")
        sent = []
        query = kb.store._query
        monkeypatch.setattr(kb.store, "_query", lambda space, vector, k, where, include: sent.append(where) or query(space, vector, k, where, include))
        allowed = {"set": {"$in": ["default"]}}
        assert [p.id for p in kb.retrieve("When do backups run?", k=3, where=allowed)] == ["c1"]
        assert sent == [None]  # every chunk is in the allowed set: the search needs no filter

        # another process writes a chunk of a set this channel may not read; this one has not heard of it yet
        secret = Chunk(id="c2", text="Backups of the payroll run nightly at two.", source="/hr/pay.md", locator=Locator(),
                       metadata={"lang": "en", "set": "hr"})
        kb.store.upsert("en", kb.model_id("en"), [secret], kb.embedder("en").embed_passages([secret.indexed_text]))
        found = kb.retrieve("When do payroll backups run?", k=3, where=allowed)
        assert sent[-1] is None and [p.id for p in found] == ["c1"]  # searched unfiltered, yet the hr chunk is not given

        kb.cache.forget([("en", "c2")])  # ... the write reaches this process (the keyword feed): the filter is sent again
        found = kb.retrieve("When do payroll backups run?", k=3, where=allowed)
        assert sent[-1] == allowed and [p.id for p in found] == ["c1"]
        assert "c2" in [p.id for p in kb.retrieve("When do payroll backups run?", k=3, where={"set": {"$in": ["default", "hr"]}})]


def test_sentences_embedded_once_give_the_cosines_a_fresh_embedding_gives(tmp_path):
    """With the bundled MiniLM: an extractive answer's sentences are embedded once, and a kept vector is the one
    the model computes again, bit for bit (the next question over the same passages costs only its own vector)."""
    from bot.config import AppConfig
    from rag.knowledge import KnowledgeBase

    config = AppConfig.model_validate({"data_dir": str(tmp_path / "data")})
    sentences = ["Admins run /ragbot-ingest to read the docs folder again.", "Each answer has vote buttons.",
                 "Backups run nightly at two.", "Ragbot answers questions from your documents."]
    with VectorStore.open(StoreConfig(), tmp_path) as store:
        kb, fresh = KnowledgeBase(config.embedding, store), KnowledgeBase(config.embedding, store)
        embedded = []
        embedder = kb.embedder("en")
        original = embedder.embed_passages
        embedder.embed_passages = lambda texts: embedded.append(list(texts)) or original(texts)
        first = kb.sentence_similarity("Who can re-read the docs?", sentences, "en")
        again = kb.sentence_similarity("When do backups run?", [sentences[2], "Restores take an hour.", sentences[0], sentences[2]], "en")
        assert embedded == [sentences, ["Restores take an hour."]]  # only the new sentence, once
        assert first == fresh.sentence_similarity("Who can re-read the docs?", sentences, "en")
        assert again == fresh.sentence_similarity("When do backups run?", [sentences[2], "Restores take an hour.", sentences[0], sentences[2]], "en")
        assert again[0] == again[3] and max(range(4), key=lambda i: again[i]) in (0, 3)  # and it still reads meaning
