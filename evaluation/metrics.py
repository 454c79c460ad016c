"""Ranking metrics as BEIR / pytrec_eval compute them, for one query at a time.

`ranking` is the retrieved document ids, best first; `qrels` maps relevant document ids to
their graded relevance (0 or less counts as not relevant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain at k, with linear gains (pytrec_eval's ndcg_cut)."""
    dcg = sum(qrels.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], 1) if qrels.get(doc, 0) > 0)
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = {doc for doc, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top k (0 if none)."""
    for rank, doc in enumerate(ranking[:k], 1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_all(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over the judged queries."""
    names = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
    totals = dict.fromkeys(names, 0.0)
    judged = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    for qid in judged:
        ranking = rankings.get(qid, [])
        rel = qrels[qid]
        totals["ndcg@10"] += ndcg_at_k(ranking, rel, 10)
        totals["recall@10"] += recall_at_k(ranking, rel, 10)
        totals["recall@100"] += recall_at_k(ranking, rel, 100)
        totals["mrr@10"] += mrr_at_k(ranking, rel, 10)
    n = max(len(judged), 1)
    return {name: value / n for name, value in totals.items()}
