"""Query latency of hybrid retrieval (embed + dense search + keyword search + fuse + floor) at scale.

The store is filled with synthetic chunks: texts of 60 words drawn from a Zipf distribution
over a 30,000-word vocabulary (English-like word frequencies), and random unit vectors of the
model's dimension (Chroma's HNSW cost depends on the count and dimension, not on the meaning).
Questions are real English sentences embedded by the real default models, so the embed step is
what users pay. By default every chunk is written to both spaces, as the bilingual default
stores English text (MiniLM and e5): each question is embedded by both models, searched in
both collections, and in the keyword index with its terms translated (JMdict); `--spaces en`
gives the English-only figure. Also measured: the cost of (re)building the keyword index's BM25 matrix after
an ingest, and of indexing the chunks' words.

    python benchmarks/bench_latency.py [--sizes 10000,100000] [--queries 200]

`--store-dir DIR` keeps each size's store in DIR/<size>-<spaces> and re-uses it on the next run
(the write and BM25-matrix columns are then those of the first run; the query figures are new).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from report import measured_on, write_section  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from rag.config import StoreConfig  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402
from rag.keywords import LocalKeywordIndex  # noqa: E402
from rag.knowledge import KnowledgeBase  # noqa: E402
from rag.records import Chunk, Locator  # noqa: E402
from rag.store import VectorStore  # noqa: E402

START, END = "<!-- latency:start -->", "<!-- latency:end -->"
QUESTIONS = [
    "How do I switch the embedding model to OpenAI?",
    "What happens to deleted files when I re-ingest?",
    "Which vitamins reduce the risk of heart disease?",
    "Does the bot answer direct messages on Discord?",
    "How long does the index take to rebuild after a crash?",
    "Where are the transcripts' timestamps shown in citations?",
    "Can several workers share one Chroma server?",
    "What is the relevance floor and when does it say not found?",
]


def synthetic(n: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(30_000)])
    words = rng.zipf(1.3, size=(n, 60)) % len(vocab)
    texts = [" ".join(vocab[row]) for row in words]
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors


def bench(n: int, queries: int, embedders: dict, store_dir: Path | None = None) -> dict:
    config = AppConfig()
    if store_dir is None:
        work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    else:
        work = store_dir / f"{n}-{'-'.join(embedders)}"
        work.mkdir(parents=True, exist_ok=True)
    built = work / "built.json"
    try:
        store = VectorStore.open(StoreConfig(path=str(work / "chroma")), work)
        keywords = LocalKeywordIndex(work / "keywords.sqlite", config.retrieval.keyword)
        kb = KnowledgeBase(config.embedding, store, embedders=embedders, retrieval=config.retrieval, keywords=keywords)
        if built.exists():  # kept from an earlier run (--store-dir)
            write_s, matrix_s = json.loads(built.read_text())
            keywords.warm()
        else:
            texts, vectors = synthetic(n, 384)
            started = time.perf_counter()
            step = 5000
            for i in range(0, n, step):
                chunks = [Chunk(f"c{j}", texts[j], f"/synthetic/{j // 10}.md", Locator(), {"ordinal": j % 10}) for j in range(i, min(i + step, n))]
                for space in embedders:
                    kb.write(space, chunks, vectors[i : i + step])
            write_s = time.perf_counter() - started
            started = time.perf_counter()
            keywords._all = None
            keywords.warm()
            matrix_s = time.perf_counter() - started
            if store_dir is not None:
                built.write_text(json.dumps([write_s, matrix_s]))
        # questions sprinkled with corpus words so BM25 has hits to fuse
        rng = np.random.default_rng(1)
        qs = [f"{QUESTIONS[i % len(QUESTIONS)]} w{rng.integers(0, 3000)} w{rng.integers(0, 3000)}" for i in range(queries)]
        for q in qs[:5]:
            kb.retrieve(q, k=5)  # warm-up
        times = []
        for q in qs:
            t0 = time.perf_counter()
            kb.retrieve(q, k=5)
            times.append((time.perf_counter() - t0) * 1000)
        keywords.close()
        store.close()
        return {
            "chunks": n,
            "p50_ms": round(float(np.percentile(times, 50)), 1),
            "p95_ms": round(float(np.percentile(times, 95)), 1),
            "write_s": round(write_s, 1),
            "bm25_matrix_s": round(matrix_s, 2),
        }
    finally:
        if store_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--spaces", default="en,ja", help="spaces every chunk is written to (en,ja: the bilingual default)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--store-dir", type=Path, help="keep the synthetic stores here and re-use them (iterating)")
    args = parser.parse_args()
    embedders = {space: build_embedder(AppConfig().embedding.spaces[space]) for space in args.spaces.split(",")}
    for embedder in embedders.values():
        embedder.embed_query("warm up")
    rows = [bench(int(n), args.queries, embedders, args.store_dir) for n in args.sizes.split(",")]
    start = START if args.spaces == "en" else "<!-- latency-bilingual:start -->"
    lines = [
        start,
        f"{measured_on()}, by `python benchmarks/bench_latency.py`. "
        + ("Both spaces populated (each chunk in MiniLM `en` and e5 `ja`, as the bilingual default stores English), "
           if len(embedders) > 1 else "English space only (all-MiniLM-L6-v2), ")
        + "embedded Chroma, keyword channel on (with JMdict translation), k=5, "
        f"{args.queries} questions. Synthetic chunks: 60 Zipf-distributed words from a 30k vocabulary, random unit vectors.",
        "",
        "| chunks | p50 ms | p95 ms (target < 50 at 100k) | write (vectors + keyword tokens) s | BM25 matrix build s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['chunks']:,} | {r['p50_ms']} | {r['p95_ms']} | {r['write_s']} | {r['bm25_matrix_s']} |")
    lines.append(start.replace(":start", ":end"))
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        title = "Query latency" if start == START else "Query latency with the bilingual default"
        write_section(text, start, start.replace(":start", ":end"), title)


if __name__ == "__main__":
    main()
