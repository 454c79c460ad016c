"""Discord benchmark: interaction -> defer latency and event-loop stall with 20 answers in flight.

20 `/ask` interactions start answers that each burn --answer-s seconds of pure-Python CPU in
the core's worker pool (holding the GIL as embedding/tokenising would); while they run,
--probes more `/ask` interactions arrive every 50 ms and the time from dispatch to their
defer request is measured. A heartbeat task measures how late the event loop wakes up.
Everything above discord.py's HTTP layer is real (see tests/discord_fakes.py).

    .venv/bin/python benchmarks/bench_discord.py [--answer-s 2] [--probes 100] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import write_section  # noqa: E402
from bot.config import BotConfig  # noqa: E402
from discord.webhook.async_ import async_context  # noqa: E402

from tests.discord_fakes import interaction_payload  # noqa: E402
from tests.test_discord import CALLBACK, FOLLOWUP, FakeAnswerer, Harness  # noqa: E402

START, END = "<!-- discord:start -->", "<!-- discord:end -->"


class BusyAnswerer(FakeAnswerer):
    """An answer that burns CPU in Python for answer_s seconds."""

    def __init__(self, answer_s: float):
        super().__init__()
        self.answer_s = answer_s

    def answer(self, question, conversation=None, on_token=None, where=None):
        end = time.perf_counter() + self.answer_s
        x = 0
        while time.perf_counter() < end:
            x += sum(i * i for i in range(2000))
        return super().answer(question, conversation, on_token, where)


async def run(h: Harness, probes: int) -> dict:
    sent: dict[str, float] = {}
    deferred: dict[str, float] = {}

    class TimedCalls(list):
        def append(self, call):  # the webhook token names the interaction
            if call.path == CALLBACK:
                deferred.setdefault(call.params["webhook_token"], time.perf_counter())
            super().append(call)

    h.calls = TimedCalls()
    h.client.http.calls = h.calls
    async_context.get().calls = h.calls
    stalls: list[float] = []
    stop = asyncio.Event()

    async def heartbeat():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            stalls.append(time.perf_counter() - t - 0.01)

    beat = asyncio.create_task(heartbeat())

    def ask(i: int) -> None:
        payload = interaction_payload("ask", {"question": f"question {i}?"}, user=1000 + i)
        sent[payload["token"]] = time.perf_counter()
        h.interaction(payload)

    for i in range(20):
        ask(i)
    for i in range(probes):
        await asyncio.sleep(0.05)
        ask(100 + i)
    while len([c for c in h.calls if c.path == FOLLOWUP]) < 20 + probes:
        await asyncio.sleep(0.05)
    stop.set()
    await beat
    latencies = sorted((deferred[t] - s) * 1000 for t, s in sent.items())
    return {
        "interactions": len(latencies),
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "max_defer": latencies[-1],
        "stall_max": max(stalls) * 1000,
        "stall_p99": sorted(stalls)[int(len(stalls) * 0.99)] * 1000,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer-s", type=float, default=2.0)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(Path(tmp), answerer=BusyAnswerer(args.answer_s), bot=BotConfig(workers=4, queue_size=16, rate_limit=1000))

        async def go():
            await h.start()
            result = await run(h, args.probes)
            await h.settle(60)
            return result

        try:
            r = asyncio.run(go())
        finally:
            h.close()
    text = "\n".join([
        START,
        f"20 `/ask` answers in flight (4 workers, each burning {args.answer_s:.1f} s of Python CPU), "
        f"{args.probes} more `/ask` arriving every 50 ms; {os.cpu_count()} CPU(s); discord.py's HTTP layer faked.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| interaction -> defer, p50 / p99 / max ({r['interactions']} interactions) | {r['p50']:.1f} / {r['p99']:.1f} / {r['max_defer']:.1f} ms | p99 < 500 ms |",
        f"| event-loop stall, p99 / max (10 ms heartbeat) | {r['stall_p99']:.1f} / {r['stall_max']:.1f} ms | max < 100 ms |",
        "",
        "Probes beyond the 20 in flight found the queue full and got the private \"busy\" reply, after their defer.",
        END,
    ])
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Discord bot under load")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
