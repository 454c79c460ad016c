"""Citation markers checked in code, and answer text made safe to post.

`[n]` markers are kept only when n is a passage the model was shown; mentions (@channel,
<!here>, <@U123>) and URLs that came from passages are neutralised so an answer can never
ping a channel or carry a live link planted in a document. Both work on a stream of text
deltas, so what the user sees while tokens arrive is what the final answer says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rag.records import Locator, Passage

# [1], [1, 2], [1][2], [passage 3], 【1】; the numbers inside are checked one by one
_MARKER = re.compile(r"\s?[\[【](?:(?:passage|source|doc|document)\s*)?(\d{1,3}(?:\s*[,、]\s*\d{1,3})*)[\]】]", re.IGNORECASE)
_CHAT_TOKEN = re.compile(r"<([!@#][^<>\s]{1,80})>")  # Slack <!channel>, <@U123>, <#C1>; Discord <@123>, <@&9>
_BROADCAST = re.compile(r"(?<![\w＠])@(channel|here|everyone)\b", re.IGNORECASE)
_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'\])）】。、]+", re.IGNORECASE)
_BOUNDARY = set(" \t\n。、！？")
_HOLD_MAX = 200  # an opening bracket left open longer than this is plain text


@dataclass(frozen=True)
class Citation:
    """A passage an answer cites: its marker number, source, locator and URL (when the source has one)."""

    n: int
    source: str
    locator: Locator
    url: str | None = None  # a link the operator vouches for (answer.trusted_urls): shown clickable
    passage_id: str = ""
    unverified_url: str | None = None  # a URL only the document claims (canonical, url column): shown as inert text

    def inert_url(self) -> str | None:
        """The document's own URL claim as visible, non-clickable text (hxxps://host[.]tld/...), if any."""
        return defang(self.unverified_url) if self.unverified_url else None

    def label(self, display: Callable[[str], str] = str) -> str:
        """'docs/faq.md | How does re-ingest work?' (display shortens the source)."""
        where = self.locator.label()
        return f"{display(self.source)} | {where}" if where else display(self.source)

    def as_json(self) -> dict:
        """The JSON form: n, source, locator (label), the structured locator fields, url when set."""
        data: dict = {"n": self.n, "source": self.source, "locator": self.locator.label(), **self.locator.fields()}
        if self.url:
            data["url"] = self.url
        if self.unverified_url:
            data["unverified_url"] = self.unverified_url
        return data


def is_trusted_url(url: str, trusted_prefixes: Iterable[str]) -> bool:
    """Whether an http(s) URL starts with one of the operator's prefixes (a bare host counts as host + '/')."""
    if not re.match(r"https?://", url, re.IGNORECASE):
        return False
    for prefix in trusted_prefixes:
        scheme, sep, rest = prefix.partition("://")
        if not sep or not rest:
            continue
        if "/" not in rest:  # https://wiki.example.com must not admit https://wiki.example.com.evil.io
            prefix += "/"
            if url == prefix[:-1]:
                return True
        if url.startswith(prefix):
            return True
    return False


def citation_for(n: int, passage: Passage, trusted_urls: Iterable[str] = ()) -> Citation:
    """The citation of passage number n; its URL is a link only when trusted_urls vouches for it."""
    url = passage.metadata.get("url")
    url = str(url) if url else None
    if url and is_trusted_url(url, trusted_urls):
        return Citation(n, passage.source, passage.locator, url, passage.id)
    return Citation(n, passage.source, passage.locator, None, passage.id, unverified_url=url)


def format_citations(citations: Iterable[Citation], display: Callable[[str], str] = str) -> str:
    """Citations as plain text, one per line: '[1] source | locator (url)'."""
    lines = []
    for c in citations:
        line = f"[{c.n}] {c.label(display)}"
        if c.url:
            line += f" ({c.url})"
        elif c.unverified_url:
            line += f" ({c.inert_url()})"
        lines.append(line)
    return "\n".join(lines)


def defang(url: str) -> str:
    """A URL as visible but non-clickable text: hxxp://example[.]com/path."""
    out = re.sub(r"^http", "hxxp", url, flags=re.IGNORECASE)
    out = re.sub(r"^ftp", "fxp", out, flags=re.IGNORECASE)
    scheme, sep, rest = out.partition("://")
    if not sep:
        scheme, rest = "", out
    host, slash, path = rest.partition("/")
    host = host.replace(".", "[.]")
    return f"{scheme}{sep}{host}{slash}{path}"


def neutralise_mentions(text: str) -> str:
    """Chat mentions (<@U1>, <@&9>, <!here>, <#C1>) and @everyone/@here/@channel made inert text."""
    text = _CHAT_TOKEN.sub(lambda m: f"‹{m.group(1)}›", text)
    return _BROADCAST.sub(lambda m: f"＠{m.group(1)}", text)


def neutralise(text: str, allowed_urls: frozenset[str] = frozenset()) -> str:
    """Mentions and broadcasts made inert; URLs not in allowed_urls made non-clickable."""
    text = neutralise_mentions(text)
    return _URL.sub(lambda m: m.group(0) if m.group(0) in allowed_urls else defang(m.group(0)), text)


def check_markers(text: str, valid: range | set[int]) -> str:
    """Keep markers whose numbers are in valid (written as [1][2]); drop the rest."""

    def repl(m: re.Match) -> str:
        lead = m.group(0)[0] if m.group(0)[0].isspace() else ""
        numbers = [int(x) for x in re.split(r"\s*[,、]\s*", m.group(1))]
        kept = [n for n in dict.fromkeys(numbers) if n in valid]
        return lead + "".join(f"[{n}]" for n in kept) if kept else ""

    return _MARKER.sub(repl, text)


def cited_numbers(text: str) -> list[int]:
    """Marker numbers in order of first appearance."""
    found: list[int] = []
    for m in _MARKER.finditer(text):
        for x in re.split(r"\s*[,、]\s*", m.group(1)):
            if int(x) not in found:
                found.append(int(x))
    return found


class SafeStream:
    """Turns raw text deltas into checked, neutralised ones, holding back only an unfinished word.

    Everything is cut at whitespace or Japanese punctuation outside brackets, so a marker
    or URL is never split between two checks; `text` is the concatenation of what was emitted.
    """

    def __init__(self, valid: range | set[int], allowed_urls: frozenset[str] = frozenset(), on_token=None):
        self.valid = valid
        self.allowed_urls = allowed_urls
        self.on_token = on_token
        self._pending = ""
        self._parts: list[str] = []

    def _emit(self, raw: str) -> None:
        if not raw:
            return
        clean = neutralise(check_markers(raw, self.valid), self.allowed_urls)
        if clean:
            self._parts.append(clean)
            if self.on_token:
                self.on_token(clean)

    def _safe_cut(self) -> int:
        cut, open_at = 0, None
        for i, ch in enumerate(self._pending):
            if ch in "[【<":
                open_at = i
            elif ch in "]】>":
                open_at = None
            elif open_at is not None and i - open_at > _HOLD_MAX:
                open_at = None
            if ch in _BOUNDARY and open_at is None:
                cut = i + 1
        return cut

    def feed(self, delta: str) -> None:
        """Take a delta from the model; emit what can no longer change."""
        self._pending += delta
        cut = self._safe_cut()
        if cut:
            self._emit(self._pending[:cut])
            self._pending = self._pending[cut:]

    def close(self) -> str:
        """Emit the rest; the whole checked text."""
        self._emit(self._pending)
        self._pending = ""
        return "".join(self._parts)

    @property
    def text(self) -> str:
        """What has been emitted so far."""
        return "".join(self._parts)
