"""Follow-up questions without an LLM: does the rewritten follow-up retrieve the right passage?

The pairs in benchmarks/questions/sample_followups.jsonl (our own text, over the sample
corpus) each hold a first question, a follow-up that leans on it, and where the answer to the
follow-up lives (the source file, and a heading the passage's locator names; empty for a
transcript). The sample corpus is ingested with the shipped default models into a throw-away
store; for each pair the first question is answered (extractive mode, as `ragbot chat` does),
then the follow-up is rewritten and retrieved through the answer path's relevance floor.
Scored: the top passage is the expected one (top-1), or one of the top three (hit@3).

Rewrites compared in one run: `none` (the follow-up alone), `previous` (the rewrite shipped
before: every key term of the previous question appended) and `current`
(rag.conversation.rewrite_without_llm).

    python benchmarks/bench_followups.py [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from report import measured_on, write_section  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from bot.runtime import build_answerer, open_ingestor, open_knowledge_base  # noqa: E402
from rag.conversation import Conversation, key_terms, looks_like_follow_up, rewrite_without_llm  # noqa: E402
from rag.lang import detect_lang  # noqa: E402

START, END = "<!-- followups:start -->", "<!-- followups:end -->"
PAIRS = REPO / "benchmarks" / "questions" / "sample_followups.jsonl"


_OPENER_EN = re.compile(
    r"^\s*(and|or|but|also|what about|how about|same for|then|so|how come|is that|does that|"
    r"can it|can they|do they|does it|is it|are they)\b",
    re.IGNORECASE,
)
_PRONOUN_EN = re.compile(r"\b(it|its|they|them|their|that|this|those|these|he|she|him|her)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")


def previous_looks_like_follow_up(question: str) -> bool:
    """Follow-up detection as shipped before issue #13."""
    if detect_lang(question) == "ja":
        return looks_like_follow_up(question)  # unchanged for Japanese
    words = _WORD.findall(question.lower())
    return len(words) <= 4 or bool(_OPENER_EN.search(question)) or (len(words) <= 7 and bool(_PRONOUN_EN.search(question)))


def previous_rewrite(conversation: Conversation, question: str) -> str:
    """The rewrite as shipped before issue #13: the follow-up plus all the previous key terms."""
    if not conversation or not previous_looks_like_follow_up(question):
        return question
    return f"{question.strip()} ({key_terms(conversation.turns[-1].standalone)})"


REWRITES = {
    "none": lambda conversation, question: question,
    "previous": previous_rewrite,
    "current": rewrite_without_llm,
}


def _matches(passage, pair: dict) -> bool:
    if pair["source"] not in Path(passage.source).name:
        return False
    return not pair["heading"] or pair["heading"] in passage.locator.label()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--show", action="store_true", help="Print each rewrite and its top passage.")
    args = parser.parse_args()
    pairs = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]

    work = Path(tempfile.mkdtemp(prefix="ragbot-followups-"))
    scores = {name: {"top1": 0, "hit3": 0} for name in REWRITES}
    try:
        config = AppConfig.model_validate({"data_dir": str(work / "data"), "llm": {"provider": "extractive"}})
        with open_knowledge_base(config) as kb:
            with open_ingestor(config, kb) as ingestor:
                ingestor.run([REPO / "samples"])
            answerer = build_answerer(config, kb)
            for pair in pairs:
                conversation = Conversation(config.answer.history_turns)
                answerer.answer(pair["first"], conversation)
                for name, rewrite in REWRITES.items():
                    standalone = rewrite(conversation, pair["follow"])
                    passages = answerer.retrieve(standalone, config.answer.k)  # the answer path's floor
                    top1 = bool(passages) and _matches(passages[0], pair)
                    hit3 = any(_matches(p, pair) for p in passages[:3])
                    scores[name]["top1"] += top1
                    scores[name]["hit3"] += hit3
                    if args.show:
                        where = f"{Path(passages[0].source).name} | {passages[0].locator.label()}" if passages else "-"
                        print(f"{'OK ' if top1 else 'BAD'} {name:<8} {standalone!r} -> {where}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(pairs)
    lines = [
        START,
        f"{measured_on()} (a machine shared with other engineers' tests and benchmarks), by `python benchmarks/bench_followups.py`: {n} follow-up pairs over the sample corpus "
        "(`benchmarks/questions/sample_followups.jsonl`, 30 English, 5 Japanese), default models, extractive mode, "
        "retrieved through the answer path's relevance floor.",
        "",
        "| rewrite | top passage right | right passage in top 3 |",
        "|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(f"| {name} | {s['top1']}/{n} ({s['top1'] / n:.0%}) | {s['hit3']}/{n} ({s['hit3'] / n:.0%}) |")
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Follow-up questions without an LLM")


if __name__ == "__main__":
    main()
