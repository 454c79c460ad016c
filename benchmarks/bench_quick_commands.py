"""Start-up time of the quick commands, each a fresh process on the sample corpus, beside `import torch`.

Ingests `samples/` with the shipped default models into a throw-away data dir, then times
fresh processes in one run, interleaved (so machine load hits them alike): `python -c
"import torch"`, `ragbot status`, `config`, `feedback` and `search`. Each figure is the median
of --repeats runs. Then one `python -X importtime` run of `status` and `search` gives the
import-time breakdown (the top-level packages by cumulative import time).

    python benchmarks/bench_quick_commands.py [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from report import measured_on, write_section  # noqa: E402

START, END = "<!-- quick:start -->", "<!-- quick:end -->"
SEARCH = "How do I switch to OpenAI embeddings?"
COMMANDS = {
    "python -c 'import torch'": ["-c", "import torch"],
    "ragbot status": ["-m", "bot", "status"],
    "ragbot config": ["-m", "bot", "config"],
    "ragbot feedback": ["-m", "bot", "feedback"],
    f'ragbot search "{SEARCH}"': ["-m", "bot", "search", SEARCH],
}


def _env(data_dir: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "RAGBOT_DATA_DIR": str(data_dir)}


def _timed(args: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed: {proc.stderr[-2000:]}")
    return elapsed


def _import_breakdown(args: list[str], cwd: Path, env: dict, top: int = 8) -> list[tuple[str, float]]:
    """The top-level modules by cumulative import time (s), from `python -X importtime`."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m and not m.group(2).startswith(" "):
            name = m.group(2).strip()
            totals[name] = totals.get(name, 0.0) + int(m.group(1)) / 1e6
    all_imports = sum(totals.values())
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [("(all imports)", all_imports), *ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="Print only; do not touch docs/BENCHMARKS.md.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ragbot-quick-"))
    try:
        data_dir = work / "data"
        env = _env(data_dir)
        shutil.copytree(REPO / "samples", work / "samples")
        _timed(["-m", "bot", "ingest", "samples"], work, env)
        _timed(["-m", "bot", "search", "warm the file cache"], work, env)  # first run reads files from disk
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(args.repeats):
            for name, argv in COMMANDS.items():
                times[name].append(_timed(argv, work, env))
        status_imports = _import_breakdown(COMMANDS["ragbot status"], work, env)
        search_imports = _import_breakdown(COMMANDS[f'ragbot search "{SEARCH}"'], work, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    torch_s = medians["python -c 'import torch'"]
    lines = [
        START,
        f"{measured_on()} (a machine shared with other engineers' tests and benchmarks), by `python benchmarks/bench_quick_commands.py --repeats {args.repeats}`: "
        f"fresh processes on the sample corpus (ingested with the default models), interleaved, median of "
        f"{args.repeats}. Targets: `ragbot status` faster than importing torch, `ragbot search` within 3 s.",
        "",
        "| command | median s | min s | max s | target |",
        "|---|---|---|---|---|",
    ]
    targets = {"ragbot status": f"< import torch ({torch_s:.2f} s)"}
    for name, values in times.items():
        target = targets.get(name, "<= 3 s" if name.startswith("ragbot search") else "")
        lines.append(f"| `{name}` | {medians[name]:.2f} | {min(values):.2f} | {max(values):.2f} | {target} |")
    for title, breakdown in (("ragbot status", status_imports), ("ragbot search", search_imports)):
        parts = ", ".join(f"{name} {secs:.2f}" for name, secs in breakdown)
        lines += ["", f"Import time of `{title}` (python -X importtime, one run, s): {parts}."]
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Quick commands: start-up time")


if __name__ == "__main__":
    main()
