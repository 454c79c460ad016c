"""Where the relevance floor (embedding.spaces.<name>.min_score) should sit, per default model.

On a tuning split: the cosine similarity of each question to its relevant document's best
chunk (what the floor must keep), against the top-1 similarity of questions about other
things (another data set's questions against this corpus: what the floor should cut).

    python benchmarks/calibrate_floor.py [en] [ja]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _cache import CachedEmbedder  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from evaluation.beir import load_dataset  # noqa: E402
from evaluation.runner import eval_knowledge_base  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402

E = REPO.parent / "shared" / "evaldata"
CASES = [  # space, tuning corpus + split, off-topic questions (another data set)
    ("en", E / "beir-scifact", "train", E / "stackfaq" / "retrieval", "test"),
    ("ja", E / "jglue-jsquad" / "retrieval-valid", "test", E / "beir-scifact", "train"),
]


def main() -> None:
    config = AppConfig()
    only = set(sys.argv[1:])
    for space, root, split, other, other_split in CASES:
        if only and space not in only:
            continue
        ds = load_dataset(root, split)
        off = list(load_dataset(other, other_split).queries.values())[:300]
        embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in config.embedding.spaces.items()}
        with eval_knowledge_base(ds, config.embedding, config.retrieval, config.ingest, embedders) as (kb, _):
            emb = kb.embedder(space)
            relevant = []
            for qid, text in ds.queries.items():
                hits = kb.store.query(space, emb.embed_query(text), 50)
                best = [h.score for h in hits if str(h.metadata.get("row_id")) in ds.qrels[qid]]
                if best:
                    relevant.append(max(best))
            offtopic = [kb.store.query(space, emb.embed_query(q), 1)[0].score for q in off]
        rel, offt = np.array(relevant), np.array(offtopic)
        print(json.dumps({
            "space": space, "corpus": root.name, "split": split,
            "relevant_best_chunk_cosine_p1_p5_p50": np.percentile(rel, [1, 5, 50]).round(3).tolist(),
            "offtopic_top1_cosine_p50_p95_max": np.percentile(offt, [50, 95, 100]).round(3).tolist(),
            "kept_at_floor": {f: round(float((rel >= f).mean()), 3) for f in (0.2, 0.25, 0.3, 0.75, 0.78, 0.8)},
            "offtopic_cut_at_floor": {f: round(float((offt < f).mean()), 3) for f in (0.2, 0.25, 0.3, 0.75, 0.78, 0.8)},
        }), flush=True)


if __name__ == "__main__":
    main()
