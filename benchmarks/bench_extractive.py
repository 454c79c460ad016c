"""Extractive answers in English: do the quoted sentences hold the phrase that answers the question?

The questions in benchmarks/questions/extractive_en.jsonl (our own text) each carry the
phrase that answers them. They ask about the sample corpus and about three transcripts we
wrote in benchmarks/questions/transcripts/ (a meeting as "Speaker: text" lines full of
backchannel, and two podcast episodes with long unpunctuated cues about tools whose names
appear in both). All of it is ingested with the shipped default models into a throw-away
store; each question is answered in extractive mode (no LLM). Scored: the share of answers
whose quoted sentences contain the phrase (case and spacing ignored), the longest bullet, and
bullets that are filler.

Sentence choosers compared on the same retrieved passages, in one run: `previous` (the
chooser shipped before issue #13: shared words and passage rank only, no turn splitting,
filler or length cap) and `current` (rag.extractive.choose_quotes with the answerer's
sentence similarity, as `ragbot ask` runs it).

    python benchmarks/bench_extractive.py [--no-write] [--show]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["OPENAI_API_KEY"] = ""
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from report import measured_on, write_section  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from bot.runtime import build_answerer, open_ingestor, open_knowledge_base  # noqa: E402
import rag.extractive as extractive  # noqa: E402
from rag.extractive import choose_quotes, is_filler  # noqa: E402

START, END = "<!-- extractive:start -->", "<!-- extractive:end -->"
QUESTIONS = REPO / "benchmarks" / "questions"

# -- the chooser as shipped before issue #13 (kept here to measure against) --------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`*])|(?<=[。！？])")
_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]+")
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_MARKUP = re.compile(r"^\s*(?:#+|[-*+]|\d+\.|>)\s+")
_STOP = frozenset(
    """a an the and or but if of to in on at for from by with without as is are was were be been being do does did
    done have has had i you he she it we they me my your our their this that these those there here what which who
    whom whose when where why how can could should would will shall may might must not no yes so than then too very
    just about into over under again also any all each some such only own same other more most much many can't
    don't does doesn't isn't aren't it's get gets got please tell know want need use used using ragbot""".split()
)


def _previous_items(text: str) -> list[str]:
    text = _FENCE.sub("\n\n", text)
    items, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _MARKUP.match(line):
            if current:
                items.append(current)
            current = "" if not stripped or stripped.startswith("#") else _MARKUP.sub("", line).strip()
            continue
        joiner = "" if current and _CJK.match(current[-1]) and _CJK.match(stripped[0]) else " "
        current = f"{current}{joiner}{stripped}" if current else stripped
    if current:
        items.append(current)
    return items


def _previous_sentences(text: str) -> list[str]:
    out = []
    for item in _previous_items(text):
        for piece in _SENTENCE_END.split(item):
            piece = " ".join((piece or "").split())
            if piece and not piece.endswith(("?", "？")) and len(piece) >= (6 if _CJK.search(piece) else 15):
                out.append(piece)
    return out


def _previous_terms(text: str) -> set[str]:
    found = set()
    for word in _WORD.findall(text.lower()):
        if word not in _STOP and len(word) >= 2:
            found.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    for run in _CJK.findall(text):
        found.update([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
    return found


def previous_quotes(question: str, passages, count: int = 3) -> list[str]:
    candidates = [(n, pos, s, _previous_terms(s)) for n, p in enumerate(passages, 1) for pos, s in enumerate(_previous_sentences(p.text))]
    if not candidates:
        return []
    wanted = _previous_terms(question)
    df: dict[str, int] = {}
    for *_, st in candidates:
        for t in st & wanted:
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log(1 + len(candidates) / df.get(t, 0.5)) for t in wanted}
    norm = sum(idf.values()) or 1.0
    scored = sorted(
        ((sum(idf[t] for t in st & wanted) / norm + 0.2 / n + 0.1 / (1 + pos), s) for n, pos, s, st in candidates),
        key=lambda x: -x[0],
    )
    chosen: list[str] = []
    for score, s in scored:
        if s in chosen:
            continue
        if chosen and score < 0.25:
            break
        chosen.append(s)
        if len(chosen) == count:
            break
    return chosen


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--show", action="store_true", help="Print each answer's quotes.")
    parser.add_argument("--weights", default="", help="Also score the current chooser with these MEANING_WEIGHT values, e.g. 0,0.25")
    args = parser.parse_args()
    questions = [json.loads(l) for l in (QUESTIONS / "extractive_en.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]

    work = Path(tempfile.mkdtemp(prefix="ragbot-extractive-"))
    weights = [float(w) for w in args.weights.split(",") if w.strip()]
    shipped = extractive.MEANING_WEIGHT
    grid = sorted(set(weights) | {shipped})
    names = ["previous", *(f"current, meaning weight {w:g}" + (" (shipped)" if w == shipped else "") for w in grid)]
    stats = {name: {"hit": 0, "dev": 0, "held": 0, "longest": 0, "filler": 0, "bullets": 0} for name in names}
    found = 0
    try:
        config = AppConfig.model_validate({"data_dir": str(work / "data"), "llm": {"provider": "extractive"}})
        with open_knowledge_base(config) as kb:
            with open_ingestor(config, kb) as ingestor:
                ingestor.run([REPO / "samples", QUESTIONS / "transcripts"])
            answerer = build_answerer(config, kb)
            cache: dict = {}

            def similarity(question, sentences, space):  # the same sentences for every weight: embed once
                key = (question, tuple(sentences), space)
                if key not in cache:
                    cache[key] = kb.sentence_similarity(question, sentences, space)
                return cache[key]

            for line, item in enumerate(questions):
                answer = answerer.answer(item["q"])
                if not answer.found:
                    if args.show:
                        print(f"NOT FOUND {item['q']}")
                    continue
                found += 1
                passages = list(answer.passages)
                runs = {"previous": previous_quotes(item["q"], passages, config.answer.extractive_sentences)}
                for name in names[1:]:
                    extractive.MEANING_WEIGHT = float(name.split("meaning weight ")[1].split(" ")[0])
                    runs[name] = [q.text for q in choose_quotes(item["q"], passages, config.answer.extractive_sentences, similarity)]
                extractive.MEANING_WEIGHT = shipped
                for name, quotes in runs.items():
                    s = stats[name]
                    hit = _norm(item["answer"]) in _norm(" ".join(quotes))
                    s["hit"] += hit
                    s["dev" if line % 2 == 0 else "held"] += hit  # even lines tune, odd lines only report
                    s["bullets"] += len(quotes)
                    s["longest"] = max([s["longest"], *(len(q) for q in quotes)])
                    s["filler"] += sum(is_filler(q) for q in quotes)
                    if args.show:
                        print(f"{'OK ' if hit else 'BAD'} {name:<8} {item['q']} -> {' | '.join(q[:120] for q in quotes)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(questions)
    lines = [
        START,
        f"{measured_on()} (a machine shared with other engineers' tests and benchmarks), by `python benchmarks/bench_extractive.py`: {n} English questions "
        "(`benchmarks/questions/extractive_en.jsonl`) over the sample corpus and three transcripts we wrote "
        f"(`benchmarks/questions/transcripts/`), default models, extractive mode; {found}/{n} answered (not \"not found\"). "
        "Both choosers quote from the same retrieved passages. Dev half: the even lines (0, 2, ...), the only ones the "
        "chooser's weights were tuned on; held-out half: the odd lines.",
        "",
        f"| sentence chooser | dev half ({(n + 1) // 2}) | held-out half ({n // 2}) | all: quoted sentences contain the answer phrase | longest bullet (chars) | filler bullets |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        lines.append(
            f"| {name} | {s['dev']} | {s['held']} | {s['hit']}/{n} ({s['hit'] / n:.0%}) | {s['longest']} | {s['filler']}/{s['bullets']} |"
        )
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Extractive answers in English")


if __name__ == "__main__":
    main()
