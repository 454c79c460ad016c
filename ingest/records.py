"""What loaders produce: documents made of located sections, and per-file load results."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.records import Locator, Scalar


@dataclass(frozen=True)
class Section:
    """A located piece of a document: a Markdown/HTML section, a PDF page, a row, or one cue."""

    text: str
    locator: Locator


@dataclass(frozen=True)
class Document:
    """One loaded document. A file yields one (or one per CSV/JSONL row).

    kind is "markdown", "text", "html", "pdf", "table" or "transcript"; for transcripts each
    section is one cue (its locator carries start_s, end_s and speaker), and the chunker groups
    consecutive cues instead of splitting text.
    """

    source: str  # absolute POSIX path of the file
    kind: str
    sections: tuple[Section, ...]
    title: str | None = None
    url: str | None = None
    metadata: dict[str, Scalar] = field(default_factory=dict)  # e.g. CSV metadata columns


@dataclass(frozen=True)
class LoadResult:
    """The documents read from one file, plus warnings about parts that were skipped."""

    documents: tuple[Document, ...]
    warnings: tuple[str, ...] = ()
