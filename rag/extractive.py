"""The LLM-free answer: the sentences of the top passages that best match the question, each cited.

Sentences are scored by idf-weighted term overlap with the question (words for Latin
script, character bigrams for Japanese, which has no spaces), plus a small bonus for the
passage's rank. Sentences are quoted as written, so the answer is in the passages' language.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.lang import CJK, CJK_RUN, QUESTION_STOPWORDS
from rag.records import Passage

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`*])|(?<=[。！？])")
_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_MARKUP = re.compile(r"^\s*(?:#+|[-*+]|\d+\.|>)\s+")


@dataclass(frozen=True)
class Quote:
    """A sentence chosen for an extractive answer, and the passage number it is cited with."""

    text: str
    n: int
    score: float


def _lines_to_items(text: str) -> list[str]:
    """Paragraphs and list items with their hard-wrapped lines joined; headings and code left out."""
    text = _FENCE.sub("\n\n", text)
    items: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _MARKUP.match(line):
            if current:
                items.append(current)
            current = "" if not stripped or stripped.startswith("#") else _MARKUP.sub("", line).strip()
            continue
        joiner = "" if current and CJK.match(current[-1]) and CJK.match(stripped[0]) else " "
        current = f"{current}{joiner}{stripped}" if current else stripped
    if current:
        items.append(current)
    return items


def split_sentences(text: str) -> list[str]:
    """The sentences of a passage's paragraphs and list items; questions and fragments left out."""
    out = []
    for item in _lines_to_items(text):
        for piece in _SENTENCE_END.split(item):
            piece = " ".join((piece or "").split())
            if not piece or piece.endswith(("?", "？")):
                continue  # a heading-like question repeats the user's question; it never answers it
            if len(piece) >= (6 if CJK.search(piece) else 15):
                out.append(piece)
    return out


def terms(text: str) -> set[str]:
    """Content words (lower-cased, plural s dropped) and Japanese character bigrams."""
    lowered = text.lower()
    found = set()
    for word in _WORD.findall(lowered):
        if word in QUESTION_STOPWORDS or len(word) < 2:
            continue
        found.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    for run in CJK_RUN.findall(text):
        if len(run) == 1:
            found.add(run)
        found.update(run[i : i + 2] for i in range(len(run) - 1))
    return found


def choose_quotes(question: str, passages: Sequence[Passage], count: int = 3) -> list[Quote]:
    """The `count` sentences (numbered by passage, 1-based) that best answer question."""
    candidates: list[tuple[int, int, str, set[str]]] = []
    for n, passage in enumerate(passages, 1):
        for position, sentence in enumerate(split_sentences(passage.text)):
            candidates.append((n, position, sentence, terms(sentence)))
    if not candidates:
        return []
    wanted = terms(question)
    df: dict[str, int] = {}
    for *_, sentence_terms in candidates:
        for term in sentence_terms & wanted:
            df[term] = df.get(term, 0) + 1
    total = len(candidates)
    idf = {term: math.log(1 + total / df.get(term, 0.5)) for term in wanted}
    norm = sum(idf.values()) or 1.0
    scored = []
    for n, position, sentence, sentence_terms in candidates:
        overlap = sum(idf[t] for t in sentence_terms & wanted) / norm
        # retrieval already ranked the passages, and a section's first sentence tends to answer its heading
        prior = 0.2 / n + 0.1 / (1 + position)
        scored.append(Quote(sentence, n, overlap + prior))
    scored.sort(key=lambda q: -q.score)
    chosen: list[Quote] = []
    seen: set[str] = set()
    for quote in scored:
        if quote.text in seen:
            continue
        if chosen and quote.score < 0.25:  # little overlap: only the best passage's lead sentence is worth quoting
            break
        chosen.append(quote)
        seen.add(quote.text)
        if len(chosen) == count:
            break
    # quoted in reading order: passage by passage, sentence by sentence
    order = {(q.n, q.text): i for i, (n, _, q_text, _) in enumerate(candidates) for q in [Quote(q_text, n, 0)]}
    return sorted(chosen, key=lambda q: order.get((q.n, q.text), 0))


def extractive_text(quotes: Sequence[Quote], intro: str) -> str:
    """The answer text: an intro line, then one quoted sentence per line with its marker."""
    return "\n".join([intro, *(f"- {q.text} [{q.n}]" for q in quotes)])
