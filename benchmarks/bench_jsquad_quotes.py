"""JSQuAD guard for the extractive sentence chooser: previous vs current on the same passages.

Ingests the JSQuAD valid contexts (../shared/evaldata/jglue-jsquad) with the shipped default
models, answers the first --limit questions in extractive mode, and on the same retrieved
passages scores the chooser shipped before issue #13 (benchmarks/bench_extractive.py keeps a
copy) and the current one: the share of answers whose quoted sentences contain a gold answer
span. The full run of benchmarks/bench_answer.py measured 88.9% for the previous chooser over
all 4,442 questions; this one compares both on a prefix when the full run does not fit.
Passage and question vectors come from the benchmark cache (benchmarks/_cache.py, folder
RAGBOT_EVALCACHE); --max-new stops the run before it would encode more texts than that.

    python benchmarks/bench_jsquad_quotes.py [--limit 500] [--max-new N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["OPENAI_API_KEY"] = ""
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _cache import CachedEmbedder  # noqa: E402
from bench_extractive import previous_quotes  # noqa: E402
from report import measured_on, write_section  # noqa: E402

from bot.config import AppConfig  # noqa: E402
from bot.runtime import build_answerer, open_ingestor, open_knowledge_base  # noqa: E402
from rag.embedders import build_embedder  # noqa: E402

START, END = "<!-- jsquad-quotes:start -->", "<!-- jsquad-quotes:end -->"


class _Bounded(CachedEmbedder):
    """The cached embedder, refusing to encode more than `limit` new texts in all (a slow model on a busy machine)."""

    encoded = 0

    def __init__(self, inner, limit: int | None):
        super().__init__(inner)
        self.limit = limit

    def _get(self, kind, texts, fn):
        def counted(todo):
            _Bounded.encoded += len(todo)
            if self.limit is not None and _Bounded.encoded > self.limit:
                raise SystemExit(f"stopped: more than {self.limit} texts are not in the cache {self.path}")
            return fn(todo)

        return super()._get(kind, texts, counted)

    def save(self) -> None:  # written once at the end (the table is large; one question is one miss)
        self.dirty = True

    def flush(self) -> None:
        if getattr(self, "dirty", False):
            super().save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--max-new", type=int, default=None, help="Stop before encoding more than N texts not in the cache.")
    args = parser.parse_args()
    raw = json.loads((args.evaldata / "jglue-jsquad" / "valid-v1.3.json").read_text(encoding="utf-8"))
    questions = [
        (qa["question"], [a["text"] for a in qa["answers"]])
        for article in raw["data"] for para in article["paragraphs"] for qa in para["qas"]
    ][: args.limit or None]
    work = Path(tempfile.mkdtemp(prefix="ragbot-jsquad-quotes-"))
    hits = {"previous": 0, "current": 0}
    found = 0
    embedders: dict[str, _Bounded] = {}
    try:
        corpus = work / "corpus"
        corpus.mkdir()
        shutil.copy(args.evaldata / "jglue-jsquad" / "retrieval-valid" / "corpus.jsonl", corpus / "corpus.jsonl")
        config = AppConfig(data_dir=str(work / "data"), llm={"provider": "extractive"})
        embedders = {s: _Bounded(build_embedder(c), args.max_new) for s, c in config.embedding.spaces.items()}
        with open_knowledge_base(config, embedders=embedders) as kb:
            with open_ingestor(config, kb) as ingestor:
                ingestor.run([corpus])
            answerer = build_answerer(config, kb)
            for question, golds in questions:
                answer = answerer.answer(question)  # the current chooser, as `ragbot ask` runs it
                found += answer.found
                hits["current"] += any(g in answer.text for g in golds)
                if answer.found:
                    quoted = " ".join(previous_quotes(question, list(answer.passages), config.answer.extractive_sentences))
                    hits["previous"] += any(g in quoted for g in golds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for embedder in embedders.values():
            embedder.flush()
    print(f"texts encoded (not in the cache): {_Bounded.encoded}", file=sys.stderr)
    n = len(questions)
    text = "\n".join([
        START,
        f"{measured_on()} (a machine shared with other engineers' tests and benchmarks), by `python benchmarks/bench_jsquad_quotes.py --limit {args.limit}`: the first {n} JSQuAD valid "
        f"questions, default models, extractive mode, {found}/{n} answered; both choosers quote from the same passages.",
        "",
        "| sentence chooser | quoted sentences contain a gold span |",
        "|---|---|",
        *(f"| {name} | {h}/{n} ({h / n:.1%}) |" for name, h in hits.items()),
        END,
    ])
    print(text)
    if not args.no_write:
        write_section(text, START, END, "JSQuAD: extractive sentence chooser, previous vs current")


if __name__ == "__main__":
    main()
