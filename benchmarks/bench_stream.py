"""Streaming benchmark: how soon an answer's first words show in Slack, what it costs in Web API calls, Discord edit rate.

ragbot's Answerer over the ingested samples/ (hashing embedder: retrieval is not what is measured),
its LLM a loopback OpenAI-compatible server writing --tokens-per-s (4 characters a token). Each
question is a signed `app_mention` through Bolt's HTTP path, answered in turn, against the loopback
Slack Web API in three workspace kinds:

- native: chat.startStream & co. and thread status allowed (the default now);
- fallback (no streaming): chat.startStream answers not_allowed, thread status allowed;
- fallback (neither): chat.startStream and assistant.threads.setStatus refused (an older Enterprise
  Grid): the "Looking through the documents…" placeholder edited with chat.update every
  slack.stream_interval_s, as every answer was posted before this change.

"First visible answer text" is the first Web API call that puts answer text in front of the user
(chat.startStream, or a post/edit carrying it), timed from just before the event is sent.
Discord: the same answers to `/ask`, counting the requests that stream them into the deferred reply.

    .venv/bin/python benchmarks/bench_stream.py [--questions 20] [--tokens-per-s 30] [--no-write]
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
from bot.config import BotConfig, SlackConfig  # noqa: E402
from tests.fakes import FakeOpenAIServer  # noqa: E402
from tests.slack_fakes import event_body  # noqa: E402

START, END = "<!-- stream:start -->", "<!-- stream:end -->"
ANSWER = (
    "Only admins can run /ragbot-ingest [1]. Their Slack user ids are listed under slack.admins, and Discord "
    "admins under discord.admins or discord.admin_roles [1]. Anyone else who tries gets a short refusal that "
    "names the setting to change [2]. A re-ingest reads only what changed since the last run, so it is quick "
    "on a large corpus, and its summary is posted in the channel when it is done [2]."
)
QUESTIONS = ["Who can run /ragbot-ingest?", "How do I re-ingest the documents?", "Who may re-ingest, and how?",
             "What happens on a re-ingest?", "Which users are admins?"]
TEXT_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream", "chat.postMessage", "chat.update")


def build_answerer(stack: contextlib.ExitStack, tmp: Path, tokens_per_s: float):
    from bot.runtime import build_answerer as build, open_ingestor, open_knowledge_base
    from tests.conftest import fast_config

    server = stack.enter_context(FakeOpenAIServer(("ok", ANSWER, 1.0 / tokens_per_s)))
    config = fast_config(tmp / "data", llm={"provider": "openai", "base_url": server.base_url, "model": "fake"})
    kb = stack.enter_context(open_knowledge_base(config))
    with open_ingestor(config, kb) as ingestor:
        ingestor.run([ROOT / "samples"])
    return build(config, kb)


def _shows_answer(method: str, params: dict) -> bool:
    """Whether a call puts answer text in front of the user (not a status, not the placeholder)."""
    if method == "chat.startStream":
        return any(c.get("text") for c in params.get("chunks") or []) or bool(params.get("markdown_text"))
    if method in ("chat.postMessage", "chat.update"):
        return bool(params.get("text")) and not params["text"].startswith("Looking through")
    return False


def slack_run(answerer, tmp: Path, questions: int, refuse: dict) -> dict:
    from tests.test_slack import Harness

    h = Harness(tmp, answerer=answerer, bot=BotConfig(rate_limit=1000), slack=SlackConfig(stream_interval_s=1.5))
    h.api.refuse.update(refuse)
    first_text, first_sign, calls, total = [], [], [], []
    try:
        for i in range(questions + 1):  # the first one warms up (encodings, first search) and is not counted
            before = len(h.api.calls)
            ts = f"{2000 + i}.1"
            event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {QUESTIONS[i % len(QUESTIONS)]}", "ts": ts,
                     "channel": "C1", "event_ts": ts}
            body = event_body(event, f"EvS{i}")
            t0 = time.perf_counter()
            assert h.send(body)[0] == 200
            done = lambda: any(  # noqa: E731 - the final form: stopped stream or a post/edit with blocks
                (m == "chat.stopStream") or (m in ("chat.update", "chat.postMessage") and p.get("blocks"))
                for m, p in h.api.calls[before:]
            )
            deadline = time.monotonic() + 60
            while not done() and time.monotonic() < deadline:
                time.sleep(0.01)
            ended = time.perf_counter()
            mine = list(zip(h.api.calls[before:], h.api.times[before:]))
            shown = [t for (m, p), t in mine if _shows_answer(m, p)]
            signs = [t for (m, p), t in mine if m in ("assistant.threads.setStatus", "chat.postMessage", "chat.startStream")]
            if i:
                first_text.append((shown[0] if shown else ended) - t0)
                first_sign.append((signs[0] if signs else ended) - t0)
                calls.append(len([m for (m, _), _ in mine if m != "auth.test"]))
                total.append(ended - t0)
            time.sleep(0.2)  # let a stray call land in this answer's window
    finally:
        h.close()
    ms = sorted(x * 1000 for x in first_text)
    return {
        "p50": statistics.median(ms), "p95": ms[min(len(ms) - 1, int(round(len(ms) * 0.95)) - 1)],
        "sign_p50": statistics.median(first_sign) * 1000,
        "calls": statistics.mean(calls), "calls_max": max(calls), "total_s": statistics.median(total),
        "streamed": sum(1 for m, _ in h.api.calls if m == "chat.startStream"),
    }


def discord_run(answerer, tmp: Path, questions: int) -> dict:
    from tests.discord_fakes import interaction_payload
    from tests.test_discord import FOLLOWUP, Harness

    h = Harness(tmp, answerer=answerer, bot=BotConfig(rate_limit=1000))
    times: list[tuple[float, str, str]] = []

    class TimedCalls(list):
        def append(self, call):
            token = call.params.get("webhook_token", "")
            times.append((time.perf_counter(), call.path, str(token)))
            super().append(call)

    async def go():
        await h.start()
        h.calls = TimedCalls()
        h.client.http.calls = h.calls
        from discord.webhook.async_ import async_context

        async_context.get().calls = h.calls
        for i in range(questions):
            before = len(h.calls)
            h.interaction(interaction_payload("ask", {"question": QUESTIONS[i % len(QUESTIONS)]}, user=50 + i))
            while not any(c.path == FOLLOWUP or c.embeds for c in h.calls[before + 1:]):
                await asyncio.sleep(0.02)
            await h.settle(30)

    try:
        asyncio.run(go())
    finally:
        h.close()
    per_answer: dict[str, list[float]] = {}
    for t, path, token in times:
        if path.startswith("/webhooks/"):
            per_answer.setdefault(token, []).append(t)
    rates, window_max, requests = [], 0, []
    for stamps in per_answer.values():
        requests.append(len(stamps))
        span = stamps[-1] - stamps[0]
        if len(stamps) > 1 and span > 0:
            rates.append((len(stamps) - 1) / span)
        window_max = max(window_max, max(sum(1 for s in stamps if t <= s < t + 1.0) for t in stamps))
    return {"rate": statistics.mean(rates) if rates else 0.0, "window_max": window_max, "requests": statistics.mean(requests)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--tokens-per-s", type=float, default=30.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    kinds = [
        ("native: chat.startStream, thread status", {}),
        ("fallback: chat.startStream not_allowed", {"chat.startStream": "not_allowed"}),
        ("fallback: startStream and setStatus refused (as before)", {"chat.startStream": "not_allowed", "assistant.threads.setStatus": "not_allowed"}),
    ]
    tokens = (len(ANSWER) + 3) // 4
    lines = [
        START,
        f"{measured_on()}; `benchmarks/bench_stream.py`: {args.questions} signed `app_mention` events (after one to warm up) "
        f"answered one after another by ragbot's Answerer (samples/, hashing embedder) with a loopback LLM writing {args.tokens_per_s:g} tokens/s "
        f"({tokens} tokens, about {tokens / args.tokens_per_s:.1f} s), loopback Slack Web API; Discord: the same answers to `/ask`.",
        "",
        "| Slack workspace | event -> first visible answer text p50 / p95 | event -> first sign of work (status or placeholder) p50 "
        "| Web API calls per answer (mean / max) | event -> answer complete (p50) |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        answerer = build_answerer(stack, Path(tmp), args.tokens_per_s)
        for i, (name, refuse) in enumerate(kinds):
            r = slack_run(answerer, Path(tmp) / f"s{i}", args.questions, refuse)
            if i == 0 and r["streamed"] < args.questions + 1:
                raise SystemExit(f"only {r['streamed']} of {args.questions} answers streamed: the benchmark is not measuring streaming")
            lines.append(
                f"| {name} | {r['p50']:.0f} / {r['p95']:.0f} ms | {r['sign_p50']:.0f} ms | {r['calls']:.1f} / {r['calls_max']} "
                f"| {r['total_s']:.2f} s |"
            )
            print(lines[-1], flush=True)
        d = discord_run(answerer, Path(tmp) / "d", args.questions)
    lines += [
        "",
        "| Discord `/ask` | target | result |",
        "|---|---|---|",
        f"| requests per second into a streaming reply (mean over answers) | <= 1 | {d['rate']:.2f} |",
        f"| most requests in any 1 s window | <= 1 | {d['window_max']} |",
        f"| requests per answer (edits and follow-ups, final included) | - | {d['requests']:.1f} |",
        END,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Streaming answers (Slack, Discord)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
