"""Cutting documents into token-bounded chunks, each tied to the one locator it came from.

Text is cut at the most natural boundary that fits the budget (paragraph, line, sentence,
clause, word, and only then a character-safe hard cut); transcripts are cut by grouping whole
cues under a token and a time budget, so every chunk keeps a real time span and its speakers.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import re
import unicodedata
from dataclasses import dataclass

import tiktoken

from ingest.config import ChunkingConfig
from ingest.records import Document
from rag.records import Locator
from rag.tokens import get_encoding

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextChunk:
    """A piece of a document within the token budget, with the locator of the section it came from."""

    text: str
    locator: Locator
    ordinal: int  # 0-based position of the chunk within its Document


def chunk_document(doc: Document, config: ChunkingConfig) -> list[TextChunk]:
    """Cut a document into chunks: transcripts by grouping cues, anything else section by section."""
    if doc.kind == "transcript":
        return chunk_transcript(doc, config)
    chunks: list[TextChunk] = []
    for section in doc.sections:
        # Sections are split one at a time so a chunk never straddles two headings, pages or rows.
        pieces = split_text(section.text, config.max_tokens, config.overlap_tokens, config.encoding)
        locators = _line_locators(section.text, section.locator, pieces)
        for piece, locator in zip(pieces, locators):
            chunks.append(TextChunk(piece, locator, len(chunks)))
    return chunks


def _line_locators(text: str, locator: Locator, pieces: list[str]) -> list[Locator]:
    """Each piece's locator: with the lines it spans when the section knows its first line.

    Pieces are contiguous slices of the (repaired, stripped) text in order, overlapping at
    most by the overlap tail, so each is found at or after the previous one's start.
    """
    if locator.line is None:
        return [locator] * len(pieces)
    body = _encodable(text)
    stripped = body.strip()
    offset = body.find(stripped) if stripped else 0
    first_line = locator.line + body.count("\n", 0, offset)
    out: list[Locator] = []
    search_from = 0
    for piece in pieces:
        at = stripped.find(piece, search_from)
        if at < 0:  # cannot happen for slices; keep the section's own lines rather than guess
            out.append(locator)
            continue
        search_from = at + 1
        start = first_line + stripped.count("\n", 0, at)
        out.append(dataclasses.replace(locator, line=start, end_line=start + piece.count("\n")))
    return out


# ---------------------------------------------------------------------------------------------
# Plain text

# Boundary strengths, strongest first. A boundary is the position where the next piece would
# start: just after the mark and the whitespace that follows it, so stripping loses nothing.
_PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _SPACE = 5, 4, 3, 2, 1
_LEVELS = (_PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _SPACE)
_CLOSERS = "\"'”’)\\]」』）】〕〉》"
_BOUNDARY_PATTERNS = {
    _PARAGRAPH: re.compile(r"\n[^\S\n]*\n\s*"),
    _LINE: re.compile(r"\n\s*"),
    # English ends need whitespace after them ("3.14", "v1.2" are not ends); CJK ends need none.
    _SENTENCE: re.compile(rf"[.!?]+[{_CLOSERS}]*\s+|[。！？．｡]+[{_CLOSERS}]*\s*"),
    # ASCII marks need a following space so "10:30", "1,000" and "http://" stay whole.
    _CLAUSE: re.compile(r"[,;:]\s+|[、，；：､]\s*"),
    _SPACE: re.compile(r"\s+"),
}
_NON_SPACE = re.compile(r"\S")
_SENTENCE_END = re.compile(rf"[.!?。！？．｡…][{_CLOSERS}]*$")


def split_text(text: str, max_tokens: int, overlap_tokens: int, encoding: str = "cl100k_base") -> list[str]:
    """Split text into stripped pieces of at most max_tokens tokens, cut at natural boundaries.

    Each piece after the first starts with a tail of about overlap_tokens tokens (never more) of
    the previous one. Every piece is a contiguous slice of the text, so nothing but whitespace is
    lost, and cuts fall between characters (and, where possible, between grapheme clusters).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens} for max_tokens {max_tokens}")
    text = _encodable(text).strip()
    if not text:
        return []
    if len(text) > WINDOW_CHARS:
        return [piece for window in _windows(text) for piece in split_text(window, max_tokens, overlap_tokens, encoding)]
    enc = get_encoding(encoding)
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= max_tokens:
        return [text]
    return _Splitter(text, enc, tokens, max_tokens, overlap_tokens).split()


# A section longer than this is cut into windows (at the strongest boundary in each window's
# back half) that are split one at a time: the splitter keeps per-token offsets of its whole
# text, and tiktoken slows down faster than linearly on long runs without spaces, so a 50 MiB
# one-line file cost minutes and GBs. Windows keep work and memory in proportion to the text;
# the only cost is no overlap across a window edge (one chunk boundary every ~50,000 characters).
WINDOW_CHARS = 50_000


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Tokens in text, counted window by window (so a long run without spaces stays cheap)."""
    enc = get_encoding(encoding)
    text = _encodable(text)
    windows = _windows(text) if len(text) > WINDOW_CHARS else [text]
    return sum(len(enc.encode(window, disallowed_special=())) for window in windows)


def _windows(text: str) -> list[str]:
    """text cut into stripped slices of at most WINDOW_CHARS characters, at natural boundaries where there are any."""
    windows, start = [], 0
    while len(text) - start > WINDOW_CHARS:
        lo, hi = start + WINDOW_CHARS // 2, start + WINDOW_CHARS
        cut = None
        for level in _LEVELS:
            ends = [m.end() for m in _BOUNDARY_PATTERNS[level].finditer(text, lo, hi)]
            if ends:
                cut = ends[-1]
                break
        if cut is None:
            cut = hi
            while cut > lo and _splits_cluster(text, cut):
                cut -= 1
        windows.append(text[start:cut].strip())
        start = cut
    windows.append(text[start:].strip())
    return [w for w in windows if w]


def _encodable(text: str) -> str:
    """Text with surrogates resolved: pairs joined into their character, lone ones replaced.

    Lone surrogates (from surrogateescape decoding) cannot be written as UTF-8 at all, so no
    store or embedder could take them; tiktoken applies the same repair before encoding.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


_REGIONAL = "\U0001f1e6-\U0001f1ff"
_FLAG_RUN = re.compile(f"[{_REGIONAL}]{{2,}}")


def _is_regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _splits_cluster(text: str, pos: int, flag_runs: list[int] | None = None) -> bool:
    """Whether cutting before text[pos] would tear a user-perceived character apart.

    A cheap approximation of Unicode grapheme rules: combining marks, ZWJ sequences (family
    emoji), variation selectors, skin-tone modifiers, emoji tags and flag pairs stay together.
    flag_runs, the sorted start positions of runs of regional indicators, tells flag pairs apart.
    """
    if pos <= 0 or pos >= len(text):
        return False
    prev, ch = text[pos - 1], text[pos]
    if prev == "\u200d" or ch == "\u200d" or "\ufe00" <= ch <= "\ufe0f":
        return True
    if "\U0001f3fb" <= ch <= "\U0001f3ff" or "\U000e0020" <= ch <= "\U000e007f":
        return True
    if unicodedata.category(ch) in ("Mn", "Mc", "Me"):
        return True
    if _is_regional(prev) and _is_regional(ch):
        if flag_runs is None:
            flag_runs = [m.start() for m in _FLAG_RUN.finditer(text, 0, pos + 1)]
        run_start = flag_runs[bisect.bisect_right(flag_runs, pos - 1) - 1]
        return (pos - run_start) % 2 == 1  # flags are pairs: an odd offset splits one
    return False


_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes: no character starts on one


def _token_starts(enc: tiktoken.Encoding, tokens: list[int]) -> list[int]:
    """The character offset where each token starts: tiktoken's decode_with_offsets, its byte loop done in C.

    A token that begins inside a multi-byte character starts at that character, as there.
    """
    starts, chars = [], 0
    for piece in enc.decode_tokens_bytes(tokens):
        starts.append(max(0, chars - (0x80 <= piece[0] < 0xC0)))
        chars += len(piece.translate(None, _CONTINUATION))
    return starts


class _Splitter:
    """One split_text call: the text, its token offsets, and lazily found boundary positions.

    Token counts of spans are estimated from the offsets of one whole-text encoding (tokens
    starting inside the span), which is off by a few tokens only at the span's edges; every
    final piece and overlap is then counted exactly and re-cut if the estimate was low.
    """

    def __init__(self, text: str, enc: tiktoken.Encoding, tokens: list[int], max_tokens: int, overlap: int):
        self.text = text
        self.enc = enc
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.starts = _token_starts(enc, tokens)  # char offset where each token starts
        self.boundaries: dict[int, list[int]] = {}
        self.flag_runs: list[int] | None = None

    def _splits_cluster(self, pos: int) -> bool:
        if self.flag_runs is None and 0 < pos < len(self.text) and _is_regional(self.text[pos]):
            self.flag_runs = [m.start() for m in _FLAG_RUN.finditer(self.text)]
        return _splits_cluster(self.text, pos, self.flag_runs)

    def split(self) -> list[str]:
        """All pieces, in order."""
        text, pieces = self.text, []
        start = floor = 0
        while True:
            start, cut = self._next_piece(start, floor)
            pieces.append(text[start:cut].strip())
            floor = self._skip_space(cut)
            if floor >= len(text):
                return pieces
            overlap_start = self._overlap_start(start, cut) if self.overlap else None
            start = floor if overlap_start is None else overlap_start

    # -- token estimates -----------------------------------------------------------------------

    def _exact(self, piece: str) -> int:
        return len(self.enc.encode(piece, disallowed_special=()))

    def _advance(self, pos: int, k: int) -> int:
        """The position about k tokens after pos."""
        j = bisect.bisect_left(self.starts, pos) + max(k, 0)
        return self.starts[j] if j < len(self.starts) else len(self.text)

    def _retreat(self, pos: int, k: int) -> int:
        """The position about k tokens before pos."""
        j = bisect.bisect_left(self.starts, pos) - k
        return self.starts[j] if j >= 0 else 0

    # -- boundaries ----------------------------------------------------------------------------

    def _positions(self, level: int) -> list[int]:
        # Found per level on first need: text that splits at paragraphs never scans for words.
        if level not in self.boundaries:
            self.boundaries[level] = [m.end() for m in _BOUNDARY_PATTERNS[level].finditer(self.text)]
        return self.boundaries[level]

    def _last_boundary(self, level: int, lo: int, hi: int) -> int | None:
        positions = self._positions(level)
        i = bisect.bisect_right(positions, hi) - 1
        return positions[i] if i >= 0 and positions[i] >= lo else None

    def _first_boundary(self, level: int, lo: int, hi: int) -> int | None:
        positions = self._positions(level)
        i = bisect.bisect_left(positions, lo)
        return positions[i] if i < len(positions) and positions[i] <= hi else None

    def _skip_space(self, pos: int) -> int:
        m = _NON_SPACE.search(self.text, pos)
        return m.start() if m else len(self.text)

    # -- cutting -------------------------------------------------------------------------------

    def _next_piece(self, start: int, floor: int) -> tuple[int, int]:
        """(start, cut) of the piece beginning at start whose new text begins at floor.

        start < floor when the piece opens with overlap; the overlap is dropped if not even one
        new character fits after it, so every piece brings new text and the loop always ends.
        """
        budget, ceiling = self.max_tokens, len(self.text)
        while True:
            cut = self._best_cut(start, floor, budget, ceiling)
            count = self._exact(self.text[start:cut].strip())
            if count <= self.max_tokens:
                if start < floor and self._splits_cluster(cut):
                    # The overlap left no room for a whole emoji or accented letter: drop it.
                    start, budget, ceiling = floor, self.max_tokens, len(self.text)
                    continue
                return start, cut
            if cut <= floor + 1:
                if start < floor:
                    start, budget, ceiling = floor, self.max_tokens, len(self.text)
                    continue
                # One character over the budget: only possible below 4 tokens, and a character
                # cannot be cut, so it goes out whole.
                return start, cut
            # The estimate was low: shrink by the excess, and never retry the same cut or a later
            # one, so the loop ends even where estimates from mid-token positions do not move.
            budget -= max(1, count - self.max_tokens)
            ceiling = cut - 1

    def _best_cut(self, start: int, floor: int, budget: int, ceiling: int) -> int:
        """End of a piece from start of about budget tokens, at the strongest boundary after floor.

        The strongest boundary that keeps the piece at least half full wins (the latest one of
        that strength), so a short heading line or paragraph does not become a piece of its own.
        """
        limit = min(self._advance(start, budget), ceiling)
        if limit >= len(self.text):
            return len(self.text)
        limit = max(limit, floor + 1)
        half = min(max(self._advance(start, budget // 2), floor + 1), limit)
        for level in _LEVELS:
            cut = self._last_boundary(level, half, limit)
            if cut is not None:
                return cut
        # Nothing natural in the back half: any boundary beats a cut inside a word.
        early = [self._last_boundary(level, floor + 1, half) for level in _LEVELS]
        early_cuts = [cut for cut in early if cut is not None]
        if early_cuts:
            return max(early_cuts)
        return self._hard_cut(limit, floor + 1)

    def _hard_cut(self, pos: int, lowest: int) -> int:
        """pos moved back to a grapheme boundary, unless the cluster reaches back past lowest."""
        cut = pos
        while cut > lowest and self._splits_cluster(cut):
            cut -= 1
        return pos if self._splits_cluster(cut) else cut

    def _overlap_start(self, start: int, cut: int) -> int | None:
        """Where the overlap repeated from the piece [start, cut) begins, or None for none.

        Prefers the strongest boundary that leaves between half and all of overlap_tokens,
        then any boundary inside that tail, then a character-safe token tail.
        """
        content_start = self._skip_space(start)
        k = self.overlap
        while k > 0:
            lo = max(self._retreat(cut, k), content_start + 1)
            mid = self._retreat(cut, max(1, k // 2))
            begin = None
            for level in _LEVELS:
                begin = self._first_boundary(level, lo, mid)
                if begin is not None:
                    break
            if begin is None:
                later = [self._first_boundary(level, max(lo, mid + 1), cut - 1) for level in _LEVELS]
                later_begins = [b for b in later if b is not None]
                begin = min(later_begins) if later_begins else self._safe_tail(lo, cut)
            tail = self.text[begin:cut].strip() if begin < cut else ""
            if not tail:
                return None
            count = self._exact(tail)
            if count <= self.overlap:
                return begin
            k -= max(1, count - self.overlap)
        return None

    def _safe_tail(self, pos: int, cut: int) -> int:
        while pos < cut and self._splits_cluster(pos):
            pos += 1
        return pos


# ---------------------------------------------------------------------------------------------
# Transcripts


@dataclass(frozen=True)
class _Cue:
    text: str
    locator: Locator
    tokens: int

    @property
    def speaker(self) -> str | None:
        return self.locator.speaker


def chunk_transcript(doc: Document, config: ChunkingConfig) -> list[TextChunk]:
    """Group consecutive cues into chunks within the transcript token and time budgets.

    A chunk's locator spans its first cue's start to its last cue's end and names its speakers
    in order of appearance; when the speaker changes inside a chunk, each turn is prefixed with
    "Name: " so attribution survives in the text. A cue over the token budget is split with
    split_text, each piece keeping the cue's timestamps. With overlap_tokens > 0, the last cue of
    a chunk is repeated at the start of the next when it has at most overlap_tokens tokens and
    the next chunk still fits both budgets with it.
    """
    return _TranscriptGrouper(config).group(_cues(doc, config))


def _cues(doc: Document, config: ChunkingConfig) -> list[_Cue]:
    """The document's cues with whitespace collapsed, empty ones dropped, oversized ones split."""
    enc = get_encoding(config.encoding)
    budget = config.transcript_max_tokens
    cues: list[_Cue] = []
    for section in doc.sections:
        text = " ".join(_encodable(section.text).split())
        if not text:
            continue
        tokens = len(enc.encode(text, disallowed_special=()))
        if tokens <= budget:
            cues.append(_Cue(text, section.locator, tokens))
            continue
        overlap = min(config.overlap_tokens, budget // 2)
        for piece in split_text(text, budget, overlap, config.encoding):
            cues.append(_Cue(piece, section.locator, len(enc.encode(piece, disallowed_special=()))))
    return cues


def _cue_text(cues: list[_Cue]) -> str:
    """Cue texts joined by spaces, each speaker turn prefixed when the chunk has more than one."""
    turns: list[tuple[str | None, list[str]]] = []
    for cue in cues:
        if turns and turns[-1][0] == cue.speaker:
            turns[-1][1].append(cue.text)
        else:
            turns.append((cue.speaker, [cue.text]))
    if len(turns) == 1:
        return " ".join(turns[0][1])  # one speaker: the locator already names them
    return " ".join(f"{speaker}: {' '.join(texts)}" if speaker else " ".join(texts) for speaker, texts in turns)


def _times(cues: list[_Cue]) -> tuple[float | None, float | None]:
    """(start of the first cue, end of the last cue), skipping cues without times."""
    starts = [c.locator.start_s for c in cues if c.locator.start_s is not None]
    ends = [c.locator.end_s for c in cues if c.locator.end_s is not None]
    return (starts[0] if starts else None, ends[-1] if ends else None)


def _span_s(start_s: float | None, end_s: float | None) -> float:
    return end_s - start_s if start_s is not None and end_s is not None else 0.0


class _TranscriptGrouper:
    """Greedy cue grouping, backed off to a speaker change or sentence end when that is cheap."""

    def __init__(self, config: ChunkingConfig):
        self.config = config
        self.enc = get_encoding(config.encoding)
        self.prefix_tokens: dict[str, int] = {}

    def group(self, cues: list[_Cue]) -> list[TextChunk]:
        """Chunks covering every cue in order, each with at least one cue not in the previous one."""
        chunks: list[TextChunk] = []
        i = 0
        while i < len(cues):
            first = i
            last_of_previous = cues[i - 1] if i else None
            if (
                last_of_previous is not None
                and self.config.overlap_tokens > 0
                and last_of_previous.tokens <= self.config.overlap_tokens
                and self._estimate(cues[i - 1 : i + 1]) <= self.config.transcript_max_tokens
                and _span_s(*_times(cues[i - 1 : i + 1])) <= self.config.transcript_max_seconds
            ):
                first = i - 1
            end = self._end(cues, first, i)
            text = _cue_text(cues[first:end])
            while len(self.enc.encode(text, disallowed_special=())) > self.config.transcript_max_tokens:
                # The estimate was low (joins tokenize a little differently): give back cues.
                if end > i + 1:
                    end -= 1
                elif first < i:
                    first = i
                else:
                    break  # one cue alone always fits: _cues split it to the budget
                text = _cue_text(cues[first:end])
            chunks.append(TextChunk(text, self._locator(cues[first:end]), len(chunks)))
            i = end
        return chunks

    def _prefix(self, speaker: str) -> int:
        if speaker not in self.prefix_tokens:
            self.prefix_tokens[speaker] = len(self.enc.encode(f"{speaker}: ", disallowed_special=()))
        return self.prefix_tokens[speaker]

    def _estimate(self, cues: list[_Cue]) -> int:
        """Tokens of the chunk text, summed per cue (joining spaces merge into the next word)."""
        tokens = sum(c.tokens for c in cues)
        turns = [c.speaker for k, c in enumerate(cues) if k == 0 or c.speaker != cues[k - 1].speaker]
        if len(turns) > 1:
            tokens += sum(self._prefix(s) for s in turns if s)
        return tokens

    def _end(self, cues: list[_Cue], first: int, new: int) -> int:
        """Exclusive end of the chunk that starts at first and must include cue new."""
        budget, seconds = self.config.transcript_max_tokens, self.config.transcript_max_seconds
        tokens, turn_prefixes, turns = 0, 0, 0
        start_s: float | None = None
        end_s: float | None = None
        fills: list[tuple[int, bool]] = []  # (end, half full) for each candidate end
        end = first
        while end < len(cues):
            cue = cues[end]
            new_turn = end == first or cue.speaker != cues[end - 1].speaker
            next_turns = turns + new_turn
            next_prefixes = turn_prefixes + (self._prefix(cue.speaker) if new_turn and cue.speaker else 0)
            next_tokens = tokens + cue.tokens
            estimate = next_tokens + (next_prefixes if next_turns > 1 else 0)
            next_start = start_s if start_s is not None else cue.locator.start_s
            next_end = cue.locator.end_s if cue.locator.end_s is not None else end_s
            span = _span_s(next_start, next_end)
            if end > new and (estimate > budget or span > seconds):
                break
            tokens, turn_prefixes, turns = next_tokens, next_prefixes, next_turns
            start_s, end_s = next_start, next_end
            end += 1
            fills.append((end, estimate * 2 >= budget or span * 2 >= seconds))
        if end >= len(cues):
            return end
        # Prefer ending where a speaker hands over, then after a finished sentence, as long as the
        # chunk stays at least half full; otherwise keep the greedy end.
        best, best_score = end, -1
        for candidate, half_full in fills:
            if candidate <= new or not half_full:
                continue
            if cues[candidate].speaker != cues[candidate - 1].speaker:
                score = 2
            elif _SENTENCE_END.search(cues[candidate - 1].text):
                score = 1
            else:
                score = 0
            if score >= best_score:
                best, best_score = candidate, score
        return best

    def _locator(self, cues: list[_Cue]) -> Locator:
        start_s, end_s = _times(cues)
        speakers = list(dict.fromkeys(c.speaker for c in cues if c.speaker))
        turns = [c.locator.turn for c in cues if c.locator.turn is not None]
        # replace() keeps any other field a loader set on the cues' locators.
        return dataclasses.replace(
            cues[0].locator, start_s=start_s, end_s=end_s, speaker=", ".join(speakers) if speakers else None,
            turn=turns[0] if turns else None, end_turn=turns[-1] if turns else None,
        )
