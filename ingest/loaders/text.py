"""Plain text and Markdown: Markdown is cut at its headings, each section keeping its heading path."""

from __future__ import annotations

import logging
import re

import yaml

from ingest.errors import EmptySourceError
from ingest.loaders._shared import HeadingTrail, stem_of
from ingest.loaders.transcripts import load_speaker_lines
from ingest.records import Document, LoadResult, Section
from rag.records import Locator

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_BLOCK_START = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)|^ {0,3}>")  # list item, block quote
_INDENTED_CODE = re.compile(r"^(?: {4}|\t)")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*)(\S(?:.*?\S)?)\1")
# Only common inline tags: "Vec<T>" in a heading is text, not markup.
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|u|s|em|strong|code|kbd|span|sup|sub|small|mark|del|ins|br|img)(?:\s[^>]*)?/?>", re.I
)


def load_text(text: str, source: str) -> LoadResult:
    """A plain text file as one section titled by the file name."""
    if not text.strip():
        raise EmptySourceError("empty file (only whitespace)")
    transcript = load_speaker_lines(text, source)
    if transcript is not None:  # one "Speaker: text" turn per line: a meeting tool's export
        return transcript
    body = text.strip()
    first_line = 1 + text[: text.find(body)].count("\n")  # the chunker gives each chunk the lines it spans
    doc = Document(source=source, kind="text", sections=(Section(body, Locator(line=first_line)),), title=stem_of(source))
    return LoadResult(documents=(doc,))


def load_markdown(text: str, source: str) -> LoadResult:
    """A Markdown file cut at its ATX and setext headings; front matter gives the title."""
    if not text.strip():
        raise EmptySourceError("empty file (only whitespace)")
    warnings: list[str] = []
    lines = text.split("\n")
    front_title, lines = _front_matter(lines, warnings)
    sections, first_h1 = _split_sections(lines)
    if not sections:
        raise EmptySourceError("no text found (only front matter or headings)")
    title = front_title or first_h1 or stem_of(source)
    doc = Document(source=source, kind="markdown", sections=tuple(sections), title=title)
    return LoadResult(documents=(doc,), warnings=tuple(warnings))


def _front_matter(lines: list[str], warnings: list[str]) -> tuple[str | None, list[str]]:
    """The title of a YAML front matter block at the top, and the lines after it."""
    if not lines or lines[0].rstrip() != "---":
        return None, lines
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            break
    else:
        return None, lines  # no closing line: a thematic break, not front matter
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        warnings.append("front matter is not valid YAML; ignored")
        return None, lines[end + 1 :]
    if data is None:
        return None, lines[end + 1 :]
    if not isinstance(data, dict):
        return None, lines  # "---" text "---" at the top: ordinary Markdown
    title = data.get("title")
    if isinstance(title, (str, int, float)) and not isinstance(title, bool) and str(title).strip():
        return str(title).strip(), lines[end + 1 :]
    return None, lines[end + 1 :]


class _Builder:
    """Collects lines into sections, remembering how many leading lines are the heading."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.heading: str | None = None
        self.lines: list[str] = []
        self.heading_lines = 0

    def start(self, heading: str | None, heading_lines: list[str]) -> None:
        self.flush()
        self.heading, self.lines, self.heading_lines = heading, list(heading_lines), len(heading_lines)

    def flush(self) -> None:
        body = self.lines[self.heading_lines :]
        # A heading with nothing under it would make a chunk that matches queries and answers nothing.
        if any(line.strip() for line in body):
            self.sections.append(Section("\n".join(self.lines).strip(), Locator(heading=self.heading)))
        self.lines, self.heading_lines = [], 0


def _split_sections(lines: list[str]) -> tuple[list[Section], str | None]:
    builder = _Builder()
    trail = HeadingTrail()
    first_h1: str | None = None
    fence: tuple[str, int] | None = None
    paragraph_start: int | None = None  # index in builder.lines where the open paragraph began

    for line in lines:
        if fence is not None:
            builder.lines.append(line)
            stripped = line.strip()
            indent = len(line) - len(line.lstrip(" "))
            if indent < 4 and stripped and set(stripped) == {fence[0]} and len(stripped) >= fence[1]:
                fence = None
            continue

        opening = _FENCE.match(line)
        if opening and not (opening[1][0] == "`" and "`" in opening[2]):
            fence = (opening[1][0], len(opening[1]))
            builder.lines.append(line)
            paragraph_start = None
            continue

        atx = _ATX.match(line)
        if atx:
            level, name = len(atx[1]), _plain_heading(_CLOSING_HASHES.sub("", atx[2] or ""))
            if level == 1 and first_h1 is None and name:
                first_h1 = name
            builder.start(trail.enter(level, name), [line])
            paragraph_start = None
            continue

        underline = _SETEXT.match(line)
        if underline and paragraph_start is not None and paragraph_start >= 0:
            paragraph = builder.lines[paragraph_start:]
            del builder.lines[paragraph_start:]
            level = 1 if underline[1][0] == "=" else 2
            name = _plain_heading(" ".join(part.strip() for part in paragraph))
            if level == 1 and first_h1 is None and name:
                first_h1 = name
            builder.start(trail.enter(level, name), paragraph)  # the underline itself is dropped
            paragraph_start = None
            continue

        if not line.strip():
            paragraph_start = None
        elif paragraph_start is None:
            # A list, quote or indented code block: a "---" under it is a rule, not a heading.
            paragraph_start = -1 if _BLOCK_START.match(line) or _INDENTED_CODE.match(line) else len(builder.lines)
        elif paragraph_start >= 0 and _BLOCK_START.match(line):
            paragraph_start = -1
        builder.lines.append(line)
    builder.flush()
    return builder.sections, first_h1


def _plain_heading(text: str) -> str:
    """Heading text without Markdown markup: links and images by their text, no emphasis or code ticks."""
    text = _IMAGE_OR_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    return " ".join(text.replace("`", "").split())
