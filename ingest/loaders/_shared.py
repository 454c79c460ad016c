"""Small helpers the loaders share: default titles, heading paths, warning lists."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

logger = logging.getLogger(__name__)

HEADING_SEPARATOR = " > "
MAX_LISTED = 10  # per-item warnings beyond this are counted, not listed, so a report stays readable


def stem_of(source: str) -> str:
    """The file name without its suffix: the title of last resort."""
    return PurePosixPath(source).stem


class HeadingTrail:
    """The open headings above the current point of a document, as in a table of contents."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def enter(self, level: int, text: str) -> str | None:
        """Open a heading of this level (closing deeper or equal ones) and return the heading path."""
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, text))
        return self.path()

    def path(self) -> str | None:
        """The current heading path, 'Install > From PyPI', or None before the first heading."""
        names = [text for _, text in self._open if text]
        return HEADING_SEPARATOR.join(names) or None


def capped(warnings: list[str], what: str = "problems") -> list[str]:
    """The first MAX_LISTED warnings, plus one line counting the rest."""
    if len(warnings) <= MAX_LISTED:
        return warnings
    return [*warnings[:MAX_LISTED], f"... and {len(warnings) - MAX_LISTED} more {what}"]


def number_ranges(numbers: list[int]) -> str:
    """'2, 5-7, 9' for [2, 5, 6, 7, 9]."""
    parts: list[str] = []
    start = prev = None
    for n in sorted(numbers):
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(parts)
