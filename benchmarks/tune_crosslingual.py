"""Fusion weights for questions in the other language, on the cross-lingual tuning sets only.

One ingested corpus per pair (as bench_crosslingual.py: vectors from the benchmark cache), then
every setting of the grid re-ranks the same vectors: `retrieval.other_space_weight` (a space that
cannot read the question: MiniLM for a Japanese question) and `retrieval.keyword.translate_weight`
(the JMdict-translated keyword search, and the question's own words found in the other language).
Both sets are tuning splits (crosslingual/scifact-ja-train, crosslingual/jsquad-valid-en): a
setting chosen here is reported on them as in-sample.

    python benchmarks/tune_crosslingual.py [--only scifact,jsquad] [--other 0,0.3] [--translate 0.5,1,1.5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from bench_crosslingual import PAIRS, REPO, _subset
from _cache import CachedEmbedder

from bot.config import AppConfig
from evaluation.metrics import score_all
from evaluation.runner import eval_knowledge_base, precompute_queries, rank_queries
from rag.embedders import build_embedder
from rag.retrieval import Retriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--only", default="scifact,jsquad")
    parser.add_argument("--other", default="0,0.3")
    parser.add_argument("--translate", default="0.5,1,1.5")
    args = parser.parse_args()
    config = AppConfig()
    grid = list(itertools.product([float(x) for x in args.other.split(",")], [float(x) for x in args.translate.split(",")]))
    for pair in PAIRS:
        if pair[0] not in args.only.split(","):
            continue
        name, root, split, other, other_split, *_ = pair
        with tempfile.TemporaryDirectory() as work:
            native, cross = _subset(args.evaldata / root, split, args.evaldata / other, other_split, None, Path(work))
            embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in config.embedding.spaces.items()}
            with eval_knowledge_base(native, config.embedding, config.retrieval, config.ingest, embedders) as (kb, _):
                precompute_queries(kb, list(native.queries.values()) + list(cross.queries.values()))
                r = config.retrieval
                for other_w, translate_w in grid:
                    setting = r.model_copy(update={
                        "other_space_weight": other_w,
                        "keyword": r.keyword.model_copy(update={"translate_weight": translate_w}),
                    })
                    retriever = Retriever(kb, setting)
                    row = {"pair": name, "other_space_weight": other_w, "translate_weight": translate_w}
                    for side, ds in (("native", native), ("cross", cross)):
                        row[side] = round(score_all(rank_queries(retriever, ds.queries), ds.qrels)["ndcg@10"], 4)
                    row["ratio"] = round(row["cross"] / row["native"], 3)
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
