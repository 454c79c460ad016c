"""Fusion weights for questions in the other language, on the cross-lingual tuning sets only.

One ingested corpus per pair (as bench_crosslingual.py: vectors from the benchmark cache), then
every setting of the grid re-ranks the same vectors: `retrieval.other_space_weight` (a space that
cannot read the question: MiniLM for a Japanese question), `retrieval.keyword.translate_weight`
(the JMdict-translated keyword search, and the question's own words found in the other language)
and the bridged search (`retrieval.bridge.k`, `retrieval.bridge.weight`: the space that cannot
read the question searched with the mean vector of the best hits so far). `--seeds` also tries
where the bridge starts from: `fused` (the shipped: the best fused hits so far), `dense` (the
best hits of the spaces that read the question, dense only), each weighted by score, or
`-uniform`, `-squared` (score squared), `-rank` (1 / rank).
Both sets are tuning splits (crosslingual/scifact-ja-train, crosslingual/jsquad-valid-en): a
setting chosen here is reported on them as in-sample. A question set whose ranking cannot change
between two settings (same translate_weight; the bridge only acts where a space cannot read the
question) is scored once.

    python benchmarks/tune_crosslingual.py [--only scifact,jsquad] [--other 0,0.3] [--translate 0.5,1,1.5]
        [--bridge-k 0,5] [--bridge-weight 1] [--seeds fused]
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


class SeedVariant(Retriever):
    """The bridge started from other seeds than the shipped ones (tuning only)."""

    seeds = "fused"

    def _bridge_seeds(self, found):
        k = self.config.bridge.k
        if self.seeds.startswith("dense"):
            ranked: dict[str, float] = {}
            for c in found.channels:
                if c.name.startswith("dense:") and self.kb.embedding.reads(c.name[6:], found.lang):
                    for (_, cid), score in zip(c.keys, c.scores):
                        ranked[cid] = max(ranked.get(cid, -1.0), score)
            top = sorted(ranked.items(), key=lambda item: -item[1])[:k]
        else:
            top = self.fused(found)[:k]
        if self.seeds.endswith("-uniform"):
            top = [(cid, 1.0) for cid, _ in top]
        elif self.seeds.endswith("-squared"):
            top = [(cid, score * score) for cid, score in top]
        elif self.seeds.endswith("-rank"):
            top = [(cid, 1.0 / rank) for rank, (cid, _) in enumerate(top, 1)]
        return top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--only", default="scifact,jsquad")
    parser.add_argument("--other", default="0,0.3")
    parser.add_argument("--translate", default="0.5,1,1.5")
    parser.add_argument("--bridge-k", default=None, help="comma-separated retrieval.bridge.k values (default: shipped)")
    parser.add_argument("--bridge-weight", default=None, help="comma-separated retrieval.bridge.weight values (default: shipped)")
    parser.add_argument("--seeds", default="fused", help="comma-separated: fused, dense, with -uniform, -squared or -rank")
    args = parser.parse_args()
    config = AppConfig()
    r = config.retrieval
    floats = lambda text: [float(x) for x in text.split(",")]  # noqa: E731
    bridge_k = [int(x) for x in args.bridge_k.split(",")] if args.bridge_k else [r.bridge.k]
    bridge_w = floats(args.bridge_weight) if args.bridge_weight else [r.bridge.weight]
    grid = list(itertools.product(floats(args.other), floats(args.translate), bridge_k, bridge_w, args.seeds.split(",")))
    for pair in PAIRS:
        if pair[0] not in args.only.split(","):
            continue
        name, root, split, other, other_split, *_ = pair
        with tempfile.TemporaryDirectory() as work:
            native, cross = _subset(args.evaldata / root, split, args.evaldata / other, other_split, None, Path(work))
            embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in config.embedding.spaces.items()}
            with eval_knowledge_base(native, config.embedding, config.retrieval, config.ingest, embedders) as (kb, _):
                precompute_queries(kb, list(native.queries.values()) + list(cross.queries.values()))
                done: dict[tuple, float] = {}
                for other_w, translate_w, k, weight, seeds in grid:
                    setting = r.model_copy(update={
                        "other_space_weight": other_w,
                        "keyword": r.keyword.model_copy(update={"translate_weight": translate_w}),
                        "bridge": r.bridge.model_copy(update={"k": k, "weight": weight}),
                    })
                    retriever = type("Tuned", (SeedVariant,), {"seeds": seeds})(kb, setting)
                    row = {"pair": name, "other_space_weight": other_w, "translate_weight": translate_w,
                           "bridge_k": k, "bridge_weight": weight, "seeds": seeds}
                    for side, ds in (("native", native), ("cross", cross)):
                        lang = "en" if (name, side) in (("scifact", "native"), ("jsquad", "cross")) else "ja"
                        # an English question is read by both spaces: other_space_weight and the bridge do not touch it
                        off = k == 0 or weight == 0  # no bridge: one score whatever the seeds
                        key = (side, translate_w) if lang == "en" else (
                            side, other_w, translate_w, *((0, 0.0, "") if off else (k, weight, seeds)))
                        if key not in done:
                            done[key] = round(score_all(rank_queries(retriever, ds.queries), ds.qrels)["ndcg@10"], 4)
                        row[side] = done[key]
                    row["ratio"] = round(row["cross"] / row["native"], 3)
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
