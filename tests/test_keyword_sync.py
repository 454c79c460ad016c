"""The keyword channel follows the store across processes (server mode) and stays exact in place.

Fast tier: two SharedKeywordIndex over one in-process Chroma collection stand for two processes
(they share nothing but the collection, as two workers share nothing but the server). The real
thing: two knowledge bases on a real `chroma run`, with their own data dirs.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest

from rag.config import KeywordConfig
from rag.keywords import LocalKeywordIndex, SharedKeywordIndex, _Matrix
from tests.conftest import fast_config


@pytest.fixture
def collection():
    import chromadb
    from chromadb.config import Settings

    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    name = f"t{uuid.uuid4().hex[:12]}-keywords"
    yield lambda: client.get_or_create_collection(name, embedding_function=None)
    client.delete_collection(name)


def hits(index, query: str) -> set[str]:
    return {cid for (_, cid), _ in index.search_all(query, 10)}


def test_a_second_process_sees_adds_changes_and_deletions(collection):
    writer = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    reader = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    writer.add("en", ["a", "b"], ["The zorblax reactor hums", "Meeting rooms are booked weekly"])
    assert hits(reader, "zorblax") == {"a"}  # a reader that never wrote loads what is there
    writer.add("en", ["c"], ["A second zorblax appears"])
    reader.refresh()
    assert hits(reader, "zorblax") == {"a", "c"}
    writer.add("en", ["a"], ["The quuxifier reactor hums"])  # changed: the old word goes, the new one comes
    reader.refresh()
    assert hits(reader, "zorblax") == {"c"} and hits(reader, "quuxifier") == {"a"}
    writer.delete("en", ["c"])
    reader.refresh()
    assert hits(reader, "zorblax") == set() and reader.count("en") == 2
    assert reader.stats["loads"] == 1 and reader.stats["pulls"] == 3  # one load, then only the changes were read


def test_a_chunk_in_two_spaces_stays_until_its_last_copy_goes(collection):
    writer = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    reader = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    writer.add("en", ["a"], ["zorblax reactor"])
    writer.add("ja", ["a"], ["zorblax reactor"])
    assert reader.spaces_of(["a"]) == {"a": {"en", "ja"}}
    writer.delete("en", ["a"])
    reader.refresh()
    assert hits(reader, "zorblax") == {"a"} and reader.spaces_of(["a"]) == {"a": {"ja"}}
    writer.delete("ja", ["a"])
    reader.refresh()
    assert hits(reader, "zorblax") == set()


def test_dropping_a_space_makes_every_process_reload(collection):
    writer = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    reader = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    writer.add("en", ["a"], ["zorblax reactor"])
    writer.add("ja", ["b"], ["zorblax ジャパン"])
    assert hits(reader, "zorblax") == {"a", "b"}
    writer.drop("en")
    reader.refresh()
    assert hits(reader, "zorblax") == {"b"} and reader.stats["loads"] == 2
    assert hits(writer, "zorblax") == {"b"}


def test_refresh_is_rate_limited(collection):
    writer = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    reader = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=60)
    writer.add("en", ["a"], ["zorblax reactor"])
    assert hits(reader, "zorblax") == {"a"}
    checks = reader.stats["checks"]
    writer.add("en", ["b"], ["zorblax again"])
    for _ in range(5):
        reader.refresh()
    assert reader.stats["checks"] == checks and hits(reader, "zorblax") == {"a"}  # not yet: within refresh_s
    reader.refresh(force=True)
    assert hits(reader, "zorblax") == {"a", "b"}


def test_a_write_under_a_late_clock_is_still_seen(collection, monkeypatch):
    """Generations never go below the head's: a writer whose clock is behind still moves it forward."""
    ahead = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    behind = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    reader = SharedKeywordIndex(collection(), KeywordConfig(), refresh_s=0)
    ahead.add("en", ["a"], ["zorblax"])
    assert hits(reader, "zorblax") == {"a"}
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() - 3600 * 10**9)  # an hour behind
    behind.add("en", ["b"], ["zorblax"])
    reader.refresh()
    assert hits(reader, "zorblax") == {"a", "b"}


def test_in_place_updates_rank_as_a_fresh_build():
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(300)]
    docs = {f"c{i}": [rng.choice(vocab) for _ in range(rng.randint(3, 30))] for i in range(400)}
    for b in (0.0, 0.75):
        matrix = _Matrix([("en", cid) for cid in docs], list(docs.values()), 1.2, b)
        current = dict(docs)
        for step in range(200):
            cid = f"c{rng.randint(0, 520)}"
            if rng.random() < 0.3 and cid in current:
                del current[cid]
                matrix.update({}, [cid])
            else:
                current[cid] = [rng.choice(vocab) for _ in range(rng.randint(3, 30))]
                matrix.update({cid: ({"en"}, current[cid])})
        fresh = _Matrix([("en", cid) for cid in current], list(current.values()), 1.2, b)
        for q in range(30):
            terms = rng.sample(vocab, 3)
            got, want = matrix.search(terms, 1000), fresh.search(terms, 1000)
            assert {key for key, _ in got} == {key for key, _ in want}
            if b == 0.0:  # no length normalisation: the scores are exactly a fresh build's
                assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)
        assert matrix.n == fresh.n and all(matrix.idf_of(t) == pytest.approx(fresh.idf_of(t)) for t in vocab)
        ids = sorted(set(docs) | set(current)) + ["c999"]  # every chunk, changed, removed, added since, and one never seen
        for q in range(20):  # the relevance decision asks which question terms each candidate holds
            terms = rng.sample(vocab, 4)
            assert matrix.terms_of_many(ids, terms) == {cid: set(terms) & set(current.get(cid, ())) for cid in ids}


def test_local_index_follows_writes_without_a_rebuild():
    index = LocalKeywordIndex(None, KeywordConfig())
    index.add("en", ["a"], ["zorblax reactor"])
    index.warm()
    built = index._all
    index.add("en", ["b"], ["zorblax again"])
    index.delete("en", ["a"])
    assert hits(index, "zorblax") == {"b"} and index._all is built  # updated in place, not rebuilt


# -- the real thing: two knowledge bases on one `chroma run` -----------------------------------
@pytest.mark.integration
def test_two_workers_on_one_chroma_server(tmp_path, chroma_server, monkeypatch):
    from bot.runtime import open_ingestor, open_knowledge_base

    store = {"mode": "server", "host": "127.0.0.1", "port": chroma_server}
    a, b = fast_config(tmp_path / "a", store=store), fast_config(tmp_path / "b", store=store)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nRagbot answers questions from your documents.\n", encoding="utf-8")
    with open_knowledge_base(a) as kb_a, open_knowledge_base(b) as kb_b:
        kb_b.keywords.refresh_s = 0  # B takes in the feed at each search: what it sees, not how soon (bench_keyword_sync times that)
        def keyword_hits(word):  # the sources of B's keyword hits that B's vector store still holds
            hits = kb_b.keywords.search_all(word, 10)  # (the keyword channel may lag a deletion by one refresh: retrieval skips those)
            found = [kb_b.passages(space, [cid], vectors=False).get(cid) for (space, cid), _ in hits]
            return {p[0].source for p in found if p is not None}

        def ingest():
            with open_ingestor(a, kb_a) as ingestor:
                return ingestor.run([docs])

        from rag.floor import FloorRetriever

        def b_finds(question):  # B's whole search, dense and keyword: the sources it returns
            return {p.source for p in FloorRetriever(kb_b).retrieve(question, 3)}

        assert keyword_hits("zorblaxian") == set()
        assert b_finds("zorblaxian protocol") == set()  # B has searched an empty store (and remembers it was empty)
        (docs / "new.md").write_text("# New\n\nThe zorblaxian protocol replaced the old one.\n", encoding="utf-8")
        assert ingest().added == 2
        assert len(keyword_hits("zorblaxian")) == 1  # B never ingested; its keyword channel has it
        # B remembered the space as empty; once that verdict is due for a recheck (B's store clock moved past
        # it, no waiting), its whole search finds the new page
        kb_b.store.clock = lambda: time.monotonic() + kb_b.store.HOLDS_RECHECK_S
        assert str(docs / "new.md") in b_finds("zorblaxian protocol")
        (docs / "new.md").write_text("# New\n\nThe quuxifier protocol replaced the old one.\n", encoding="utf-8")
        assert ingest().updated == 1
        assert keyword_hits("zorblaxian") == set() and len(keyword_hits("quuxifier")) == 1
        assert not kb_b.keywords.search_all("zorblaxian", 10)  # the changed chunk's old tokens left B's channel
        (docs / "new.md").unlink()
        assert ingest().deleted == 1
        assert keyword_hits("quuxifier") == set()
        assert not kb_b.keywords.search_all("quuxifier", 10)  # and the deleted one's
        assert kb_b.keywords.count("en") == kb_a.count("en")

    # a worker started with an empty data dir, the sources gone: the full keyword channel, nothing re-analysed
    (docs / "guide.md").unlink()
    fresh = fast_config(tmp_path / "c", store=store)
    import rag.keywords

    def no_analysis(*args):
        raise AssertionError("a chunk was analysed again")

    monkeypatch.setattr(rag.keywords, "_token_string", no_analysis)
    with open_knowledge_base(fresh) as kb_c:
        assert kb_c.sync_keywords() == 0
        found = kb_c.keywords.search_all("documents", 10)
        assert kb_c.keywords.stats["loads"] == 1
        assert [kb_c.passages(s, [cid], vectors=False)[cid][0].source for (s, cid), _ in found] == [str(docs / "guide.md")]
    assert not any((tmp_path / "c").glob("keywords*"))


def test_single_process_default_needs_no_server(app_config, tmp_path):
    """Embedded store: the keyword index is a file in the data dir, as before."""
    from bot.runtime import keywords_path, open_ingestor, open_knowledge_base

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "new.md").write_text("# New\n\nThe zorblaxian protocol replaced the old one.\n", encoding="utf-8")
    with open_knowledge_base(app_config) as kb, open_ingestor(app_config, kb) as ingestor:
        ingestor.run([docs])
        assert isinstance(kb.keywords, LocalKeywordIndex) and len(kb.keywords.search_all("zorblaxian", 5)) == 1
    assert keywords_path(app_config).exists()


# -- the shape: the knowledge base is the only door; retrieval does not import it back ---------
def _kb_reach_ins(path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("store", "_embedders", "_keywords"):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "kb":
                found.append(f"{path.name}:{node.lineno} kb.{node.attr}")
    return found


def test_only_the_knowledge_base_touches_the_store_and_the_embedders():
    from tests.conftest import REPO

    paths = [*REPO.glob("ingest/*.py"), *REPO.glob("evaluation/*.py"), *REPO.glob("bot/*.py"), *REPO.glob("rag/*.py")]
    reach_ins = [hit for path in paths if path.name != "knowledge.py" for hit in _kb_reach_ins(path)]
    assert reach_ins == []


def test_retrieval_does_not_import_the_knowledge_base():
    import ast

    from tests.conftest import REPO

    tree = ast.parse((REPO / "rag" / "retrieval.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "rag.knowledge" not in imported and "rag.floor" not in imported


def test_a_lost_server_while_writing_keywords_is_one_line_naming_it():
    import httpx

    from rag.errors import StoreUnavailableError

    class Gone:
        def get(self, **kwargs):
            raise httpx.ConnectError("connection refused")

        upsert = delete = get

    index = SharedKeywordIndex(Gone(), KeywordConfig(), location="http://127.0.0.1:9")
    with pytest.raises(StoreUnavailableError) as lost:
        index.add("en", ["a"], ["zorblax"])
    assert "\n" not in str(lost.value) and "http://127.0.0.1:9" in str(lost.value) and "chroma run" in str(lost.value)
