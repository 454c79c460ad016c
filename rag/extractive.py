"""The LLM-free answer: the sentences of the top passages that best match the question, each cited.

Sentences are scored by idf-weighted term overlap with the question (words for Latin
script, character bigrams for Japanese, which has no spaces) and, when the answerer has an
embedding model at hand, by meaning (cosine between the question and the sentence in the
passage's own space), plus a bonus for the passage's rank. Transcript text is first cut at
speaker turns, and backchannel and filler turns ("Mm-hmm", "Right, right.") are never quoted;
long unpunctuated speech is cut into pieces and no bullet runs past MAX_QUOTE_CHARS.
Sentences are quoted as written, so the answer is in the passages' language.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from collections.abc import Callable
from dataclasses import dataclass

from rag.lang import CJK, CJK_RUN, QUESTION_STOPWORDS, SPOKEN_FILLER
from rag.records import Passage

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`*])|(?<=[。！？])")
_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_MARKUP = re.compile(r"^\s*(?:#+|[-*+]|\d+\.|>)\s+")
_TABLE_RULE = re.compile(r"^\|?[\s:|-]*-[\s:|-]*$")


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
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("|"):  # a table row is an item of its own; the header and rule lines are not
            if current:
                items.append(current)
            current = ""
            is_rule = _TABLE_RULE.match(stripped)
            is_header = i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1].strip())
            if not is_rule and not is_header:
                items.append(" | ".join(cell.strip() for cell in stripped.strip("|").split("|") if cell.strip()))
            continue
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


MAX_QUOTE_CHARS = 300  # a quoted bullet longer than this is cut (at a word) and marked with "…"
_SPEECH_PIECE_CHARS = 220  # unpunctuated speech is cut into pieces of about this length


def _turns(item: str, speakers: Sequence[str]) -> list[str]:
    """A transcript chunk's text cut at its "Name: " turn prefixes (the prefixes dropped)."""
    if not speakers:
        return [item]
    names = "|".join(re.escape(s) for s in sorted(speakers, key=len, reverse=True))
    parts = re.split(rf"(?:^|\s)(?:{names}):\s+", item)
    return [p for p in parts if p and p.strip()]


def _speech_pieces(sentence: str) -> list[str]:
    """A long unpunctuated run of speech cut at clause words into pieces of about _SPEECH_PIECE_CHARS."""
    if len(sentence) <= MAX_QUOTE_CHARS or CJK.search(sentence):
        return [sentence]
    pieces: list[str] = []
    current = ""
    for word in sentence.split():
        if len(current) >= _SPEECH_PIECE_CHARS and (word.lower() in ("and", "but", "so", "because", "then", "which", "when") or current.endswith(",")):
            pieces.append(current)
            current = word
        elif len(current) + len(word) + 1 > MAX_QUOTE_CHARS:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def is_filler(sentence: str) -> bool:
    """Backchannel or filler speech ("Mm-hmm.", "Yeah yeah.", "Okay, thanks everybody."): nothing to quote."""
    if CJK.search(sentence):
        return False
    words = _WORD.findall(sentence.lower())
    content = [w for w in words if w not in SPOKEN_FILLER and w not in QUESTION_STOPWORDS and len(w) > 1]
    return not content or len(content) < 0.25 * len(words)


def split_sentences(text: str, speakers: Sequence[str] = (), speech: bool = False) -> list[str]:
    """The sentences of a passage's paragraphs, list items and speaker turns; questions, fragments and filler left out.

    speech: the text is a transcript, so long unpunctuated runs are cut into pieces.
    """
    out = []
    for item in _lines_to_items(text):
        for turn in _turns(item, speakers):
            for piece in _SENTENCE_END.split(turn):
                piece = " ".join((piece or "").split())
                if not piece or piece.endswith(("?", "？")):
                    continue  # a heading-like question repeats the user's question; it never answers it
                if len(piece) < (6 if CJK.search(piece) else 15) or is_filler(piece):
                    continue
                out.extend(_speech_pieces(piece) if speech or speakers else [piece])
    return out


def _capped(sentence: str) -> str:
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence
    cut = sentence[: MAX_QUOTE_CHARS - 1]
    cut = cut[: cut.rfind(" ")] if " " in cut[MAX_QUOTE_CHARS // 2 :] else cut
    return cut.rstrip(" ,;:") + "…"


# (question, sentences, space) -> cosine of each sentence with the question, in that space
Similarity = Callable[[str, list[str], str], list[float]]


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


def choose_quotes(
    question: str, passages: Sequence[Passage], count: int = 3, similarity: Similarity | None = None
) -> list[Quote]:
    """The `count` sentences (numbered by passage, 1-based) that best answer question."""
    candidates: list[tuple[int, int, str, set[str]]] = []
    for n, passage in enumerate(passages, 1):
        speakers = [s.strip() for s in (passage.locator.speaker or "").split(",") if s.strip()]
        speech = bool(speakers) or passage.locator.start_s is not None or passage.locator.turn is not None
        for position, sentence in enumerate(split_sentences(passage.text, speakers, speech)):
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
    overlaps = [sum(idf[t] for t in sentence_terms & wanted) / norm for *_, sentence_terms in candidates]
    # retrieval already ranked the passages, and a section's first sentence tends to answer its heading
    priors = [0.2 / n + 0.1 / (1 + position) for n, position, *_ in candidates]
    # meaning for the most promising sentences only: each one is a model call
    promising = sorted(range(len(candidates)), key=lambda i: -(overlaps[i] + priors[i]))[:MEANING_CANDIDATES]
    # Japanese stays on character bigrams, within 1.4 points of its ceiling on JSQuAD (88.9% of
    # answers quote a gold span, 90.3% of cited passages hold one): meaning there is unmeasured
    meaning = None if CJK.search(question) else _meaning(question, passages, [candidates[i] for i in promising], similarity)
    if meaning is not None:
        semantic = dict(zip(promising, meaning))
        overlaps = [(1 - MEANING_WEIGHT) * o + MEANING_WEIGHT * semantic.get(i, 0.0) for i, o in enumerate(overlaps)]
    scored = [Quote(sentence, n, (overlaps[i] + priors[i]) * _fit(question, sentence)) for i, (n, _, sentence, _) in enumerate(candidates)]
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
    chosen = sorted(chosen, key=lambda q: order.get((q.n, q.text), 0))
    return [Quote(_capped(q.text), q.n, q.score) for q in chosen]


def _fit(question: str, sentence: str) -> float:
    """How well a sentence can serve as an answer at all, whatever it shares with the question.

    A sentence in another script than the question (a Japanese line for an English question: the
    asker may not read it) and a line that only introduces what follows ("To switch ...:", whose
    list or code is not quoted) weigh less.
    """
    if CJK.search(question):  # Japanese keeps the scoring JSQuAD measured
        return 1.0
    fit = 1.0
    if CJK.search(sentence):
        fit *= OTHER_LANGUAGE_FIT
    if sentence.endswith(":"):
        fit *= INTRO_LINE_FIT
    return fit


OTHER_LANGUAGE_FIT = 0.5
INTRO_LINE_FIT = 0.7
MEANING_CANDIDATES = 24  # sentences scored by meaning per answer (the best by shared words and rank)
MEANING_WEIGHT = 0.2  # share of a sentence's match score that comes from meaning rather than shared words


def _meaning(question, passages, candidates, similarity: Similarity | None) -> list[float] | None:
    """Each candidate's cosine with the question, rescaled per space to 0..1 (None without a model)."""
    if similarity is None:
        return None
    by_space: dict[str, list[int]] = {}
    for index, (n, *_rest) in enumerate(candidates):
        by_space.setdefault(passages[n - 1].space, []).append(index)
    out = [0.0] * len(candidates)
    try:
        for space, indexes in by_space.items():
            cosines = similarity(question, [candidates[i][2] for i in indexes], space)
            low, high = min(cosines), max(cosines)
            for i, cos in zip(indexes, cosines):
                # each model has its own scale (e5 cosines sit near 0.8): rank within the space
                out[i] = (cos - low) / (high - low) if high > low else 0.0
    except Exception as exc:  # meaning is a refinement: shared words still answer
        import logging

        logging.getLogger(__name__).warning("sentence similarity failed (%s); scoring by shared words", exc)
        return None
    return out


def extractive_text(quotes: Sequence[Quote], intro: str) -> str:
    """The answer text: an intro line, then one quoted sentence per line with its marker."""
    return "\n".join([intro, *(f"- {q.text} [{q.n}]" for q in quotes)])
