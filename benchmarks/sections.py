"""Each benchmark owns a section of docs/BENCHMARKS.md between its own markers."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def write_section(text: str, start: str, end: str, heading: str) -> None:
    """Replace the text between start and end (markers included in text), or append it under heading."""
    BENCHMARKS.parent.mkdir(exist_ok=True)
    current = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        current = head + text + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + f"\n\n## {heading}\n\n" + text + "\n"
    BENCHMARKS.write_text(current, encoding="utf-8")
