"""Records that cross package lines: where a passage came from, and the passages themselves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool


def format_timestamp(seconds: float) -> str:
    """Format seconds as H:MM:SS or M:SS, as people read transcript times."""
    total = int(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _span(noun: str, first: int, last: int | None) -> str:
    """'line 4' or 'lines 4-9'."""
    return f"{noun}s {first}-{last}" if last is not None and last != first else f"{noun} {first}"


@dataclass(frozen=True)
class Locator:
    """Where inside a source a piece of text sits: heading path, page, table row or time span."""

    heading: str | None = None  # "Setup > Install" (Markdown/HTML heading path)
    page: int | None = None  # 1-based PDF page
    row: int | None = None  # 1-based data row of a CSV/JSONL file
    start_s: float | None = None  # transcript span start, seconds
    end_s: float | None = None  # transcript span end, seconds
    speaker: str | None = None  # transcript speaker(s), comma-separated
    line: int | None = None  # 1-based first line in a plain-text file
    end_line: int | None = None  # 1-based last line (inclusive)
    turn: int | None = None  # 1-based first speaker turn of a transcript without times
    end_turn: int | None = None  # 1-based last turn (inclusive)

    def label(self) -> str:
        """A short human-readable form: 'Setup > Install', 'p. 3', 'row 12', 'lines 120-135',
        '1:05-1:40 (Alice)', 'turns 3-7 (Alice, Bob)'."""
        parts: list[str] = []
        if self.heading:
            parts.append(self.heading)
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.line is not None:
            parts.append(_span("line", self.line, self.end_line))
        if self.start_s is not None:
            span = format_timestamp(self.start_s)
            if self.end_s is not None:
                span += f"-{format_timestamp(self.end_s)}"
            parts.append(span)
        if self.turn is not None:
            parts.append(_span("turn", self.turn, self.end_turn))
        text = ", ".join(parts)
        if self.speaker:
            text = f"{text} ({self.speaker})" if text else self.speaker
        return text

    def fields(self) -> dict[str, Scalar]:
        """The structured fields that apply (None ones left out), for metadata and JSON output."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> Locator:
        """Rebuild a locator from stored metadata, ignoring unrelated keys."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if data.get(k) is not None})


CONTEXT_KEY = "context"  # metadata: the document title / heading a chunk's text lacks


def indexed_text(text: str, metadata: dict[str, Any] | None) -> str:
    """What is embedded and keyword-indexed for a chunk: its context line, then its text.

    A chunk cut from the middle of a document has lost its title and heading; without them
    "the second dose was well tolerated" matches nothing about *which* vaccine. The context
    line puts them back for search, while the stored and quoted text stays the chunk itself.
    """
    context = (metadata or {}).get(CONTEXT_KEY)
    return f"{context}\n{text}" if isinstance(context, str) and context else text


def chunk_context(title: str | None, heading: str | None, text: str) -> str:
    """The title and heading path a chunk's text does not already start with, as one line."""
    parts = [heading] if heading and title and title in heading else [title, heading]
    head = text[:300]
    return " > ".join(p for p in parts if p and p not in head)


@dataclass(frozen=True)
class Chunk:
    """A piece of a source ready to embed: its text, where it came from and its metadata."""

    id: str
    text: str
    source: str
    locator: Locator
    metadata: dict[str, Scalar] = field(default_factory=dict)

    @property
    def indexed_text(self) -> str:
        """The text embedded and keyword-indexed (the context line, then the text)."""
        return indexed_text(self.text, self.metadata)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its score and the embedding space it was found in."""

    text: str
    source: str
    locator: Locator
    score: float
    space: str
    id: str = ""
    metadata: dict[str, Scalar] = field(default_factory=dict)
    cosine: float | None = None  # retrieval: its cosine similarity to the question in `space` (score is the fused one)
