"""Writing a benchmark's section into docs/BENCHMARKS.md between its own markers, keeping the others."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def write_section(text: str, start: str, end: str, title: str, path: Path = BENCHMARKS) -> None:
    """Replace the text between start and end (markers included in text), or append it under a title."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        current = head + text + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + f"\n\n## {title}\n\n" + text + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(current, encoding="utf-8")


def measured_on() -> str:
    """'Measured <UTC time> on N cores (<cpu>), Python X, load average L': when and where a figure was taken."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    load = os.getloadavg()[0]  # other work on the machine shows here: timings under load are upper bounds
    return f"Measured {now} on {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, load average {load:.1f}"
