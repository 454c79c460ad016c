"""Slack load benchmark: ack latency under slow answers, duplicates, lost questions, answers per minute.

Phase 1: 200 signed app_mention events, 50 in flight at a time (20 of them re-delivered with
X-Slack-Retry-Num), through Bolt's HTTP path, while every answer takes --answer-s seconds.
Phase 2: the same 200 events answered by the real Answerer in extractive mode over samples/
(hashing embedder unless --real-models), counting answers posted per minute.

    .venv/bin/python benchmarks/bench_slack.py [--events 200] [--concurrency 50] [--answer-s 10] [--no-write]

Results go to stdout and into docs/BENCHMARKS.md between the slack markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import write_section  # noqa: E402
from bot.config import BotConfig, SlackConfig  # noqa: E402
from bot.core import BotCore  # noqa: E402
from bot.state import MemoryState  # noqa: E402
from bot.slack_app import build_slack_app, build_web_client  # noqa: E402
from bot.slack_http import serve_http  # noqa: E402
from tests.slack_fakes import SECRET, FakeSlackAPI, event_body, post, signed_headers  # noqa: E402

START, END = "<!-- slack:start -->", "<!-- slack:end -->"


class SlowAnswerer:
    """Takes answer_s seconds per answer (like a slow LLM), then answers with one citation."""

    mode = "fake"

    def __init__(self, answer_s: float):
        self.answer_s = answer_s

    def answer(self, question, conversation=None, on_token=None, where=None):
        from rag.answer import Answer

        time.sleep(self.answer_s)
        return Answer(f"Answer to {question}", (), "llm", found=True, grounded=True, question=question)


def run_load(answerer, events: int, concurrency: int, retries: int, workdir: Path) -> dict:
    api = FakeSlackAPI()
    core = BotCore(answerer, BotConfig(workers=concurrency, queue_size=events, rate_limit=events), MemoryState())
    app = build_slack_app(core, SlackConfig(stream_interval_s=0), build_web_client("xoxb-bench", api.base_url), signing_secret=SECRET)
    server = serve_http(app, "127.0.0.1", 0, signing_secret=SECRET)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    questions = [
        "How do I switch to OpenAI embeddings?", "Who can run /ragbot-ingest?", "What happens when I delete a file and re-ingest?",
        "Which file types can be ingested?", "How are transcripts cited?",
    ]

    def send(i: int, retry: int = 0) -> float:
        event = {"type": "app_mention", "user": f"U{i}", "text": f"<@UBOT> {questions[i % len(questions)]}", "ts": f"{1000 + i}.1", "channel": "C1"}
        body = event_body(event, f"Ev{i}")
        headers = signed_headers(body)
        if retry:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        status, _, seconds = post(url, body, headers, timeout=30)
        assert status == 200, status
        return seconds

    started = time.perf_counter()
    jobs = [(i, 0) for i in range(events)] + [(i, 1) for i in range(0, events, max(events // retries, 1))][:retries]
    with ThreadPoolExecutor(concurrency) as pool:
        acks = list(pool.map(lambda job: send(*job), jobs))
    def final_answers() -> list[dict]:
        # an answer's final form: posted at once after the thread status (thread_ts), or the placeholder's last edit (ts)
        return [p for m, p in list(api.calls) if m in ("chat.update", "chat.postMessage") and p.get("blocks")]

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        finals = final_answers()
        if len(finals) >= events:
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    time.sleep(1)  # late duplicates would show now
    finals = final_answers()
    placeholders = {p.get("thread_ts") or p.get("ts") for p in finals}
    per_message = Counter(p.get("thread_ts") or p.get("ts") for p in finals)
    threads = Counter(p.get("thread_ts") for m, p in list(api.calls) if m in ("chat.postMessage", "chat.startStream"))
    server.shutdown()
    server.server_close()
    core.close()
    api.close()
    acks_ms = sorted(a * 1000 for a in acks)
    return {
        "deliveries": len(jobs),
        "p50_ms": statistics.median(acks_ms),
        "p99_ms": acks_ms[min(len(acks_ms) - 1, int(len(acks_ms) * 0.99))],
        "max_ms": acks_ms[-1],
        "answered": len(per_message),
        "duplicates": sum(n - 1 for n in per_message.values()) + sum(n - 1 for n in threads.values()),
        "lost": events - len(placeholders - {None}),
        "seconds": elapsed,
        "per_minute": len(per_message) / elapsed * 60,
    }


def extractive_answerer(workdir: Path, real_models: bool):
    from bot.runtime import build_answerer, open_ingestor, open_knowledge_base
    from tests.conftest import fast_config
    from bot.config import AppConfig

    config = AppConfig(data_dir=str(workdir / "data")) if real_models else fast_config(workdir / "data")
    stack = open_knowledge_base(config)
    kb = stack.__enter__()
    with open_ingestor(config, kb) as ingestor:
        ingestor.run([ROOT / "samples"])
    from rag.answer import Answerer  # noqa: F401 - the real pipeline, extractive mode (no LLM)

    return build_answerer(config, kb, model=None), stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--answer-s", type=float, default=10.0)
    parser.add_argument("--retries", type=int, default=20, help="events delivered a second time with a retry header")
    parser.add_argument("--real-models", action="store_true", help="phase 2 with the bundled embedding models (slow on 2 cores)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        slow = run_load(SlowAnswerer(args.answer_s), args.events, args.concurrency, args.retries, Path(tmp))
        print("phase 1 (slow answers):", slow, flush=True)
        os.environ.setdefault("RAGBOT_DATA_DIR", str(Path(tmp) / "data"))
        answerer, stack = extractive_answerer(Path(tmp), args.real_models)
        try:
            fast = run_load(answerer, args.events, args.concurrency, args.retries, Path(tmp) / "x")
        finally:
            stack.__exit__(None, None, None)
        print("phase 2 (extractive):", fast, flush=True)
    embedder = "bundled models" if args.real_models else "hashing embedder"
    text = "\n".join([
        START,
        f"`benchmarks/bench_slack.py` on {os.cpu_count()} CPU core(s): {args.events} signed `app_mention` events, "
        f"{args.concurrency} in flight, {args.retries} re-delivered with `X-Slack-Retry-Num`, Bolt HTTP path, loopback Web API.",
        "",
        "| measure | target | result |",
        "|---|---|---|",
        f"| ack latency p50 / p99 / max, answers taking {args.answer_s:g} s | p99 < 500 ms | {slow['p50_ms']:.0f} / {slow['p99_ms']:.0f} / {slow['max_ms']:.0f} ms |",
        f"| duplicate answers (incl. {args.retries} retries) | 0 | {slow['duplicates']} |",
        f"| lost questions | 0 | {slow['lost']} |",
        f"| all {args.events} answered with {args.answer_s:g} s answers | - | {slow['seconds']:.1f} s |",
        f"| answers posted per minute, real Answerer in extractive mode ({embedder}, samples/) | - | {fast['per_minute']:.0f} ({fast['answered']} in {fast['seconds']:.1f} s; ack p99 {fast['p99_ms']:.0f} ms; duplicates {fast['duplicates']}, lost {fast['lost']}) |",
        END,
    ])
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Slack bot under load")


if __name__ == "__main__":
    main()
