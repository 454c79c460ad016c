"""Shared by the retrieval benchmarks: when and where a figure was measured, and writing it down."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measured_on() -> str:
    """'Measured <UTC time> on N cores (<cpu>), shared with other jobs'."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    return f"Measured {now} on {os.cpu_count()} cores ({cpu}, shared with other jobs), Python {platform.python_version()}"


def write_section(text: str, start: str, end: str, heading: str) -> None:
    """Replace the text between start and end in docs/BENCHMARKS.md, or append it under heading."""
    path = REPO / "docs" / "BENCHMARKS.md"
    path.parent.mkdir(exist_ok=True)
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        current = head + text + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + f"\n\n{heading}\n\n" + text + "\n"
    path.write_text(current, encoding="utf-8")
