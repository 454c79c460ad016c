"""The bot's state store: what users notice when the bot restarts or runs as several workers.

Every backend passes the same contract (memory, sqlite, and redis against a real
`redis-server` on 127.0.0.1); then two Slack workers over one store (a retry that reaches the
other worker is not answered twice, a feedback click there is recorded once), a restart that
keeps a thread, one admin ingest at a time across workers, and a Redis password that never
shows in an error, a log line or `ragbot config`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import threading
import time
import uuid
from dataclasses import asdict
from types import SimpleNamespace

import pytest

from bot.config import AppConfig, BotConfig
from bot.core import BotCore, IncomingMessage
from bot.feedback import Feedback
from bot.slack_format import FEEDBACK_HELPFUL
from bot.state import (
    HeldElsewhereError,
    MemoryState,
    RedisState,
    SQLiteState,
    StateError,
    StateStore,
    exclusive,
    holder_name,
    open_state,
)
from rag.conversation import Turn
from tests.conftest import eventually, start_redis, stop_process
from tests.slack_fakes import event_body
from tests.test_slack import FakeAnswerer, Harness, _answer_posts

BACKENDS = ["memory", "sqlite", "redis"]


def _open(backend: str, tmp_path, redis_url: str | None, prefix: str, clock=time.time):
    if backend == "memory":
        return MemoryState(clock=clock)
    if backend == "sqlite":
        return SQLiteState(tmp_path / "state.sqlite", clock=clock)
    return RedisState(redis_url, prefix=prefix, clock=clock)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def url_for(backend, request):
    """The redis URL (starting the module's redis-server) only for the redis backend."""
    return request.getfixturevalue("redis_url") if backend == "redis" else None


@pytest.fixture
def store(backend, url_for, tmp_path):
    s = _open(backend, tmp_path, url_for, f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


def test_every_backend_is_a_state_store(store):
    assert isinstance(store, StateStore)


def test_a_repeated_event_id_is_refused_until_it_expires(store):
    assert store.first_delivery("Ev1", ttl_s=60) is True
    assert store.first_delivery("Ev1", ttl_s=60) is False
    assert store.first_delivery("Ev2", ttl_s=60) is True
    assert store.first_delivery("Short", ttl_s=0.2) is True
    time.sleep(0.5)  # only waiting past the expiry is asserted: a slow machine cannot make it pass or fail early
    assert store.first_delivery("Short", ttl_s=60) is True and store.first_delivery("Ev1", ttl_s=60) is False


def test_rate_window_counts_per_user(store):
    assert store.rate_check("slack:U1", 2, 60) == 0
    assert store.rate_check("slack:U1", 2, 60) == 0
    wait = store.rate_check("slack:U1", 2, 60)
    assert 55 < wait <= 60
    assert store.rate_check("slack:U2", 2, 60) == 0


def test_thread_keeps_its_last_turns(store):
    assert store.thread_turns("slack:C1:1.1") is None and not store.knows_thread("slack:C1:1.1")
    for i in range(3):
        store.add_turn("slack:C1:1.1", Turn(f"q{i}", f"s{i}", f"a{i} 日本語"), keep=2)
    assert store.thread_turns("slack:C1:1.1") == [Turn("q1", "s1", "a1 日本語"), Turn("q2", "s2", "a2 日本語")]
    assert store.knows_thread("slack:C1:1.1")


def test_answer_records_expire(store):
    store.put_answer("a1", {"question": "q", "reply": {"text": "t"}}, ttl_s=60)
    store.put_answer("a2", {"question": "q2", "reply": {"text": "t2"}}, ttl_s=0.2)
    assert store.get_answer("a1") == {"question": "q", "reply": {"text": "t"}}
    time.sleep(0.5)  # past a2's expiry (only that side is asserted, so load cannot flip it)
    assert store.get_answer("a2") is None and store.get_answer("never") is None
    assert store.get_answer("a1") == {"question": "q", "reply": {"text": "t"}}


def test_a_second_click_replaces_the_first_vote(store):
    store.add_feedback(Feedback(True, "U1", "slack", "C1", "q", "a", answer_id="x", at=1.0))
    store.add_feedback(Feedback(True, "U2", "slack", "C1", "q", "a", answer_id="x", at=2.0))
    store.add_feedback(Feedback(False, "U1", "slack", "C1", "q", "a", answer_id="x", at=3.0))
    assert [(v.user, v.helpful) for v in store.read_feedback()] == [("U2", True), ("U1", False)]


def test_a_lock_is_held_by_one_until_released_or_expired(store):
    token = store.try_lock("ingest", {"user": "UA"}, ttl_s=60)
    assert token and store.try_lock("ingest", {"user": "UB"}, ttl_s=60) is None
    assert store.lock_info("ingest") == {"user": "UA"}
    assert store.refresh_lock("ingest", "not-the-token", {"user": "UB"}, 60) is False
    assert store.refresh_lock("ingest", token, {"user": "UA", "progress": "3/9"}, 60) is True
    assert store.lock_info("ingest")["progress"] == "3/9"
    store.release_lock("ingest", "not-the-token")
    assert store.lock_info("ingest") is not None
    store.release_lock("ingest", token)
    assert store.lock_info("ingest") is None
    assert store.try_lock("ingest", {}, ttl_s=0.3)
    time.sleep(0.45)  # a worker that died holding it: the lock frees itself
    assert store.try_lock("ingest", {"user": "UB"}, ttl_s=60)


def _claim(args) -> int:
    kind, where, prefix, ids = args
    s = SQLiteState(where) if kind == "sqlite" else RedisState(where, prefix=prefix)
    try:
        return sum(s.first_delivery(i, 60) for i in ids)
    finally:
        s.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_four_processes_claim_each_event_once(kind, tmp_path, request):
    where = str(tmp_path / "state.sqlite") if kind == "sqlite" else request.getfixturevalue("redis_url")
    if kind == "sqlite":
        SQLiteState(where).close()  # the schema exists before the race
    ids = [f"Ev{i}" for i in range(60)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        claimed = pool.map(_claim, [(kind, where, "race", ids)] * 4)
    assert sum(claimed) == len(ids)


# -- what users notice -----------------------------------------------------------------------


def _shared(kind: str, tmp_path, request):
    """A factory of state stores that are one store: each call is another worker's connection."""
    if kind == "sqlite":
        return lambda: SQLiteState(tmp_path / "state.sqlite")
    url, prefix = request.getfixturevalue("redis_url"), f"w-{uuid.uuid4().hex[:8]}"
    return lambda: RedisState(url, prefix=prefix)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_retry_sent_to_the_other_worker_is_not_answered_twice_and_feedback_there_counts_once(kind, tmp_path, request):
    opener = _shared(kind, tmp_path, request)
    a, b = Harness(tmp_path, state=opener()), Harness(tmp_path, state=opener())
    try:
        assert a.mention("Who can re-ingest?", event_id="EvShared", ts="20.1")[0] == 200
        assert len(_answer_posts(a.api)) == 1
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert b.mention("Who can re-ingest?", event_id="EvShared", ts="20.1", extra=retry)[0] == 200
        time.sleep(0.4)
        assert len(a.answerer.calls) + len(b.answerer.calls) == 1  # the /ask below is the second question
        assert _answer_posts(b.api, 1) == [] and b.api.called("chat.postMessage") == []
        # a feedback button of an answer A wrote, clicked where the load balancer sends it: B
        a.command("/ask", "Who can re-ingest?")
        [reply] = a.api.wait_for("/response/1", 1, where=lambda p: "blocks" in p)
        value = next(e["value"] for blk in reply["blocks"] if blk["type"] == "actions" for e in blk["elements"]
                     if e.get("action_id") == FEEDBACK_HELPFUL)
        assert b.action(FEEDBACK_HELPFUL, value, user="U7")[0] == 200
        deadline = time.monotonic() + 5
        while not a.feedback.read_feedback() and time.monotonic() < deadline:
            time.sleep(0.05)
        votes = a.feedback.read_feedback()
        assert [(v.user, v.helpful, v.question) for v in votes] == [("U7", True, "Who can re-ingest?")]
    finally:
        a.close()
        b.close()
        a.feedback.close()
        b.feedback.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_thread_continues_after_a_restart(kind, tmp_path, request):
    opener = _shared(kind, tmp_path, request)
    before = Harness(tmp_path, state=opener())
    before.mention("Who can re-ingest?", event_id="EvR1", ts="30.1")
    _answer_posts(before.api)
    before.close()
    before.feedback.close()
    after = Harness(tmp_path, state=opener())  # a new process: nothing in memory
    try:
        # a thread reply without a mention is answered only in threads the bot knows
        follow = {"type": "message", "channel_type": "channel", "user": "U1", "text": "and for PDFs?", "ts": "30.5",
                  "thread_ts": "30.1", "channel": "C1"}
        after.send(event_body(follow, "EvR2"))
        _answer_posts(after.api)
        assert [(c["question"], c["turns"]) for c in after.answerer.calls] == [("and for PDFs?", 1)]
    finally:
        after.close()
        after.feedback.close()


def test_two_workers_cannot_both_run_an_ingest_and_both_show_its_progress(tmp_path):
    gate, reading = threading.Event(), threading.Event()

    def run_ingest(paths, roots=None, progress=None):
        bar = progress(total=3, desc="Reading", unit="file")
        bar.update(1)
        reading.set()
        gate.wait(30)
        return SimpleNamespace(seconds=1.0, added=1, updated=0, unchanged=0, deleted=0, failed=[], warnings=[])

    (tmp_path / "docs").mkdir()
    config = BotConfig(ingest_paths=[str(tmp_path / "docs")], status_for="everyone")
    workers = [
        BotCore(FakeAnswerer(), config, SQLiteState(tmp_path / "state.sqlite"), admins=["UA", "UB"], run_ingest=run_ingest)
        for _ in range(2)
    ]
    done = []
    try:
        started = workers[0].ingest("UA", [], done.append)
        assert started.kind == "admin"
        assert reading.wait(10)
        refused = workers[1].ingest("UB", [], done.append)
        assert refused.kind == "refused" and "<@UA>" in refused.text
        deadline = time.monotonic() + 10
        status = ""
        while "1/3" not in status and time.monotonic() < deadline:  # progress is published twice a second
            time.sleep(0.1)
            status = workers[1].status("C1", "UB").text
        assert "<@UA>" in status and "Reading: 1/3 files" in status
        gate.set()
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done and done[0].kind == "admin"
        assert workers[1].ingest("UB", [], done.append).kind == "admin"  # free again
        deadline = time.monotonic() + 10
        while len(done) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gate.set()
        for w in workers:
            w.close()
            w.state.close()


def test_feedback_jsonl_is_imported_once_even_if_it_grows_later(tmp_path):
    old = Feedback(True, "U1", "slack", "C1", "Who can re-ingest?", "Admins.", answer_id="", at=1.0)
    (tmp_path / "feedback.jsonl").write_text(json.dumps(old.__dict__) + "\n", encoding="utf-8")
    config = AppConfig(data_dir=str(tmp_path)).state
    first = open_state(config, tmp_path)
    assert [v.question for v in first.read_feedback()] == ["Who can re-ingest?"]
    first.close()
    # an old bot still running appends to the file: the store does not import it again
    with (tmp_path / "feedback.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({**old.__dict__, "user": "U2"}) + "\n")
    second = open_state(config, tmp_path)
    assert [v.user for v in second.read_feedback()] == ["U1"]
    second.close()


def test_redis_password_comes_from_the_environment_and_never_shows(tmp_path, monkeypatch, caplog, capsys):
    from bot.cli import main
    from bot.config import load_config

    password = "s3cret-" + uuid.uuid4().hex
    port, proc, log = start_redis(tmp_path / "redis-auth", password=password)
    try:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"data_dir: {tmp_path / 'data'}\nstate:\n  backend: redis\n  url: redis://127.0.0.1:{port}/0\n", encoding="utf-8")
        caplog.set_level(logging.DEBUG)
        monkeypatch.setenv("RAGBOT_STATE_PASSWORD", password)
        config, _ = load_config(str(cfg))
        store = open_state(config.state, config.data_path())
        store.add_feedback(Feedback(True, "U1", "slack", "C1", "q", "a", answer_id="z"))
        store.close()
        assert main(["--config", str(cfg), "feedback"]) == 0
        assert "1 vote(s)" in capsys.readouterr().out
        assert main(["--config", str(cfg), "config"]) == 0
        shown = capsys.readouterr().out
        assert "RAGBOT_STATE_PASSWORD" in shown and password not in shown
        monkeypatch.setenv("RAGBOT_STATE_PASSWORD", "wrong-" + password)
        with pytest.raises(StateError) as wrong:
            open_state(load_config(str(cfg))[0].state, tmp_path)
        assert "password" in str(wrong.value) and password not in str(wrong.value)
        assert main(["--config", str(cfg), "feedback"]) == 1
        err = capsys.readouterr().err
        assert "refused the password" in err and password not in err
        # a password written into the URL is refused, and not echoed back
        cfg.write_text(f"state:\n  backend: redis\n  url: redis://:{password}@127.0.0.1:{port}/0\n", encoding="utf-8")
        assert main(["--config", str(cfg), "feedback"]) == 1
        err = capsys.readouterr().err
        assert "must not hold a password" in err and password not in err
        assert password not in caplog.text
    finally:
        stop_process(proc, log)


def test_deploy_folder_runs_the_readmes_commands_with_valid_configs():
    """The systemd units start exactly what the README's Deployment section tells people to run."""
    import re

    import yaml

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    units = sorted((REPO / "deploy").glob("*.service"))
    assert len(units) >= 3
    for unit in units:
        [command] = re.findall(r"^ExecStart=(.*)$", unit.read_text(encoding="utf-8"), re.M)
        command = re.sub(r"^/srv/ragbot/\.venv/bin/", "", command)
        assert command in readme, f"{unit.name} runs `{command}`, which the README does not show"
    for path in sorted((REPO / "deploy").glob("*config*.yaml")):
        AppConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert "UNTESTED" in (REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8")


def _posted(api, count: int, timeout: float = 90) -> list[dict]:
    """Final answers posted to the loopback Web API (waiting up to timeout for count of them)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p for m, p in list(api.calls) if m in ("chat.update", "chat.postMessage") and p.get("blocks")]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.integration
def test_workers_share_one_port_and_a_dead_worker_is_replaced(tmp_path, chroma_server):
    """`ragbot serve slack --mode http --workers 2` on a chroma server: answers, survives a killed worker, stops on SIGTERM."""
    import os
    import re
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO, SAMPLES, fast_config
    from tests.slack_fakes import SECRET, FakeSlackAPI, post, signed_headers

    data = {"store": {"mode": "server", "host": "127.0.0.1", "port": chroma_server}, "slack": {"stream_interval_s": 0},
            "llm": {"provider": "extractive"}}
    config = fast_config(tmp_path / "data", **data)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
    api = FakeSlackAPI()
    env = dict(os.environ, SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=api.base_url,
               PYTHONPATH=str(REPO), RAGBOT_CONFIG=str(cfg))
    subprocess.run([sys.executable, "-m", "bot", "ingest", str(SAMPLES / "docs" / "en")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    log = open(tmp_path / "serve.log", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "slack", "--mode", "http", "--port", "0", "--workers", "2"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            text = (tmp_path / "serve.log").read_text(errors="replace")
            if len(re.findall(r"ragbot on Slack \(HTTP, worker (\d+)", text)) >= 2 or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.2)
        pids = [int(p) for p in re.findall(r"ragbot on Slack \(HTTP, worker (\d+)", text)]
        assert len(pids) == 2, text[-3000:]
        url = re.search(r"workers on (http://\S+/slack/events)", text).group(1)

        def ask(i: int) -> None:
            event = {"type": "app_mention", "user": f"U{i}", "text": "<@UBOT> Who can run /ragbot-ingest?", "ts": f"{50 + i}.1", "channel": "C1"}
            from tests.slack_fakes import event_body

            body = event_body(event, f"EvW{i}")
            assert post(url, body, signed_headers(body))[0] == 200

        for i in range(4):
            ask(i)
        assert len(_posted(api, 4)) == 4
        os.kill(pids[0], signal.SIGKILL)  # the other worker keeps serving at once; the supervisor starts a new one
        for i in range(4, 6):
            ask(i)
        assert len(_posted(api, 6)) == 6
        deadline = time.monotonic() + 120
        while len(re.findall(r"ragbot on Slack \(HTTP, worker", (tmp_path / "serve.log").read_text(errors="replace"))) < 3:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        api.close()


def test_several_workers_on_an_embedded_store_are_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    assert main(["serve", "slack", "--mode", "http", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "embedded Chroma is single-process" in err and "chroma run" in err and "store.mode: server" in err


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_second_process_cannot_take_a_hold_until_the_first_lets_go(kind, tmp_path, request):
    """One Discord gateway per token: the second holder is refused with the first's host:pid."""
    opener = _shared(kind, tmp_path, request)
    a, b = opener(), opener()
    try:
        with exclusive(a, "gw:test", "The gateway", ttl_s=600):
            with pytest.raises(HeldElsewhereError) as refused:
                with exclusive(b, "gw:test", "The gateway", ttl_s=600):
                    pass
            assert holder_name() in str(refused.value) and "Stop that process first" in str(refused.value)
        with exclusive(b, "gw:test", "The gateway", ttl_s=600):  # released on exit
            assert a.try_lock("gw:test", {}, 600) is None
    finally:
        a.close()
        b.close()


def test_a_hold_outlives_its_ttl_while_held_and_lapses_after_its_holder_dies(tmp_path):
    """The holder keeps refreshing its hold; a holder that stops refreshing (a crash) frees it after the TTL."""
    now = [1000.0]
    a, b = SQLiteState(tmp_path / "state.sqlite", clock=lambda: now[0]), SQLiteState(tmp_path / "state.sqlite", clock=lambda: now[0])
    refreshed = threading.Event()
    refresh = a.refresh_lock

    def counted(*args):
        ok = refresh(*args)
        refreshed.set()
        return ok

    a.refresh_lock = counted
    try:
        with exclusive(a, "gw:test", "The gateway", ttl_s=60, refresh_s=0.01):
            for _ in range(3):  # three TTLs of the state's clock, a refresh in each
                now[0] += 50
                refreshed.clear()
                assert refreshed.wait(30)
                assert b.lock_info("gw:test") is not None  # still held, 150 s after a 60 s TTL began
            with pytest.raises(HeldElsewhereError):
                with exclusive(b, "gw:test", "The gateway", ttl_s=60):
                    pass
        crashed = a.try_lock("gw:other", {"holder": "otherhost:1"}, 60)  # taken, never refreshed or released
        assert crashed is not None
        now[0] += 61
        with exclusive(b, "gw:other", "The gateway", ttl_s=60):
            assert b.lock_info("gw:other")["holder"] == holder_name()
    finally:
        a.close()
        b.close()


def test_serve_discord_refuses_a_second_gateway_for_the_same_token(tmp_path, monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret-token")
    other = SQLiteState(tmp_path / "state.sqlite")
    name = "discord-gateway:" + hashlib.sha256(b"discord-secret-token").hexdigest()[:16]
    assert other.try_lock(name, {"holder": "otherhost:4242", "since": time.time()}, 60) is not None
    try:
        assert main(["serve", "discord"]) == 1
        err = capsys.readouterr().err
        assert "already held by otherhost:4242" in err and "discord-secret-token" not in err
    finally:
        other.close()


# -- questions accepted and not answered: jobs another worker takes over ---------------------
def test_a_job_moves_to_one_new_holder_only(store):
    store.add_job("j1", "A", {"message": {"text": "q 日本語"}}, ttl_s=60)
    store.add_job("j2", "A", {"message": {"text": "q2"}}, ttl_s=60)
    assert sorted(store.jobs()) == [("j1", "A", {"message": {"text": "q 日本語"}}), ("j2", "A", {"message": {"text": "q2"}})]
    assert store.take_job("j1", "A", "B") is True
    assert store.take_job("j1", "A", "C") is False  # B was first
    assert ("j1", "B", {"message": {"text": "q 日本語"}}) in store.jobs()
    store.finish_job("j1")
    assert [j for j, _, _ in store.jobs()] == ["j2"] and store.take_job("j1", "B", "C") is False


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_old_job_is_not_taken_over(backend, url_for, tmp_path):
    clock = _Clock()  # the store's own clock: expiry without waiting
    store = _open(backend, tmp_path, url_for, f"test-{uuid.uuid4().hex[:8]}", clock=clock)
    try:
        store.add_job("old", "A", {"message": {}}, ttl_s=60)
        store.add_job("new", "A", {"message": {}}, ttl_s=600)
        clock.now += 61
        assert [j for j, _, _ in store.jobs()] == ["new"] and store.take_job("old", "A", "B") is False
    finally:
        store.close()


def _question(i: int) -> IncomingMessage:
    return IncomingMessage(f"How do I re-ingest? ({i})", f"U{i}", "C1", thread=f"17{i}.5", platform="slack")


def test_a_worker_that_stops_leaves_its_questions_to_another(tmp_path):
    """Worker A notes two questions (as the Slack adapter does before its ack) and stops before answering
    them (Slack will not send them again); once A's liveness mark lapses, worker B answers both, once each."""
    clock = _Clock()
    state = SQLiteState(tmp_path / "state.sqlite", clock=clock)  # one file, as two processes on a host share it
    config = BotConfig(workers=1, queue_size=4, job_liveness_s=30, job_check_s=5)
    gate = threading.Event()  # A never gets past its first answer: it "stopped"
    a = BotCore(FakeAnswerer(gate=gate), config, state)
    b_answerer = FakeAnswerer(text="B answers [1].")
    b = BotCore(b_answerer, config, state)
    delivered: list[tuple[str, str, str]] = []

    def resumer(core, name):
        def resume(job_id, record):
            message = IncomingMessage(**record["message"])
            core.submit(message, deliver=lambda reply: delivered.append((name, message.thread, reply.text)), job_id=job_id)
        return resume

    for core, name in ((a, "A"), (b, "B")):
        core.resume_with("slack", resumer(core, name))
        assert core.keep_alive()
    try:
        for i in range(2):
            message = _question(i)
            assert a.note_job(f"job{i}", "slack", {"message": asdict(message)})
            assert a.submit(message, deliver=lambda reply: delivered.append(("A", "", reply.text)), job_id=f"job{i}") is None
        assert len(state.jobs()) == 2
        assert b.recover() == 0  # A is alive: its questions are its own
        clock.now += 31  # A renews nothing any more
        assert b.keep_alive() and b.recover() == 2
        assert eventually(lambda: len(delivered) == 2)
        assert sorted(delivered) == [("B", "170.5", "B answers [1]."), ("B", "171.5", "B answers [1].")]
        assert eventually(lambda: state.jobs() == []) and b.recover() == 0  # each forgotten once delivered
        assert [c["question"] for c in b_answerer.calls] == ["How do I re-ingest? (0)", "How do I re-ingest? (1)"]
    finally:
        gate.set()
        b.close()
        a.close()
        state.close()


def test_an_answered_question_leaves_no_job(tmp_path):
    state = SQLiteState(tmp_path / "state.sqlite")
    core = BotCore(FakeAnswerer(), BotConfig(), state)
    replies = []
    core.resume_with("slack", lambda job_id, record: None)
    core.start_recovery()
    try:
        assert core.note_job("job1", "slack", {"message": asdict(_question(1))})
        assert core.submit(_question(1), deliver=replies.append, job_id="job1") is None
        assert eventually(lambda: replies) and replies[0].kind == "answer"
        assert eventually(lambda: state.jobs() == [])
    finally:
        core.close()
    assert state.lock_info(f"alive:{core.holder}") is None  # a clean stop drops the liveness mark
    state.close()
