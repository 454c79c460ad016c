"""Fusion and keyword settings measured on tuning splits (never on the reported test splits).

Runs every channel once per query (vectors from the on-disk benchmark cache), then re-fuses
with each setting to compare: keyword weight, rrf_k, Japanese tokenizer.

    python benchmarks/tune_fusion.py DATASET_DIR SPLIT [--japanese sudachi,bigram,sudachi+bigram]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _cache import CachedEmbedder  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from evaluation.beir import load_dataset  # noqa: E402
from evaluation.metrics import score_all  # noqa: E402
from evaluation.runner import eval_knowledge_base, precompute_queries  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402
from rag.retrieval import Retriever, fuse  # noqa: E402


def doc_of(found, key):
    p = found.passages.get(key)
    return str(p.metadata.get("row_id")) if p is not None else None


def channel_docs(found, retriever):
    """Each channel as a document ranking (best chunk first)."""
    out = []
    for c in found.channels:
        retriever._load(found, c.space, c.ids)
        seen = {}
        for cid in c.ids:
            d = doc_of(found, (c.space, cid))
            if d is not None:
                seen.setdefault(d, None)
        out.append((c.name, list(seen)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("split")
    parser.add_argument("--japanese", default="sudachi+bigram")
    parser.add_argument("--modes", default="B")
    parser.add_argument("--max-queries", type=int, default=0, help="only the first N judged queries")
    args = parser.parse_args()
    base = AppConfig()
    ds = load_dataset(Path(args.dataset), args.split)
    if args.max_queries:
        ds.queries = dict(list(ds.queries.items())[: args.max_queries])
        ds.qrels = {q: ds.qrels[q] for q in ds.queries}
    for japanese, mode in itertools.product(args.japanese.split(","), args.modes.split(",")):
        retrieval = base.retrieval.model_copy(update={"keyword": base.retrieval.keyword.model_copy(update={"japanese": japanese, "sudachi_mode": mode})})
        embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in base.embedding.spaces.items()}
        with eval_knowledge_base(ds, base.embedding, retrieval, base.ingest, embedders) as (kb, report):
            precompute_queries(kb, list(ds.queries.values()))
            retriever = Retriever(kb, retrieval)
            per_query = {qid: channel_docs(retriever.candidates(text), retriever) for qid, text in ds.queries.items()}
        results = []
        for kw_w, rrf_k in itertools.product([0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 99.0], [5, 10, 20, 60]):
            rankings = {}
            for qid, chans in per_query.items():
                rank_lists = [(docs, (kw_w if kw_w < 99 else 1.0) if name.startswith("keyword") else (1.0 if kw_w < 99 else 0.0)) for name, docs in chans]
                rankings[qid] = [d for d, _ in fuse(rank_lists, rrf_k)][:100]
            m = score_all(rankings, ds.qrels)
            results.append((round(m["ndcg@10"], 4), kw_w, rrf_k, round(m["recall@100"], 4)))
        results.sort(reverse=True)
        print(json.dumps({"dataset": args.dataset, "split": args.split, "japanese": japanese, "mode": mode, "chunks": report.chunks,
                          "best": results[:5], "kw=1,k=60": [r for r in results if r[1] == 1.0 and r[2] == 60],
                          "dense_only": [r for r in results if r[1] == 0.0 and r[2] == 60],
                          "bm25_only": [r for r in results if r[1] == 99.0 and r[2] == 60]}), flush=True)


if __name__ == "__main__":
    main()
