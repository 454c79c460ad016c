"""Security benchmark (issue #11): what hostile input costs.

1. Peak RSS of the Slack HTTP server (`ragbot serve slack --mode http`'s server: guard, Bolt's
   WSGI adapter, waitress) while it refuses an unsigned POST announcing `Content-Length:
   400000000`, of which --stream-mib are actually sent. Measured in a separate server process:
   its peak RSS (VmHWM, reset after warm-up through /proc/PID/clear_refs) minus its idle RSS.
2. Time and peak RSS of `ragbot ingest --json` on one --ingest-mib MiB file with no newline
   (English-like words), hashing embedder (the pipeline's own cost: read, chunk, store, keyword
   index; a real model adds its encode time per chunk, see the Ingest section). --code-root runs
   the same ingest with another checkout's code (e.g. the main branch) for comparison.

    .venv/bin/python benchmarks/bench_security.py [--ingest-mib 50] [--stream-mib 64] [--code-root DIR --code-label NAME] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START, END = "<!-- security:start -->", "<!-- security:end -->"

SERVER = """
import sys, threading
sys.path.insert(0, {root!r})
from bot.config import BotConfig, SlackConfig
from bot.core import BotCore
from bot.state import MemoryState
from bot.slack_app import build_slack_app, build_web_client
import os
if os.path.exists(os.path.join({root!r}, "bot", "slack_http.py")):  # (an editable install could supply it from elsewhere)
    from bot.slack_http import serve_http
else:  # before issue #11: the hand-rolled BaseHTTPRequestHandler
    from bot.slack_app import serve_http as _old
    serve_http = lambda app, host, port, signing_secret: _old(app, host, port)

class Quiet:
    mode = "fake"
    def answer(self, *a, **k):
        raise RuntimeError("not used")

core = BotCore(Quiet(), BotConfig(), MemoryState())
app = build_slack_app(core, SlackConfig(), build_web_client("xoxb-bench", "http://127.0.0.1:9/api/"), signing_secret="bench-secret")
server = serve_http(app, "127.0.0.1", 0, signing_secret="bench-secret")
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def slack_refusal(stream_mib: int, workdir: Path, code_root: Path = ROOT) -> dict:
    """Idle and peak RSS of the server process while it refuses the 400 MB unsigned POST."""
    code = SERVER.format(root=str(code_root), tmp=str(workdir))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=code_root)
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as s:  # warm-up: one small refused request
            s.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            s.recv(4096)
        time.sleep(0.5)
        idle = _status_kb(proc.pid, "VmRSS")
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # peak RSS starts again from now
        head = (
            "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=bad\r\nContent-Length: 400000000\r\n\r\n"
        )
        sent, status, started = 0, "", time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(head.encode())
            block = b"x" * (1 << 20)
            try:
                for _ in range(stream_mib):
                    s.sendall(block)
                    sent += len(block)
            except OSError:  # the server answered and closed while we were still sending
                pass
            s.settimeout(3)
            try:
                status = s.recv(4096).split(b"\r\n", 1)[0].decode() or "connection closed, no answer"
            except OSError as exc:
                status = f"no answer ({type(exc).__name__})"
        seconds = time.perf_counter() - started
        time.sleep(0.3)
        peak = _status_kb(proc.pid, "VmHWM")
        return {"idle_mib": idle / 1024, "peak_mib": peak / 1024, "above_idle_mib": (peak - idle) / 1024,
                "status": status, "sent_mib": sent / (1 << 20), "seconds": seconds}
    finally:
        proc.terminate()
        proc.wait(10)


def one_line_file(path: Path, mib: int) -> None:
    """mib MiB of English-like words separated by single spaces: one line, no newline."""
    words = "budget meeting room policy report ingest answer source chunk window question channel admin".split()
    rng = random.Random(7)
    target = mib << 20
    with path.open("w", encoding="utf-8") as out:
        written = 0
        while written < target:
            piece = " ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(20_000)) + " "
            piece = piece[: target - written]
            out.write(piece)
            written += len(piece)


def ingest_one_line(mib: int, workdir: Path, code_root: Path, timeout_s: int = 3600) -> dict:
    """`ragbot ingest --json` of the one-line file in a child process: wall time, peak RSS, what it reported."""
    big = workdir / "docs" / "one-line.txt"
    big.parent.mkdir(parents=True, exist_ok=True)
    if not big.exists() or big.stat().st_size != mib << 20:
        one_line_file(big, mib)
    data = workdir / f"data-{code_root.name}"
    config = workdir / "fast.yaml"
    config.write_text(
        f"data_dir: {data}\nembedding:\n  spaces:\n    en: {{provider: hashing, model: hash-en}}\n    ja: {{provider: hashing, model: hash-ja}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(code_root), "HF_HUB_OFFLINE": "1"}
    rss_file = workdir / "rss.txt"
    started = time.perf_counter()
    # GNU time's %M: the peak RSS of this one child (getrusage would mix the runs)
    proc = subprocess.Popen(
        ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "bot", "--config", str(config), "ingest", "--json", str(big.parent)],
        cwd=code_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    sampled_kb = 0  # VmHWM of the ragbot child, polled: a run stopped by the timeout leaves no %M
    import threading

    def poll() -> None:
        nonlocal sampled_kb
        while proc.poll() is None:
            for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split() if Path(f"/proc/{proc.pid}").exists() else []:
                try:
                    sampled_kb = max(sampled_kb, _status_kb(int(child), "VmHWM"))
                except (OSError, KeyError, ValueError):
                    pass
            time.sleep(0.5)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        out, err = proc.communicate(timeout=timeout_s)
        report = json.loads(out) if proc.returncode == 0 else {"error": err[-400:]}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the session we started: /usr/bin/time and its ragbot child
        proc.communicate()
        report = {"error": f"stopped after {timeout_s} s without finishing"}
    seconds = time.perf_counter() - started
    try:
        peak_mib = int(rss_file.read_text().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        peak_mib = sampled_kb / 1024  # killed before time could write it: the last sample (a lower bound)
    return {"seconds": seconds, "peak_mib": peak_mib, "report": report, "mib": mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingest-mib", type=int, default=50)
    parser.add_argument("--stream-mib", type=int, default=64, help="MiB of the 400 MB body actually sent")
    parser.add_argument("--code-root", type=Path, help="also measure this checkout's code (e.g. `git archive BASE | tar -x -C DIR`)")
    parser.add_argument("--code-label", help="how to name --code-root in the table (default: its path)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--timeout-s", type=int, default=3600, help="stop an ingest that runs longer (reported as such)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()

    from benchmarks.report import measured_on, write_section

    header = measured_on() + " (a machine shared with other work: times are upper bounds), by `python benchmarks/bench_security.py`."
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = ["| measure | target | result |", "|---|---|---|"]
        before = f"before ({args.code_label or args.code_root})"
        servers = [("this branch", ROOT)] + ([(before, args.code_root)] if args.code_root else [])
        for label, root in servers:
            slack = slack_refusal(args.stream_mib, workdir, root)
            print(label, json.dumps(slack))
            rows.append(
                f"| Slack HTTP server, {label}: unsigned POST with `Content-Length: 400000000`, up to {args.stream_mib} MiB of it sent "
                f"| 413 without reading; < 10 MB above idle | `{slack['status']}` after {slack['sent_mib']:.0f} MiB sent, "
                f"{slack['seconds']:.2f} s; peak RSS {slack['above_idle_mib']:.1f} MiB above idle "
                f"({slack['idle_mib']:.0f} MiB idle, {slack['peak_mib']:.0f} MiB peak) |"
            )
        if not args.skip_ingest:
            runs = [("this branch", ROOT)] + ([(before, args.code_root)] if args.code_root else [])
            for label, root in runs:
                result = ingest_one_line(args.ingest_mib, workdir, root, args.timeout_s)
                print(label, json.dumps(result)[:600])
                rep = result["report"]
                if "error" in rep:
                    what = rep["error"].strip().splitlines()[-1][:160]
                elif rep.get("failed"):
                    what = f"refused: {rep['failed'][0]['reason'][:120]}..."
                else:
                    what = f"{rep.get('chunks', 0)} chunks ingested"
                rows.append(
                    f"| `ragbot ingest` of one {args.ingest_mib} MiB file with no newline, hashing embedder, {label} "
                    f"| bounded, proportional | {result['seconds']:.0f} s wall (process start included), peak RSS {result['peak_mib']:.0f} MiB ({what}) |"
                )
    text = "\n".join([START, header, "", *rows, END])
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Hostile input (security)")


if __name__ == "__main__":
    main()
