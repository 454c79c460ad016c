"""Discord benchmark: interaction -> defer latency and event-loop stall with 20 answers in flight.

20 `/ask` interactions start answers in the core's worker pool; while they run, --probes more
`/ask` interactions arrive every 50 ms and the time from dispatch to their defer request is
measured. A heartbeat task measures how late the event loop wakes up. Everything above
discord.py's HTTP layer is real (see tests/discord_fakes.py). Two kinds of answer:

- `--answerer real` (default): ragbot's own Answerer over the sample corpus with the default
  offline models (hybrid retrieval: MiniLM and e5 question embeddings, BM25, Chroma), and an
  OpenAI-compatible server on 127.0.0.1 that streams the answer over --answer-s seconds;
- `--answerer busy`: a worst case that burns --answer-s seconds of pure-Python CPU per answer,
  holding the GIL the whole time (nothing real does: torch, Chroma and socket reads release it).

Both start as `ragbot serve discord` does (bot.runtime.prepare_for_serving: models and tiktoken
encodings loaded, heap frozen out of the garbage collector, 1 ms GIL switch interval).

    .venv/bin/python benchmarks/bench_discord.py [--answerer real|busy] [--answer-s 2] [--probes 100] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import measured_on, write_section  # noqa: E402
from bot.config import BotConfig  # noqa: E402
from discord.webhook.async_ import async_context  # noqa: E402

from tests.discord_fakes import interaction_payload  # noqa: E402
from tests.fakes import FakeOpenAIServer  # noqa: E402
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


ANSWER = "Only admins can run /ragbot-ingest: their user ids are listed under slack.admins or discord.admins [1]."


def real_answerer(stack: contextlib.ExitStack, tmp: Path, answer_s: float):
    """ragbot's Answerer over the ingested sample corpus, its LLM a loopback server streaming for answer_s."""
    from bot.config import AppConfig
    from bot.runtime import build_answerer, open_ingestor, open_knowledge_base, prepare_for_serving

    pieces = max(1, (len(ANSWER) + 3) // 4)
    server = stack.enter_context(FakeOpenAIServer(("ok", ANSWER, answer_s / pieces)))
    config = AppConfig.model_validate(
        {"data_dir": str(tmp / "data"), "llm": {"provider": "openai", "base_url": server.base_url, "model": "fake"}}
    )
    kb = stack.enter_context(open_knowledge_base(config))
    with open_ingestor(config, kb) as ingestor:
        ingestor.run([ROOT / "samples"])
    answerer = build_answerer(config, kb)
    prepare_for_serving(kb, (config.llm.encoding, config.ingest.chunking.encoding))  # as `ragbot serve discord` does
    return answerer


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

    topics = ["Who can run /ragbot-ingest?", "How do I switch to OpenAI embeddings?", "再取り込みは誰が実行できますか？",
              "When did Kenji talk about timestamps?", "What happens when I delete a file and re-ingest?"]

    def ask(i: int) -> None:
        payload = interaction_payload("ask", {"question": f"{topics[i % len(topics)]} ({i})"}, user=1000 + i)
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


def measure(kind: str, answer_s: float, probes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if kind == "real":
            answerer = real_answerer(stack, Path(tmp), answer_s)
        else:
            from bot.runtime import tune_for_serving

            answerer = BusyAnswerer(answer_s)
            tune_for_serving()  # as `ragbot serve discord` does
        h = Harness(Path(tmp), answerer=answerer, bot=BotConfig(workers=4, queue_size=16, rate_limit=1000))

        async def go():
            await h.start()
            result = await run(h, probes)
            await h.settle(60)
            return result

        try:
            return asyncio.run(go())
        finally:
            h.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answerer", choices=["real", "busy", "both"], default="both")
    parser.add_argument("--answer-s", type=float, default=2.0, help="seconds the LLM streams (real) or the CPU burns (busy)")
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    kinds = ["real", "busy"] if args.answerer == "both" else [args.answerer]
    what = {
        "real": f"ragbot's Answerer, sample corpus, default offline models, LLM streaming {args.answer_s:.1f} s",
        "busy": f"worst case: {args.answer_s:.1f} s of pure-Python CPU per answer, GIL held throughout",
    }
    lines = [
        START,
        f"{measured_on()}. 20 `/ask` answers in flight on 4 workers, {args.probes} more `/ask` arriving every 50 ms "
        "(beyond the queue they get the private \"busy\" reply, after their defer); discord.py's HTTP layer faked; "
        "process prepared as `ragbot serve discord` prepares it (models and encodings loaded, `gc.freeze()`, 1 ms switch interval).",
        "",
        "| answers | interaction -> defer p50 / p99 / max (target p99 < 500 ms) | event-loop stall p99 / max, 10 ms heartbeat (target max < 100 ms) |",
        "|---|---|---|",
    ]
    for kind in kinds:
        r = measure(kind, args.answer_s, args.probes)
        lines.append(
            f"| {what[kind]} | {r['p50']:.1f} / {r['p99']:.1f} / {r['max_defer']:.1f} ms ({r['interactions']} interactions) "
            f"| {r['stall_p99']:.1f} / {r['stall_max']:.1f} ms |"
        )
        print(lines[-1], flush=True)
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Discord bot under load")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
