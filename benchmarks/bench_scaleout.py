"""Scale-out benchmark: two Slack HTTP worker processes on one `chroma run` and one `redis-server`.

Everything real but Slack: `chroma run` and `redis-server` on 127.0.0.1, two
`ragbot serve slack --mode http` processes (workers A and B, as behind a load balancer), the
loopback Web API of the Slack benchmark, requests signed as Slack signs them.

1. warm-up, then one worker: N app_mention events to A alone, answers per minute;
2. two workers: N new events, alternately to A and B, 50 in flight, and 40 of them delivered
   again (X-Slack-Retry-Num) to the worker that did not get the original: duplicate answers,
   lost questions, answers per minute (two workers vs one); 1 and 2 alternate --rounds times
   (3), the figures are those of all rounds together, and each round's ratio is given too;
3. restart: a thread answered by A, A killed (SIGKILL) and started again, the follow-up
   (no mention) sent to A: answered, and the thread's second turn carries the first's topic;
   a feedback click on B for an answer A posted (and the same click again on A): one vote;
4. orphans: 60 mentions acked by A, A killed at once (its queue unanswered; Slack will not send them
   again): B answers them once A's liveness mark lapses; A is started again;
5. keyword refresh: worker B restarted with a keyword-only retrieval config, then an admin
   /ragbot-ingest through A adds a file with a made-up word; time until /ask through B cites
   it (B follows A's write through the shared keyword channel in the Chroma server).

    python benchmarks/bench_scaleout.py [--events 400] [--concurrency 50] [--retries 40] [--rounds 3] [--no-write]

Results go to stdout and into docs/BENCHMARKS.md between the scaleout markers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import measured_on, write_section  # noqa: E402
from tests.slack_fakes import SECRET, FakeSlackAPI, action_body, command_body, event_body, post, signed_headers  # noqa: E402

START, END = "<!-- scaleout:start -->", "<!-- scaleout:end -->"
QUESTIONS = [
    "How do I switch to OpenAI embeddings?", "Who can run /ragbot-ingest?", "What happens when I delete a file and re-ingest?",
    "Which file types can be ingested?", "How are transcripts cited?",
]
MADE_UP = "zorblequant"
JOB_LIVENESS_S = 5.0  # how soon B takes over what a killed A had accepted (the default is 30 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)


class Worker:
    """One `ragbot serve slack --mode http` process on its own port."""

    def __init__(self, name: str, config: Path, env: dict, work: Path, port: int | None = None):
        self.name, self.config, self.env, self.work = name, config, env, work
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self, config: Path | None = None) -> float:
        started = time.perf_counter()
        self.log = self.work / f"worker-{self.name}.log"
        command = [sys.executable, "-m", "bot", "--config", str(config or self.config), "serve", "slack", "--mode", "http",
                   "--port", str(self.port)]
        self.proc = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc, self.log)
        return time.perf_counter() - started

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mention(url: str, i: int, tag: str, retry: int = 0, thread: str | None = None, text: str | None = None) -> int:
    event = {"type": "app_mention", "user": f"U{tag}{i}", "text": f"<@UBOT> {text or QUESTIONS[i % len(QUESTIONS)]}",
             "ts": thread or f"{tag_ts(tag)}{i}.1", "channel": "C1"}
    body = event_body(event, f"Ev{tag}{i}")
    headers = signed_headers(body)
    if retry:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    status, _, _ = post(url, body, headers, timeout=60)
    return status


def tag_ts(tag: str) -> str:
    return str(1000 + sum(ord(c) for c in tag) * 10)


def _final(method: str, params: dict, prefix: str) -> bool:
    return method in ("chat.update", "chat.postMessage") and bool(params.get("blocks")) and \
        str(params.get("thread_ts") or params.get("ts") or "").startswith(prefix)


def finals(api: FakeSlackAPI, prefix: str) -> list[dict]:
    """Final answers (posted with blocks, or a placeholder's last edit) in threads whose ts starts with prefix."""
    return [p for m, p in list(api.calls) if _final(m, p, prefix)]


def last_final_at(api: FakeSlackAPI, prefix: str) -> float:
    """time.perf_counter() when the Web API got the last final answer in those threads."""
    return max(t for (m, p), t in zip(list(api.calls), list(api.times)) if _final(m, p, prefix))


class StallWatch:
    """Seconds this process did not run at all (SIGSTOP by another job, or starved): gaps over 0.5 s between 50 ms naps."""

    def __init__(self):
        import threading

        self.stalled = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.05):
            now = time.monotonic()
            if now - last > 0.5:
                self.stalled += now - last - 0.05
            last = now

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.stalled


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds a process has used so far (this process when pid is None)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(api: FakeSlackAPI, urls: list[str], events: int, concurrency: int, retries: int, tag: str,
         pids: dict[str, int | None] | None = None) -> dict:
    """events mentions spread over urls (event i to urls[i % n]), retries re-delivered to another worker.

    pids names the processes whose CPU seconds per answer are reported (None: this benchmark process,
    which also runs the loopback Web API)."""
    pids = pids or {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    prefix = tag_ts(tag)
    jobs = [(urls[i % len(urls)], i, 0) for i in range(events)]
    if retries and len(urls) > 1:
        step = max(events // retries, 1)
        jobs += [(urls[(i + 1) % len(urls)], i, 1) for i in range(0, events, step)][:retries]
    started = time.perf_counter()
    watch = StallWatch()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(lambda job: mention(job[0], job[1], tag, job[2]), jobs))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len({p.get("thread_ts") or p.get("ts") for p in finals(api, prefix)}) < events:
        time.sleep(0.1)
    # to the last answer's arrival, not to this loop's next look (up to 0.1 s later: 1% of a 7 s phase)
    elapsed = (last_final_at(api, prefix) if finals(api, prefix) else time.perf_counter()) - started
    stalled = watch.stop()
    time.sleep(2)  # late duplicates would show now
    posted = finals(api, prefix)
    per_message = Counter(p.get("thread_ts") or p.get("ts") for p in posted)
    threads = Counter(p.get("thread_ts") for m, p in list(api.calls) if m in ("chat.postMessage", "chat.startStream")
                      and str(p.get("thread_ts") or "").startswith(prefix))
    cpu = {name: round((cpu_seconds(pid) - cpu_before[name]) / max(len(per_message), 1) * 1000, 2) for name, pid in pids.items()}
    return {
        "cpu_ms_per_answer": cpu, "deliveries": len(jobs), "non_200": sum(s != 200 for s in statuses), "answered": len(per_message),
        "duplicates": sum(n - 1 for n in per_message.values()) + sum(n - 1 for n in threads.values()),
        "lost": events - len(per_message), "seconds": elapsed, "per_minute": len(per_message) / elapsed * 60,
        "stalled_s": stalled, "per_minute_running": len(per_message) / max(elapsed - stalled, 1e-9) * 60,
    }


def pooled(runs: list[dict]) -> dict:
    """Several load() results as one: answers and seconds added up, CPU per answer weighted by answers."""
    answered = sum(r["answered"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    stalled = sum(r["stalled_s"] for r in runs)
    return {
        "answered": answered, "seconds": seconds, "stalled_s": stalled,
        "per_minute": answered / seconds * 60 if seconds else 0.0,
        "per_minute_running": answered / max(seconds - stalled, 1e-9) * 60,
        "cpu_ms_per_answer": {name: sum(r["cpu_ms_per_answer"][name] * r["answered"] for r in runs) / max(answered, 1)
                              for name in runs[0]["cpu_ms_per_answer"]},
        **{key: sum(r[key] for r in runs) for key in ("duplicates", "lost", "non_200", "deliveries")},
    }


def wait_finals(api: FakeSlackAPI, prefix: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(found := finals(api, prefix)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True).stdout


def phase_restart(api, a, b, rport, config, env, results) -> None:
    """Kill A mid-thread and start it again; a feedback click on B (and again on A) for an answer A wrote."""
    thread = "777.1"
    mention(a.url, 0, "thr", thread=thread, text="Who can run /ragbot-ingest?")
    wait_finals(api, "777.", 1)
    a.stop(signal.SIGKILL)
    results["restart_s"] = a.start()
    follow = {"type": "message", "channel_type": "channel", "user": "Uthr0", "text": "and how long does it take?",
              "ts": "777.5", "thread_ts": thread, "channel": "C1"}
    body = event_body(follow, "EvThrFollow")
    post(a.url, body, signed_headers(body))
    answered = wait_finals(api, "777.", 2)
    turns = [json.loads(t) for t in redis_cli(rport, "LRANGE", f"ragbot:thread:slack:C1:{thread}", "0", "-1").splitlines()]
    results["restart"] = {
        "follow_up_answered": len(answered) >= 2, "turns": len(turns),
        "second_standalone": turns[1][1] if len(turns) > 1 else None,
        "carried": len(turns) > 1 and turns[1][1] != turns[1][0],
    }
    print("restart:", results["restart"], flush=True)

    # feedback on B for an answer A wrote (and the same click again on A)
    response_url = f"http://127.0.0.1:{api.port}/response/fb"
    body = command_body("/ask", "Who can run /ragbot-ingest?", user="Ufb", response_url=response_url)
    post(a.url, body, signed_headers(body, content_type="application/x-www-form-urlencoded"))
    [reply] = api.wait_for("/response/fb", 1, where=lambda p: "blocks" in p, timeout=60)
    answer_id = next(e["value"] for blk in reply["blocks"] if blk["type"] == "actions" for e in blk["elements"]
                     if e.get("action_id") == "ragbot_feedback_helpful")
    for w in (b, a):
        body = action_body("ragbot_feedback_helpful", answer_id, user="Uvoter", response_url=response_url)
        post(w.url, body, signed_headers(body, content_type="application/x-www-form-urlencoded"))
    api.wait_for("/response/fb", 2, where=lambda p: "Thanks" in p.get("text", ""), timeout=30)
    votes = json.loads(subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "feedback", "--json"], env=env,
                                      cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    results["votes"] = [v for v in votes if v["answer_id"] == answer_id]
    print("votes:", len(results["votes"]), flush=True)


def phase_orphans(api, a, b, results, count: int = 60) -> None:
    """count mentions to A, all acked at once; A killed (SIGKILL) as soon as the acks are in, its queue unanswered.

    Slack does not send an acked event again: B answers what A had accepted (the jobs in the state
    store) once A's liveness mark lapses (bot.job_liveness_s). Then A is started again."""
    prefix = tag_ts("orph")
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(lambda i: mention(a.url, i, "orph"), range(count)))
    a.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    before = {p.get("thread_ts") or p.get("ts") for p in finals(api, prefix)}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len({p.get("thread_ts") or p.get("ts") for p in finals(api, prefix)}) < count:
        time.sleep(0.1)
    all_done_s = time.monotonic() - killed_at
    time.sleep(2)  # late duplicates would show now
    per_thread = Counter(p.get("thread_ts") or p.get("ts") for p in finals(api, prefix))
    results["orphans"] = {
        "sent": count, "acked": sum(s == 200 for s in statuses), "answered_before_kill": len(before),
        "answered": len(per_thread), "lost": count - len(per_thread), "duplicates": sum(n - 1 for n in per_thread.values()),
        "all_answered_after_s": all_done_s,
    }
    print("orphans:", results["orphans"], flush=True)
    if results["orphans"]["lost"]:
        print("worker B's log, last lines:\n" + "\n".join(b.log.read_text(errors="replace").splitlines()[-15:]), flush=True)
    results["orphans_restart_s"] = a.start()


def phase_keyword(api, a, b, keyword_only, docs, results) -> None:
    """B restarted keyword-only; an admin ingest through A adds a made-up word; time until /ask through B cites it."""
    response_url = f"http://127.0.0.1:{api.port}/response/kwingest"
    b.stop()
    b.start(keyword_only)
    (docs / "glossary-new.md").write_text(
        f"# New term\n\nThe {MADE_UP} setting controls how often the bot rotates its archive.\n", encoding="utf-8")
    body = command_body("/ragbot-ingest", "", user="UADMIN", channel="C1", response_url=response_url)
    t_ingest = time.perf_counter()
    post(a.url, body, signed_headers(body, content_type="application/x-www-form-urlencoded"))
    done = api.wait_for("chat.postMessage", 1, where=lambda p: "Re-ingest of" in p.get("text", "") and "finished" in p.get("text", ""),
                        timeout=300)
    ingest_done = time.perf_counter()
    found_after = None
    probes = 0
    while time.perf_counter() - ingest_done < 30:
        probes += 1
        url = f"http://127.0.0.1:{api.port}/response/kw{probes}"
        body = command_body("/ask", f"What does the {MADE_UP} setting control?", user=f"Ukw{probes}", response_url=url)
        post(b.url, body, signed_headers(body, content_type="application/x-www-form-urlencoded"))
        got = api.wait_for(f"/response/kw{probes}", 1, where=lambda p: "blocks" in p, timeout=30)
        if got and "glossary-new" in json.dumps(got[0]):
            found_after = time.perf_counter() - ingest_done
            break
        time.sleep(0.5)
    results["keyword"] = {"ingest_posted": bool(done), "ingest_s": ingest_done - t_ingest, "found_after_s": found_after,
                          "probes": probes}
    print("keyword:", results["keyword"], flush=True)


def orphans_row(results: dict) -> str:
    o = results.get("orphans")
    what = (f"| {o['sent'] if o else 60} mentions acked by A, A killed (SIGKILL) right after the acks: questions it had accepted "
            f"and not answered are answered by B (`bot.job_liveness_s` {JOB_LIVENESS_S:g} s here, 30 s by default) | 0 lost, 0 duplicates | ")
    if not o:
        return what + f"phase failed: {results.get('orphans_error')} |"
    return what + (f"{o['lost']} lost, {o['duplicates']} duplicates ({o['answered_before_kill']} answered by A before the kill, "
                   f"{o['answered'] - o['answered_before_kill']} after it, all within {o['all_answered_after_s']:.1f} s of the kill) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--retries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3,
                        help="one-worker and two-worker runs, alternated (the ratio moves a few %% from run to run)")
    parser.add_argument("--real-models", action="store_true", help="the bundled embedding models (default: hashing embedder)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    for exe in ("redis-server", "redis-cli"):
        if shutil.which(exe) is None:
            raise SystemExit(f"{exe} is not installed (Debian: apt-get install redis-server)")
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    load_at_start = os.getloadavg()
    procs: list[subprocess.Popen] = []
    workers: list[Worker] = []
    api = FakeSlackAPI()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            rport, cport = free_port(), free_port()
            procs.append(subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "",
                                           "--appendonly", "no"], stdout=open(work / "redis.log", "wb"), stderr=subprocess.STDOUT))
            # as deploy/ragbot-chroma.service runs it: RUST_LOG=warn (no three-line log of every request)
            procs.append(subprocess.Popen([chroma, "run", "--path", str(work / "chroma"), "--host", "127.0.0.1", "--port", str(cport)],
                                          stdout=open(work / "chroma.log", "wb"), stderr=subprocess.STDOUT,
                                          env=dict(os.environ, RUST_LOG="warn")))
            wait_http(f"http://127.0.0.1:{cport}/api/v2/heartbeat", procs[1], work / "chroma.log")
            docs = work / "docs"
            shutil.copytree(ROOT / "samples", docs)
            base = {
                "data_dir": str(work / "data"),
                "store": {"mode": "server", "host": "127.0.0.1", "port": cport},
                "state": {"backend": "redis", "url": f"redis://127.0.0.1:{rport}/0"},
                "bot": {"workers": 4, "queue_size": args.events * 2, "rate_limit": 1000, "ingest_paths": [str(docs)],
                        "status_for": "everyone", "job_liveness_s": JOB_LIVENESS_S, "job_check_s": 1.0},
                "slack": {"admins": ["UADMIN"], "stream_interval_s": 0},
                "llm": {"provider": "extractive"},
            }
            if not args.real_models:
                from tests.conftest import FAST_SPACES

                base.update(FAST_SPACES)
            config = work / "config.yaml"
            config.write_text(json.dumps(base), encoding="utf-8")  # JSON is YAML
            keyword_only = work / "keyword-only.yaml"
            keyword_only.write_text(json.dumps({**base, "retrieval": {"dense_weight": 0.0}}), encoding="utf-8")
            env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=api.base_url,
                       PYTHONPATH=str(ROOT), RAGBOT_DATA_DIR=str(work / "data"))
            env.pop("RAGBOT_CONFIG", None)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "bot", "--config", str(config), "ingest", str(docs)], env=env, cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
            results["ingest_s"] = time.perf_counter() - t0
            a, b = Worker("A", config, env, work), Worker("B", config, env, work)
            workers += [a, b]
            results["start_s"] = [a.start(), b.start()]
            for w in (a, b):  # warm-up: first answers load what prepare_for_serving did not
                load(api, [w.url], 10, 10, 0, f"warm{w.name}")
            print("warm", flush=True)

            pids = {"worker A": a.proc.pid, "worker B": b.proc.pid, "chroma run": procs[1].pid, "redis-server": procs[0].pid,
                    "bench client + Web API": None}
            rounds = []  # one worker, then two, again and again: the ratio of each pair, and of all of them together
            for n in range(args.rounds):
                one = load(api, [a.url], args.events, args.concurrency, 0, f"one{n}", pids)
                print(f"round {n + 1}, one worker:", one, flush=True)
                two = load(api, [a.url, b.url], args.events, args.concurrency, args.retries, f"two{n}", pids)
                print(f"round {n + 1}, two workers:", two, flush=True)
                rounds.append((one, two))
            results["rounds"] = rounds

            try:
                phase_restart(api, a, b, rport, config, env, results)
            except Exception as exc:  # noqa: BLE001 - reported, the other figures still written
                results["restart_error"] = repr(exc)
                print("restart phase failed:", repr(exc), flush=True)
            try:
                phase_orphans(api, a, b, results)
            except Exception as exc:  # noqa: BLE001
                results["orphans_error"] = repr(exc)
                print("orphans phase failed:", repr(exc), flush=True)
            try:
                phase_keyword(api, a, b, keyword_only, docs, results)
            except Exception as exc:  # noqa: BLE001
                results["keyword_error"] = repr(exc)
                print("keyword phase failed:", repr(exc), flush=True)
        finally:
            for w in workers:
                w.stop()
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            api.close()
    rounds = results["rounds"]
    one, two = pooled([o for o, _ in rounds]), pooled([t for _, t in rounds])
    ratios = [t["per_minute"] / o["per_minute"] for o, t in rounds if o["per_minute"]]
    r = results.get("restart") or {"follow_up_answered": False, "carried": False, "turns": 0,
                                   "second_standalone": results.get("restart_error")}
    results.setdefault("votes", [])
    results.setdefault("restart_s", float("nan"))
    kw = results.get("keyword") or {"found_after_s": None, "ingest_s": float("nan"), "probes": 0}
    ratio = two["per_minute"] / one["per_minute"] if one["per_minute"] else 0.0
    ratio_running = two["per_minute_running"] / one["per_minute_running"] if one["per_minute_running"] else 0.0
    stalls = one["stalled_s"] + two["stalled_s"]
    cores = os.cpu_count() or 1

    def cpu_cells(run: dict) -> str:
        return ", ".join(f"{name} {ms:.1f}" for name, ms in run["cpu_ms_per_answer"].items() if ms >= 0.05)

    cpu_two = sum(two["cpu_ms_per_answer"].values())  # every process's CPU for one answer, with two workers
    ceiling = cores * 60_000 / cpu_two if cpu_two else float("nan")
    embedder = "bundled models" if args.real_models else "hashing embedder"
    niced = os.nice(0)
    found = f"{kw['found_after_s']:.1f} s after the ingest summary" if kw["found_after_s"] is not None else (
        f"phase failed: {results['keyword_error']}" if "keyword_error" in results else f"not found within 30 s ({kw['probes']} probes)")
    text = "\n".join([
        START,
        f"`benchmarks/bench_scaleout.py`: two `ragbot serve slack --mode http` processes (workers A and B) on one `chroma run` and one "
        f"`redis-server` (state.backend: redis), extractive answers ({embedder}, samples/), loopback Web API, requests signed as "
        f"Slack signs them. {measured_on()} (at the start: {load_at_start[0]:.1f}); "
        f"{'run under nice ' + str(niced) + ' on a machine shared with other jobs, so the timings are upper bounds and the ratio is noisy' if niced else 'normal priority'}.",
        "",
        "| measure | target | result |",
        "|---|---|---|",
        f"| duplicate answers: {args.events} `app_mention` events alternately to A and B, {args.concurrency} in flight, "
        f"{args.retries} re-delivered (`X-Slack-Retry-Num`) to the worker that did not get the original; {len(rounds)} rounds "
        f"| 0 | {two['duplicates']} |",
        f"| lost questions (same rounds) | 0 | {two['lost']} (non-200 acks: {two['non_200']}) |",
        f"| answers per minute, one worker (A only), {len(rounds)} rounds of {args.events} | - | {one['per_minute']:.0f} "
        f"({one['answered']} in {one['seconds']:.1f} s) |",
        f"| answers per minute, two workers, {len(rounds)} rounds (each right after a one-worker round) | >= 1.6x one | "
        f"{two['per_minute']:.0f} ({two['answered']} in {two['seconds']:.1f} s): **{ratio:.2f}x** on {os.cpu_count()} cores; "
        f"round by round {', '.join(f'{x:.2f}x' for x in ratios)}" + (
            f"; the benchmark was stopped or starved for {one['stalled_s']:.0f} s / {two['stalled_s']:.0f} s of the two runs "
            f"(another job's SIGSTOP): without those, {one['per_minute_running']:.0f} vs {two['per_minute_running']:.0f} "
            f"= {ratio_running:.2f}x, still not a clean figure" if stalls > 1 else "") + " |",
        f"| CPU milliseconds per answer, by process: one worker | - | {cpu_cells(one)} |",
        f"| CPU milliseconds per answer, by process: two workers | - | {cpu_cells(two)} (all: {cpu_two:.1f}) |",
        f"| ceiling for two workers: {cores} cores / all processes' CPU per answer | - | {ceiling:.0f} per minute = "
        f"{ceiling / one['per_minute']:.2f}x one worker |",
        f"| worker A killed (SIGKILL) mid-thread and started again ({results['restart_s']:.1f} s): the follow-up without a mention "
        f"is answered and continues the thread | yes | {'yes' if r['follow_up_answered'] and r['carried'] else 'no'} "
        f"({r['turns']} turns stored; the follow-up searched as \"{r['second_standalone']}\") |",
        orphans_row(results),
        f"| a feedback click on B for an answer A posted (clicked again on A) | recorded once | {len(results['votes'])} vote(s) |",
        f"| admin `/ragbot-ingest` through A adds a file with a made-up word; time until `/ask` through B (keyword-only "
        f"retrieval, started before the ingest) cites it | < 5 s | {found} (ingest {kw['ingest_s']:.1f} s; B follows through the shared "
        f"keyword channel in the Chroma server) |",
        END,
    ])
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Scale-out: two Slack workers, one Chroma server, one Redis")


if __name__ == "__main__":
    main()
