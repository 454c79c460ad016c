"""The Slack bot through Bolt, with requests signed as Slack signs them and a loopback Web API."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from bot.config import BotConfig, SlackConfig
from bot.core import BotCore
from bot.state import MemoryState
from bot.slack_app import build_slack_app, build_web_client
from bot.slack_http import serve_http
from bot.slack_format import FEEDBACK_HELPFUL, SHARE_ACTION
from rag.answer import Answer
from rag.citations import Citation
from rag.records import Locator
from tests.conftest import eventually
from tests.slack_fakes import (
    SECRET,
    FakeSlackAPI,
    action_body,
    command_body,
    event_body,
    post,
    signed_headers,
)


class FakeAnswerer:
    """Answers every question with a scripted text and two citations; can be held back by a gate."""

    mode = "extractive"

    def __init__(self, text="Admins run /ragbot-ingest [1]. See the talk [2].", gate: threading.Event | None = None):
        self.text = text
        self.gate = gate
        self.calls: list[dict] = []

    def answer(self, question, conversation=None, on_token=None, where=None):
        self.calls.append({"question": question, "turns": len(conversation.turns) if conversation else 0, "where": where})
        if self.gate is not None:
            self.gate.wait(30)
        if on_token:
            on_token(self.text)
        citations = (
            Citation(1, "/srv/docs/faq.md", Locator(heading="Admin"), "https://wiki.example.com/faq"),
            Citation(2, "/srv/talks/kickoff.vtt", Locator(start_s=65, end_s=100, speaker="Alice")),
        )
        if conversation is not None:
            conversation.add(question, question, self.text)
        return Answer(self.text, citations, "extractive", found=True, grounded=True, question=question)


class Harness:
    def __init__(self, tmp_path, answerer=None, bot=None, slack=None, run_ingest=None, state=None):
        self.api = FakeSlackAPI()
        self.answerer = answerer or FakeAnswerer()
        self.feedback = state if state is not None else MemoryState()
        slack = slack or SlackConfig(admins=["UADMIN"], channels={"CHR": ["hr"]}, stream_interval_s=0)
        self.core = BotCore(
            self.answerer, bot or BotConfig(), self.feedback, channel_sets=slack.channels, admins=slack.admins,
            run_ingest=run_ingest, status=lambda: {"sources": 3, "chunks": 42, "spaces": []},
        )
        client = build_web_client("xoxb-test", self.api.base_url)
        self.app = build_slack_app(self.core, slack, client, signing_secret=SECRET)
        self.server = serve_http(self.app, "127.0.0.1", 0, signing_secret=SECRET)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.response_url = f"http://127.0.0.1:{self.api.port}/response/1"

    def send(self, body: str, content_type="application/json", extra=None, **sign):
        headers = signed_headers(body, content_type=content_type, **sign)
        headers.update(extra or {})
        return post(self.url, body, headers)

    def mention(self, text, event_id="Ev1", ts="111.1", thread_ts=None, channel="C1", extra=None):
        event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts, "channel": channel, "event_ts": ts}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.send(event_body(event, event_id), extra=extra)

    def command(self, command, text, user="U1", channel="C1"):
        body = command_body(command, text, user=user, channel=channel, response_url=self.response_url)
        return self.send(body, content_type="application/x-www-form-urlencoded")

    def action(self, action_id, value, user="U1"):
        body = action_body(action_id, value, user=user, response_url=self.response_url)
        return self.send(body, content_type="application/x-www-form-urlencoded")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.core.close()
        self.api.close()


@pytest.fixture
def slack(tmp_path):
    h = Harness(tmp_path)
    yield h
    h.close()


def _answer_posts(api, count=1):
    """Final answers: chat.update/postMessage calls that carry blocks."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [p for m, p in list(api.calls) if m in ("chat.update", "chat.postMessage") and p.get("blocks")]
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return found


def _all_text(payload) -> str:
    return "\n".join(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section")


def test_mention_is_answered_in_its_thread_with_sources_and_feedback_buttons(slack):
    status, _, _ = slack.mention("Who can re-ingest?", ts="111.1")
    assert status == 200
    [answer] = _answer_posts(slack.api)
    placeholder = slack.api.called("chat.postMessage")[0]
    assert placeholder["thread_ts"] == "111.1" and placeholder["channel"] == "C1"
    text = _all_text(answer)
    assert "Admins run /ragbot-ingest [1]" in text
    assert "[1] <https://wiki.example.com/faq|faq.md ¦ Admin>" in text  # clickable source
    assert "[2] kickoff.vtt | 1:05-1:40 (Alice)" in text  # transcript timestamps
    # Slack's own thumbs where the workspace takes them (the classic buttons are the fallback: test_slack_stream.py)
    [feedback] = [e for b in answer["blocks"] if b["type"] == "context_actions" for e in b["elements"]]
    assert feedback["type"] == "feedback_buttons" and feedback["action_id"] == "ragbot_feedback"
    assert slack.answerer.calls[0]["where"] == {"set": {"$in": ["default"]}}
    assert slack.answerer.calls[0]["question"] == "Who can re-ingest?"


def test_channel_mapped_to_sets_searches_only_those(slack):
    slack.mention("Holiday policy?", channel="CHR")
    _answer_posts(slack.api)
    assert slack.answerer.calls[0]["where"] == {"set": {"$in": ["hr"]}}


def test_retried_event_is_answered_once(slack):
    for attempt in range(3):
        extra = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"} if attempt else None
        status, _, _ = slack.mention("Who can re-ingest?", event_id="EvSame", extra=extra)
        assert status == 200
    _answer_posts(slack.api)
    time.sleep(0.3)
    assert len(slack.answerer.calls) == 1
    assert len(slack.api.called("chat.postMessage")) == 1  # one placeholder, updated once


@pytest.mark.parametrize(
    "sign",
    [
        {"secret": "wrong-secret"},
        {"timestamp": int(time.time()) - 400},  # older than 5 minutes: a replay
    ],
    ids=["bad-signature", "stale-timestamp"],
)
def test_unsigned_or_stale_requests_are_refused(slack, sign):
    body = event_body({"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": "1.1", "channel": "C1"}, "EvX")
    status, _, _ = slack.send(body, **sign)
    assert status == 401
    time.sleep(0.2)
    assert slack.answerer.calls == []


def test_missing_signature_headers_are_refused(slack):
    body = event_body({"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": "1.1", "channel": "C1"}, "EvY")
    status, _, _ = post(slack.url, body, {"Content-Type": "application/json"})
    assert status == 401
    assert slack.answerer.calls == []


def test_bot_messages_are_never_answered(slack):
    event = {"type": "message", "channel_type": "im", "bot_id": "BBOT", "user": "UBOT", "text": "an answer", "ts": "5.1", "channel": "D1"}
    assert slack.send(event_body(event, "EvBot"))[0] == 200
    other = {"type": "message", "channel_type": "im", "subtype": "bot_message", "bot_id": "B2", "text": "hi", "ts": "5.2", "channel": "D1"}
    assert slack.send(event_body(other, "EvBot2"))[0] == 200
    time.sleep(0.3)
    assert slack.answerer.calls == []


def test_direct_message_is_answered_and_thread_follow_up_continues_the_conversation(slack):
    dm = {"type": "message", "channel_type": "im", "user": "U1", "text": "Who can re-ingest?", "ts": "7.1", "channel": "D1"}
    slack.send(event_body(dm, "EvDm"))
    _answer_posts(slack.api)
    follow = {"type": "message", "channel_type": "im", "user": "U1", "text": "and how?", "ts": "7.5", "thread_ts": "7.1", "channel": "D1"}
    slack.send(event_body(follow, "EvDm2"))
    _answer_posts(slack.api, 2)
    assert [c["turns"] for c in slack.answerer.calls] == [0, 1]
    # in a channel, a thread reply without a mention is a follow-up only where the bot answered
    slack.mention("Who can re-ingest?", event_id="EvC", ts="8.1")
    _answer_posts(slack.api, 3)
    reply = {"type": "message", "channel_type": "channel", "user": "U1", "text": "and for PDFs?", "ts": "8.2", "thread_ts": "8.1", "channel": "C1"}
    stranger = {"type": "message", "channel_type": "channel", "user": "U1", "text": "lunch?", "ts": "9.2", "thread_ts": "9.1", "channel": "C1"}
    slack.send(event_body(reply, "EvC2"))
    slack.send(event_body(stranger, "EvC3"))
    _answer_posts(slack.api, 4)
    time.sleep(0.3)
    assert [c["question"] for c in slack.answerer.calls][-1] == "and for PDFs?"
    assert len(slack.answerer.calls) == 4


def test_slow_answers_do_not_delay_acks(tmp_path):
    gate = threading.Event()
    h = Harness(tmp_path, answerer=FakeAnswerer(gate=gate), bot=BotConfig(workers=8, rate_limit=100))
    try:
        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(h.command("/ask", f"question {i}?", user=f"U{i}"))) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        # every command was acked while all six answers were still being written
        assert len(results) == 6 and all(status == 200 for status, _, _ in results)
        assert not gate.is_set()
        gate.set()
        answers = h.api.wait_for("/response/1", 6, where=lambda p: "blocks" in p)
        assert len(answers) == 6
        assert all(p["response_type"] == "ephemeral" for p in answers)
    finally:
        gate.set()
        h.close()


def test_full_queue_replies_busy(tmp_path):
    gate = threading.Event()
    h = Harness(tmp_path, answerer=FakeAnswerer(gate=gate), bot=BotConfig(workers=1, queue_size=0, rate_limit=100))
    try:
        h.mention("first?", event_id="E1", ts="1.1")
        h.answerer.calls or time.sleep(0.2)
        h.mention("second?", event_id="E2", ts="2.1")
        [busy] = _answer_posts(h.api)
        assert busy["thread_ts"] == "2.1" and "try again" in _all_text(busy)
        gate.set()
        assert len(_answer_posts(h.api, 2)) == 2
    finally:
        gate.set()
        h.close()


def test_per_user_rate_limit(tmp_path):
    h = Harness(tmp_path, bot=BotConfig(rate_limit=2, rate_window_s=60))
    try:
        for i in range(3):
            h.mention(f"q{i}?", event_id=f"E{i}", ts=f"{i}.1")
        posts = _answer_posts(h.api, 3)
        assert any("questions in the last 60 seconds" in _all_text(p) for p in posts)
        assert len(h.answerer.calls) == 2
    finally:
        h.close()


def test_long_answer_is_split_never_cut_and_mentions_are_escaped(tmp_path):
    long = "Start <!channel> & <@U999> @here. " + " ".join(f"sentence {i} of the answer." for i in range(400)) + " THE END"
    assert len(long) > 7000
    h = Harness(tmp_path, answerer=FakeAnswerer(text=long))
    try:
        h.mention("tell me everything")
        [answer] = _answer_posts(h.api)
        sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
        assert all(len(s) <= 3000 for s in sections)
        body = "".join(sections)
        assert "THE END" in body and "sentence 399 of the answer." in body
        assert "<!channel>" not in json.dumps(answer) and "<@U999>" not in body and "@here" not in body
        assert "&lt;!channel&gt; &amp;" in body
    finally:
        h.close()


def test_rate_limited_web_api_is_retried_once_then_reported(slack):
    slack.api.refuse["assistant.threads.setStatus"] = "not_allowed"  # the placeholder path: chat.update
    slack.api.rate_limits["chat.update"] = 1
    slack.mention("q?", event_id="E429", ts="3.1")
    [answer] = _answer_posts(slack.api)  # the retry after Retry-After went through
    assert "Admins run" in _all_text(answer)
    slack.api.rate_limits["chat.update"] = 10
    slack.mention("again?", event_id="E430", ts="4.1")
    notice = slack.api.wait_for("chat.postMessage", 1, timeout=15, where=lambda p: "rate limiting" in p.get("text", ""))
    assert notice, "the user is told when Slack keeps answering 429"


def test_ask_is_private_with_a_share_button(slack):
    status, body, _ = slack.command("/ask", "Who can re-ingest?")
    assert status == 200
    [reply] = slack.api.wait_for("/response/1", 1, where=lambda p: "blocks" in p)
    assert reply["response_type"] == "ephemeral"
    buttons = [e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]]
    share = [b for b in buttons if b["action_id"] == SHARE_ACTION][0]
    slack.action(SHARE_ACTION, share["value"])
    [shared] = slack.api.wait_for("chat.postMessage", 1, where=lambda p: "blocks" in p)
    assert shared["channel"] == "C1"
    assert "<@U1> asked: Who can re-ingest?" in _all_text(shared)


def test_feedback_is_stored_with_question_answer_and_sources(slack):
    slack.command("/ask", "Who can re-ingest?")
    [reply] = slack.api.wait_for("/response/1", 1, where=lambda p: "blocks" in p)
    answer_id = [e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]][0]["value"]
    assert slack.action(FEEDBACK_HELPFUL, answer_id, user="U7")[0] == 200
    slack.api.wait_for("/response/1", 1, where=lambda p: "Thanks" in p.get("text", ""))
    [vote] = slack.feedback.read_feedback()
    assert vote.helpful and vote.user == "U7" and vote.question == "Who can re-ingest?"
    assert vote.answer.startswith("Admins run") and vote.sources[0]["url"] == "https://wiki.example.com/faq"


def test_admin_ingest_runs_in_background_once_and_posts_a_summary(tmp_path, monkeypatch):
    from ingest.pipeline import Failure, IngestReport

    gate = threading.Event()
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)

    def run_ingest(paths, roots=None):
        gate.wait(10)
        return IngestReport(added=2, updated=1, unchanged=5, deleted=1, failed=[Failure("/x/bad.pdf", "broken")], seconds=1.5)

    h = Harness(tmp_path, run_ingest=run_ingest, bot=BotConfig(ingest_paths=["docs"]))
    try:
        status, body, _ = h.command("/ragbot-ingest", "docs/", user="U1")
        assert status == 200 and "Only ragbot admins" in body
        status, body, _ = h.command("/ragbot-ingest", "docs/", user="UADMIN")
        assert "started" in body
        status, body, _ = h.command("/ragbot-ingest", "docs/", user="UADMIN")
        assert "already running" in body
        gate.set()
        [summary] = h.api.wait_for("chat.postMessage", 1, where=lambda p: "finished" in p.get("text", ""))
        assert "2 added, 1 updated, 5 unchanged, 1 deleted, 1 failed" in summary["text"]
        assert "bad.pdf: broken" in summary["text"]
        status, body, _ = h.command("/ragbot-status", "", user="UADMIN", channel="CHR")
        assert "3 source(s), 42 chunk(s)" in body and "hr" in body
    finally:
        gate.set()
        h.close()


def test_start_logs_no_token_conflict_warning(tmp_path, monkeypatch, caplog):
    # SLACK_BOT_TOKEN in the environment plus the client that holds it is the normal set-up, not a conflict
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    caplog.set_level(logging.DEBUG)
    h = Harness(tmp_path)
    try:
        assert not [r for r in caplog.records if "token" in r.getMessage().lower() and r.levelno >= logging.WARNING]
    finally:
        h.close()


def test_events_are_noted_until_answered_or_left(tmp_path):
    """A mention is kept as a job in the state store from before its ack until its answer is posted (another
    worker answers it if this one stops); events the bot leaves (chatter in threads it does not know, other
    bots) end their job at once, so nothing is left for another worker to answer twice."""
    gate = threading.Event()
    h = Harness(tmp_path, answerer=FakeAnswerer(gate=gate))
    h.core.start_recovery()
    try:
        assert h.mention("Who can run /ragbot-ingest?", event_id="EvJ1", ts="501.1")[0] == 200
        assert eventually(lambda: len(h.feedback.jobs()) == 1)
        [(job_id, holder, record)] = h.feedback.jobs()
        assert job_id == "slack:EvJ1" and holder == h.core.holder and record["event"]["ts"] == "501.1"
        chatter = {"type": "message", "channel_type": "channel", "user": "U2", "text": "lunch?", "ts": "502.2",
                   "thread_ts": "900.1", "channel": "C1"}
        other_bot = {"type": "app_mention", "bot_id": "B9", "user": "U3", "text": "<@UBOT> hi", "ts": "503.1", "channel": "C1"}
        for i, event in enumerate((chatter, other_bot)):
            assert h.send(event_body(event, f"EvLeft{i}"))[0] == 200
        assert eventually(lambda: [j for j, _, _ in h.feedback.jobs()] == ["slack:EvJ1"])
        gate.set()
        _answer_posts(h.api, 1)
        assert eventually(lambda: h.feedback.jobs() == [])
    finally:
        gate.set()
        h.close()
