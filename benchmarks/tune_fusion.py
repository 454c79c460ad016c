"""Fusion settings measured on tuning splits (never on the reported test splits).

Runs every channel of the real retriever once per query (passage vectors from the on-disk
benchmark cache), keeps each channel's chunk ranking with its scores, then re-fuses them with
each candidate setting exactly as `rag.retrieval` fuses (chunk level, then a document ranks
where its best chunk ranks) and prints nDCG@10 per setting, best first:

- reciprocal rank fusion: keyword weight x rrf_k;
- score fusion: each channel's scores min-max scaled within the question's list, weighted sum.

    python benchmarks/tune_fusion.py DATASET_DIR SPLIT [--max-queries N] [--japanese sudachi+bigram]
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
from evaluation.runner import DEPTH, eval_knowledge_base, precompute_queries  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402
from rag.retrieval import Retriever, _by_space, fuse, fuse_scores  # noqa: E402

KEYWORD_WEIGHTS = [0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, None]  # None: keyword channel alone
RRF_KS = [5, 10, 20, 60]


def collect(retriever: Retriever, question: str):
    """Each channel as (name, chunk ids, scores), with chunk id -> document id.

    Fusion here is by chunk id without the retriever's per-chunk reach normalisation, which
    changes nothing when every chunk sits in the same spaces (one-language corpora).
    """
    found = retriever.candidates(question)
    docs = {}
    for c in found.channels:
        for space, ids in _by_space(c.keys).items():
            retriever._load(found, space, ids)
    for cid, p in found.passages.items():
        docs[cid] = str(p.metadata.get("row_id"))
    return [(c.name, [cid for _, cid in c.keys], c.scores) for c in found.channels], docs


def doc_ranking(fused, docs):
    seen = {}
    for key, _ in fused:
        doc = docs.get(key)
        if doc is not None:
            seen.setdefault(doc, None)
            if len(seen) >= DEPTH:
                break
    return list(seen)


def weights_for(name: str, kw: float | None, weights: dict[str, float]) -> float:
    if name == "keyword":
        return 1.0 if kw is None else kw
    if kw is None:
        return 0.0
    return weights[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("split")
    parser.add_argument("--japanese", default=None, help="Japanese keyword tokens (default: the configured ones)")
    parser.add_argument("--max-queries", type=int, default=0, help="only the first N judged queries")
    args = parser.parse_args()
    base = AppConfig()
    ds = load_dataset(Path(args.dataset), args.split)
    if args.max_queries:
        ds.queries = dict(list(ds.queries.items())[: args.max_queries])
        ds.qrels = {q: ds.qrels[q] for q in ds.queries}
    retrieval = base.retrieval
    if args.japanese:
        retrieval = retrieval.model_copy(update={"keyword": retrieval.keyword.model_copy(update={"japanese": args.japanese})})
    embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in base.embedding.spaces.items()}
    with eval_knowledge_base(ds, base.embedding, retrieval, base.ingest, embedders) as (kb, report):
        precompute_queries(kb, list(ds.queries.values()))
        retriever = Retriever(kb, retrieval)
        per_query = {}
        for qid, text in ds.queries.items():
            channels = retriever.candidates(text).channels  # the shipped weights of each channel for this question
            per_query[qid] = (collect(retriever, text), {c.name: c.weight for c in channels})
    results = []
    settings = [("rrf", kw, k) for kw, k in itertools.product(KEYWORD_WEIGHTS, RRF_KS)]
    settings += [("score", kw, 0) for kw in KEYWORD_WEIGHTS]
    for method, kw, rrf_k in settings:
        rankings = {}
        for qid, ((channels, docs), shipped) in per_query.items():
            weighted = [(keys, scores, weights_for(name, kw, shipped)) for name, keys, scores in channels]
            if method == "rrf":
                fused = fuse([(keys, w) for keys, _, w in weighted], rrf_k)
            else:
                fused = fuse_scores(weighted)
            rankings[qid] = doc_ranking(fused, docs)
        m = score_all(rankings, ds.qrels)
        results.append({"ndcg@10": round(m["ndcg@10"], 4), "method": method, "keyword_weight": kw, "rrf_k": rrf_k,
                        "recall@100": round(m["recall@100"], 4)})
    results.sort(key=lambda r: -r["ndcg@10"])
    print(json.dumps({"dataset": args.dataset, "split": args.split, "queries": len(ds.queries), "chunks": report.chunks}))
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
