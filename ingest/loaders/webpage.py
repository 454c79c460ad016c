"""HTML pages: visible text only, cut at h1-h6 like Markdown, with the page's canonical URL."""

from __future__ import annotations

import logging
import re
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from ingest.errors import EmptySourceError
from ingest.loaders._shared import HeadingTrail, stem_of
from ingest.records import Document, LoadResult, Section
from rag.records import Locator

logger = logging.getLogger(__name__)

_DROPPED = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object", "canvas"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Elements that start a new line, so "<p>a</p><p>b</p>" reads "a\nb", not "ab".
_BLOCKS = frozenset(
    "address article aside blockquote body caption dd details dialog div dl dt fieldset figcaption figure "  # noqa: SIM905
    "footer form header hgroup hr html li main nav ol p pre section summary table tbody tfoot thead tr ul "
    "option select textarea legend".split()
)
_CELLS = frozenset({"td", "th"})
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_SPACES = re.compile(r"\s+")


def load_html(text: str, source: str) -> LoadResult:
    """An HTML page as sections cut at its headings; script, style and head are dropped."""
    soup = BeautifulSoup(text, "html.parser")
    title = _title(soup)
    url = _canonical_url(soup)
    builder = _TextBuilder()
    _walk(soup, builder, HeadingTrail())
    sections = builder.finish()
    if not sections:
        raise EmptySourceError("no visible text in the page")
    if title is None:
        first_h1 = soup.find("h1")
        title = _collapse(first_h1.get_text(" ")) if first_h1 else None
    doc = Document(source=source, kind="html", sections=tuple(sections), title=title or stem_of(source), url=url)
    return LoadResult(documents=(doc,))


def _title(soup: BeautifulSoup) -> str | None:
    for tag in soup.find_all("title"):
        if tag.find_parent("svg") is None:  # an <svg> has its own <title>, a tooltip
            return _collapse(tag.get_text(" ")) or None
    return None


def _canonical_url(soup: BeautifulSoup) -> str | None:
    for link in soup.find_all("link"):
        rel: Any = link.get("rel") or []
        rels = rel.split() if isinstance(rel, str) else list(rel)
        if "canonical" in (r.lower() for r in rels) and (url := _absolute(link.get("href"))):
            return url
    meta = soup.find("meta", attrs={"property": "og:url"})
    return _absolute(meta.get("content")) if isinstance(meta, Tag) else None


def _absolute(url: object) -> str | None:
    # A relative canonical link cannot be opened from a citation, so it is not worth keeping.
    if isinstance(url, str) and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return None


class _TextBuilder:
    """Accumulates visible text into sections, tracking line starts so whitespace collapses cleanly."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.heading: str | None = None
        self.heading_text: str | None = None
        self.parts: list[str] = []

    def text(self, value: str, preformatted: bool = False) -> None:
        """Add a run of text; outside <pre> whitespace collapses to single spaces."""
        if not preformatted:
            value = _SPACES.sub(" ", value)
            if not self.parts or self.parts[-1].endswith("\n"):
                value = value.lstrip(" ")
        if value:
            self.parts.append(value)

    def newline(self) -> None:
        """End the current line (block boundary or <br>)."""
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def start(self, heading: str | None, heading_text: str) -> None:
        """Close the current section and open one under a heading."""
        self.flush()
        self.heading, self.heading_text = heading, heading_text

    def flush(self) -> None:
        """Close the current section, keeping it only if it has text beyond its heading."""
        lines = [line.rstrip() for line in "".join(self.parts).split("\n")]
        body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
        if body.strip():
            full = f"{self.heading_text}\n{body}" if self.heading_text else body
            self.sections.append(Section(full, Locator(heading=self.heading)))
        self.parts = []

    def finish(self) -> list[Section]:
        """Close the last section and return them all."""
        self.flush()
        return self.sections


def _walk(node: Tag, out: _TextBuilder, trail: HeadingTrail, preformatted: bool = False) -> None:
    for child in node.children:
        if isinstance(child, NavigableString):
            if isinstance(child, _SKIPPED_STRINGS):
                continue
            out.text(str(child), preformatted)
            continue
        if not isinstance(child, Tag):
            continue
        name = (child.name or "").lower()
        if name in _DROPPED or child.has_attr("hidden"):
            continue
        if name in _HEADINGS:
            heading_text = _collapse(child.get_text(" "))
            out.start(trail.enter(_HEADINGS[name], heading_text), heading_text)
            continue
        if name == "br":
            out.newline()
            continue
        block = name in _BLOCKS
        if block:
            out.newline()
        _walk(child, out, trail, preformatted or name == "pre")
        if block:
            out.newline()
        elif name in _CELLS:
            out.text(" ")  # keep neighbouring cells apart


def _collapse(text: str) -> str:
    return " ".join(text.split())
