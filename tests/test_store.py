"""The Chroma store: cosine collections that record their model, one owner per embedded folder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rag.config import StoreConfig
from rag.errors import ModelMismatchError, StoreLockedError
from rag.records import Chunk, Locator
from rag.store import VectorStore


def chunk(i: int, text: str = "text", **locator) -> Chunk:
    return Chunk(id=f"c{i}", text=f"{text} {i}", source="/docs/a.md", locator=Locator(**locator), metadata={"lang": "en"})


def unit(*values) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_query_returns_cosine_similarity_and_locators(tmp_path):
    with VectorStore.open(StoreConfig(), tmp_path) as store:
        store.upsert("en", "m1", [chunk(1, heading="A > B"), chunk(2, page=3)], np.stack([unit(1, 0, 0), unit(0, 1, 0)]))
        hits = store.query("en", unit(1, 0.1, 0), k=2)
    assert [h.id for h in hits] == ["c1", "c2"]
    assert hits[0].score == pytest.approx(0.995, abs=1e-3)
    assert hits[0].locator == Locator(heading="A > B") and hits[1].locator == Locator(page=3)
    assert hits[0].source == "/docs/a.md"


def test_collection_records_model_and_refuses_another(tmp_path):
    with VectorStore.open(StoreConfig(), tmp_path) as store:
        store.upsert("en", "model-a", [chunk(1)], np.stack([unit(1, 0, 0)]))
        assert store.space_info("en") == {"model": "model-a", "dim": 3, "chunks": 1}
        with pytest.raises(ModelMismatchError, match="--rebuild"):
            store.upsert("en", "model-b", [chunk(2)], np.stack([unit(0, 1, 0)]))
        with pytest.raises(ModelMismatchError, match="4-d"):
            store.upsert("en", "model-a", [chunk(3)], np.stack([unit(0, 1, 0, 1)]))


def test_holds_chunks_sees_this_process_writes_at_once(tmp_path):
    """Searches skip empty spaces by a remembered verdict; a write or delete here must not wait for it to expire."""
    with VectorStore.open(StoreConfig(), tmp_path) as store:
        assert not store.holds_chunks("en")  # no collection yet
        store.upsert("en", "m1", [chunk(1)], np.stack([unit(1, 0, 0)]))
        assert store.holds_chunks("en")
        store.delete("en", ["c1"])
        assert not store.holds_chunks("en")
        store.upsert("en", "m1", [chunk(2)], np.stack([unit(1, 0, 0)]))
        assert store.holds_chunks("en")
        store.drop_space("en")
        assert not store.holds_chunks("en")


def test_duplicate_ids_in_one_batch_keep_the_last(tmp_path):
    with VectorStore.open(StoreConfig(), tmp_path) as store:
        a, b = Chunk("same", "first", "/s", Locator()), Chunk("same", "second", "/s", Locator())
        store.upsert("en", "m", [a, b], np.stack([unit(1, 0), unit(0, 1)]))
        assert store.count("en") == 1
        assert store.query("en", unit(0, 1), k=1)[0].text == "second"


def test_second_process_gets_a_clear_error_at_once(tmp_path):
    with VectorStore.open(StoreConfig(), tmp_path):
        code = (
            "import sys; from pathlib import Path; from rag.store import VectorStore; from rag.config import StoreConfig\n"
            f"VectorStore.open(StoreConfig(), Path({str(tmp_path)!r}))"
        )
        # the timeout is the hang guard: two Chroma processes on one folder can block for minutes
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "Another ragbot process is using the store" in proc.stderr
    with VectorStore.open(StoreConfig(), tmp_path):  # released when the owner closed it
        pass
