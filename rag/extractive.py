"""The LLM-free answer: the sentences of the top passages that best match the question, each cited.

Sentences are scored by idf-weighted term overlap with the question (words for Latin
script, character bigrams for Japanese, which has no spaces) and, when the answerer has an
embedding model at hand, by meaning (cosine between the question and the sentence in the
passage's own space), plus a bonus for the passage's rank. A sentence also gets part of the
match of the prompt it follows: the heading above it ("### How are transcripts cited?"), a
question or lead-in that is not quoted itself ("Mina: Why 90 seconds?", "Kenji: Two rules."),
or a line that introduces a list; so the answer under an FAQ heading or after an interviewer's
question is found even when it shares no word with the question. For a "why" question a
sentence that gives a reason ("because", "which is why") weighs more. Transcript text is first
cut at speaker turns, and backchannel and filler turns ("Mm-hmm", "Right, right.") are never
quoted; long unpunctuated speech is cut at clause words into pieces and no bullet runs past
MAX_QUOTE_CHARS. Japanese questions keep the bigram scoring JSQuAD measured (no meaning, prompts
or reason weight).
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
    return [item for is_heading, item in _blocks(text) if not is_heading]


def _blocks(text: str) -> list[tuple[bool, str]]:
    """(is_heading, text) for each heading, paragraph and list item, in order; code left out."""
    text = _FENCE.sub("\n\n", text)
    items: list[tuple[bool, str]] = []
    current = ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("|"):  # a table row is an item of its own; the header and rule lines are not
            if current:
                items.append((False, current))
            current = ""
            is_rule = _TABLE_RULE.match(stripped)
            is_header = i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1].strip())
            if not is_rule and not is_header:
                items.append((False, " | ".join(cell.strip() for cell in stripped.strip("|").split("|") if cell.strip())))
            continue
        if not stripped or stripped.startswith("#") or _MARKUP.match(line):
            if current:
                items.append((False, current))
            if stripped.startswith("#"):
                items.append((True, stripped.lstrip("#").strip()))
            current = "" if not stripped or stripped.startswith("#") else _MARKUP.sub("", line).strip()
            continue
        joiner = "" if current and CJK.match(current[-1]) and CJK.match(stripped[0]) else " "
        current = f"{current}{joiner}{stripped}" if current else stripped
    if current:
        items.append((False, current))
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
    """A long unpunctuated run of speech cut at clause words into pieces of about _SPEECH_PIECE_CHARS.

    When no clause word comes before the cap, the piece is cut at its last clause word (so a phrase
    such as "sixty four megabytes" is not split from its sentence and no scrap is left over).
    """
    if len(sentence) <= MAX_QUOTE_CHARS or CJK.search(sentence):
        return [sentence]
    pieces: list[str] = []
    words: list[str] = []
    cuts: list[int] = []  # indexes in words where a clause starts

    def length(ws: list[str]) -> int:
        return sum(len(w) for w in ws) + max(len(ws) - 1, 0)

    for word in sentence.split():
        clause = word.lower() in _CLAUSE_WORDS or (words and words[-1].endswith(","))
        if words and clause and length(words) >= _SPEECH_PIECE_CHARS:
            pieces.append(" ".join(words))
            words, cuts = [], []
        elif words and length(words) + len(word) + 1 > MAX_QUOTE_CHARS:
            cut = max((c for c in cuts if length(words[:c]) >= _MIN_PIECE_CHARS), default=len(words))
            pieces.append(" ".join(words[:cut]))
            words, cuts = words[cut:], []
        if words and clause:
            cuts.append(len(words))
        words.append(word)
    if words:
        pieces.append(" ".join(words))
    return pieces


_CLAUSE_WORDS = frozenset(("and", "but", "so", "because", "then", "which", "when"))
_MIN_PIECE_CHARS = 80  # a cut back to a clause word keeps at least this much in the piece


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
    return [unit.text for unit in _units(text, speakers, speech)]


@dataclass(frozen=True)
class _Unit:
    """A quotable sentence, and the prompt it follows: the heading, question or short lead-in before it."""

    text: str
    prompt: str  # "" when none
    after: int  # sentences between the prompt and this one (0: right after it)


def _units(text: str, speakers: Sequence[str], speech: bool) -> list[_Unit]:
    out: list[_Unit] = []
    prompt, after = "", 0
    for is_heading, item in _blocks(text):
        if is_heading:
            prompt, after = item, 0  # a section answers its heading
            continue
        for turn in _turns(item, speakers):
            for piece in _SENTENCE_END.split(turn):
                piece = " ".join((piece or "").split())
                if not piece:
                    continue
                short = len(piece) < (6 if CJK.search(piece) else 15)
                if piece.endswith(("?", "？")) or short:
                    # a question (an FAQ line, an interviewer's turn) or a lead-in ("Two rules.") is not
                    # quoted (a question repeats the user's; it never answers it), but what follows answers it
                    if not is_filler(piece):
                        prompt, after = (f"{prompt} {piece}" if after == 0 and prompt else piece), 0
                    continue
                if is_filler(piece):
                    continue
                for part in _speech_pieces(piece) if speech or speakers else [piece]:
                    out.append(_Unit(part, prompt, after))
                    after += 1
                if piece.endswith(":"):  # "To switch ...:" introduces the list or steps that follow
                    prompt, after = f"{prompt} {piece}".strip(), 0
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
    candidates: list[tuple[int, int, _Unit, set[str]]] = []
    for n, passage in enumerate(passages, 1):
        speakers = [s.strip() for s in (passage.locator.speaker or "").split(",") if s.strip()]
        speech = bool(speakers) or passage.locator.start_s is not None or passage.locator.turn is not None
        for position, unit in enumerate(_units(passage.text, speakers, speech)):
            candidates.append((n, position, unit, terms(unit.text)))
    if not candidates:
        return []
    # Japanese stays on character bigrams, within 1.4 points of its ceiling on JSQuAD (88.9% of
    # answers quote a gold span, 90.3% of cited passages hold one): meaning and prompts there are unmeasured
    japanese = bool(CJK.search(question))
    wanted = terms(question)
    df: dict[str, int] = {}
    for *_, sentence_terms in candidates:
        for term in sentence_terms & wanted:
            df[term] = df.get(term, 0) + 1
    total = len(candidates)
    idf = {term: math.log(1 + total / df.get(term, 0.5)) for term in wanted}
    norm = sum(idf.values()) or 1.0

    def overlap(found: set[str]) -> float:
        return sum(idf[t] for t in found & wanted) / norm

    matches = [overlap(sentence_terms) for *_, sentence_terms in candidates]
    # retrieval already ranked the passages, and a section's first sentence tends to answer its heading
    priors = [0.2 / n + 0.1 / (1 + position) for n, position, *_ in candidates]
    # the heading, question or lead-in a sentence follows ("### How are transcripts cited?", "Mina: Why
    # 90 seconds?", "Kenji: Two rules.") says what it answers, even when it shares no word with the question
    prompts = [] if japanese else list(dict.fromkeys((n, unit.prompt) for n, _, unit, _ in candidates if unit.prompt))
    prompt_match = {key: overlap(terms(key[1])) for key in prompts}
    # meaning for the most promising sentences and every prompt, in one model call per space
    promising = sorted(range(total), key=lambda i: -(matches[i] + priors[i]))[:MEANING_CANDIDATES]
    texts = [(candidates[i][0], candidates[i][2].text) for i in promising] + prompts
    meaning = None if japanese else _meaning(question, passages, texts, similarity)
    if meaning is not None:
        semantic = dict(zip(promising, meaning))
        matches = [(1 - MEANING_WEIGHT) * m + MEANING_WEIGHT * semantic.get(i, 0.0) for i, m in enumerate(matches)]
        for key, cos in zip(prompts, meaning[len(promising) :]):
            prompt_match[key] = (1 - PROMPT_MEANING_WEIGHT) * prompt_match[key] + PROMPT_MEANING_WEIGHT * cos
    scored = []
    for i, (n, _, unit, _) in enumerate(candidates):
        carried = PROMPT_WEIGHT * prompt_match.get((n, unit.prompt), 0.0) / (1 + unit.after)
        scored.append(Quote(unit.text, n, (matches[i] + carried + priors[i]) * _fit(question, unit.text)))
    order = {(q.n, q.text): i for i, q in enumerate(scored)}  # reading order: passage by passage
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
    if _WHY.match(question) and _BECAUSE.search(sentence):
        fit *= REASON_FIT
    return fit


_WHY = re.compile(r"\s*(why|what for|for what reason)\b", re.IGNORECASE)
_BECAUSE = re.compile(r"\b(because|so that|which is why|that's why|that is why|the reason|in order to|otherwise)\b", re.IGNORECASE)
REASON_FIT = 1.4  # a "why" question: a sentence that gives a reason ("because", "which is why") weighs more


OTHER_LANGUAGE_FIT = 0.5
INTRO_LINE_FIT = 0.7
MEANING_CANDIDATES = 24  # sentences scored by meaning per answer (the best by shared words and rank)
MEANING_WEIGHT = 0.2  # share of a sentence's match score that comes from meaning rather than shared words
PROMPT_MEANING_WEIGHT = 0.5  # a prompt is a question or heading: its meaning is compared question to question
PROMPT_WEIGHT = 0.8  # share of its prompt's match a sentence right after it gets (halved for the next, and so on)


def _meaning(question, passages, texts: list[tuple[int, str]], similarity: Similarity | None) -> list[float] | None:
    """Each (passage number, text)'s cosine with the question, rescaled per space to 0..1 (None without a model)."""
    if similarity is None or not texts:
        return None
    by_space: dict[str, list[int]] = {}
    for index, (n, _) in enumerate(texts):
        by_space.setdefault(passages[n - 1].space, []).append(index)
    out = [0.0] * len(texts)
    try:
        for space, indexes in by_space.items():
            cosines = similarity(question, [texts[i][1] for i in indexes], space)
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
