"""Slack's AI app features: native streaming, thread status, the assistant side panel, feedback buttons, and the fallback.

Signed events go through Bolt's HTTP path; the Web API is the loopback fake, which
implements chat.*Stream and assistant.threads.* as Slack documents them (tests/slack_fakes.py).
The answers come from ragbot's real Answerer (citation checks included) over fixed passages,
with a chat model that streams its reply in small pieces.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode

import pytest

from bot.config import BotConfig, SlackConfig
from bot.slack_format import FEEDBACK_NATIVE
from rag.answer import Answerer
from rag.config import AnswerConfig, LLMConfig
from rag.errors import LLMUnavailableError
from tests.slack_fakes import action_body, event_body
from tests.test_answer import ADMINS, REINGEST, TALK, ListRetriever
from tests.test_slack import FakeAnswerer, Harness, _all_text

LLM_TEXT = "Its chunks are removed [1]. Only admins may re-ingest [2][9]. Ask an admin <@U999> @here if unsure [7]. Done."
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


class PacedChat:
    """A chat model that streams its reply a few characters at a time, pausing between pieces (like a real LLM)."""

    description = "paced"

    def __init__(self, text=LLM_TEXT, pause_s=0.005, fail_after: int | None = None):
        self.text, self.pause_s, self.fail_after = text, pause_s, fail_after

    def stream(self, messages, max_tokens=None):
        for i in range(0, len(self.text), 4):
            if self.fail_after is not None and i >= self.fail_after:
                raise LLMUnavailableError("the model server went away")
            time.sleep(self.pause_s)
            yield self.text[i : i + 4]


def llm_answerer(model=None, retriever=None):
    retriever = retriever or ListRetriever([REINGEST, ADMINS, TALK])
    return Answerer(retriever.retrieve, AnswerConfig(), LLMConfig(), model=model or PacedChat(), closest=retriever.closest)


class RecordingRetriever(ListRetriever):
    def __init__(self, passages):
        super().__init__(passages)
        self.where: list = []

    def retrieve(self, question, k, where=None, lang=None):
        self.where.append(where)
        return super().retrieve(question, k, where, lang)


def harness(tmp_path, answerer=None, bot=None, **slack):
    slack.setdefault("stream_interval_s", 0.05)
    slack.setdefault("native_stream_interval_s", 0)
    return Harness(tmp_path, answerer=answerer or llm_answerer(), bot=bot, slack=SlackConfig(**slack))


def wait_until(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def methods(api) -> list[str]:
    return [m for m, _ in list(api.calls) if m != "auth.test"]


def stopped(api):
    wait_until(lambda: any(s["state"] == "stopped" for s in api.streams.values()))
    return [s for s in api.streams.values() if s["state"] == "stopped"]


def answered(api):
    """The final visible form of each answer message (after chat.update or in a post with blocks)."""
    wait_until(lambda: any(m in ("chat.update", "chat.postMessage") and p.get("blocks") for m, p in list(api.calls)))
    return [p for m, p in list(api.calls) if m in ("chat.update", "chat.postMessage") and p.get("blocks")]


def mention(h, text, ts="111.1", event_id="Ev1", channel="C1"):
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {text}", "ts": ts, "channel": channel, "event_ts": ts}
    assert h.send(event_body(event, event_id))[0] == 200


# -- native streaming --------------------------------------------------------------------
def test_llm_answer_streams_into_one_message_with_status_checked_markers_sources_and_thumbs(tmp_path):
    h = harness(tmp_path)
    try:
        mention(h, "What happens when I delete a file?")
        [stream] = stopped(h.api)
        calls = methods(h.api)
        # status while searching, then while the LLM writes, then one message that grows
        statuses = h.api.called("assistant.threads.setStatus")
        assert [s["status"] for s in statuses] == ["is searching the documents…", "is writing…"]
        assert statuses[0]["channel_id"] == "C1" and statuses[0]["thread_ts"] == "111.1" and statuses[0]["loading_messages"]
        assert calls.index("assistant.threads.setStatus") < calls.index("chat.startStream")
        [start] = h.api.called("chat.startStream")
        assert start["channel"] == "C1" and start["thread_ts"] == "111.1"
        assert start["recipient_user_id"] == "U1" and start["recipient_team_id"] == "T1"  # needed in channels
        assert len(h.api.called("chat.appendStream")) >= 3  # it grew in steps, not at the end
        assert "chat.update" not in calls and "chat.postMessage" not in calls  # one message, no placeholder
        # citations checked on the way: a marker for a passage not shown never appears, not even briefly
        streamed = json.dumps([p for m, p in h.api.calls if m in STREAM_METHODS])
        assert "[9]" not in streamed and "[7]" not in streamed
        assert "<@U999>" not in streamed and "@here" not in streamed
        assert stream["text"].startswith("Its chunks are removed [1]. Only admins may re-ingest [2].")
        assert stream["text"].rstrip().endswith("Done.")
        # the Sources and Slack's feedback buttons come with the end of the stream
        sources = "\n".join(b["text"]["text"] for b in stream["blocks"] if b["type"] == "section")
        assert "*Sources*" in sources and "[1] faq.md | FAQ &gt; Delete" in sources and "[2] faq.md | FAQ &gt; Admins" in sources
        assert "[3]" not in sources  # the talk was shown to the model but not cited
        [thumbs] = [e for b in stream["blocks"] if b["type"] == "context_actions" for e in b["elements"]]
        assert thumbs["type"] == "feedback_buttons" and thumbs["action_id"] == FEEDBACK_NATIVE
    finally:
        h.close()


def test_extractive_answer_is_posted_at_once_after_the_status(tmp_path):
    h = harness(tmp_path, answerer=FakeAnswerer())
    try:
        mention(h, "Who can re-ingest?")
        [answer] = answered(h.api)
        assert methods(h.api) == ["assistant.threads.setStatus", "chat.postMessage"]
        assert "Admins run /ragbot-ingest [1]" in _all_text(answer) and answer["thread_ts"] == "111.1"
    finally:
        h.close()


@pytest.mark.parametrize("error", ["not_allowed", "unknown_method", "missing_scope"])
def test_a_workspace_that_cannot_stream_gets_the_placeholder_edits_without_noticing(tmp_path, error):
    h = harness(tmp_path)
    h.api.refuse["chat.startStream"] = error
    try:
        mention(h, "What happens when I delete a file?")
        [final] = answered(h.api)
        posts = h.api.called("chat.postMessage")
        # the first message the user sees already carries the answer's first words, never an error
        assert len(posts) == 1 and posts[0]["text"].startswith("Its") and posts[0]["thread_ts"] == "111.1"
        assert final["ts"] == h.api.called("chat.postMessage")[0].get("ts", final["ts"])
        text = _all_text(final)
        assert "Its chunks are removed [1]. Only admins may re-ingest [2]." in text and "[9]" not in text
        assert error not in json.dumps(h.api.calls[-1])
        # the fallback keeps today's buttons
        assert {e["action_id"] for b in final["blocks"] if b["type"] == "actions" for e in b["elements"]} == {
            "ragbot_feedback_helpful", "ragbot_feedback_unhelpful"}
        # the refusal is remembered: the next answer does not try again
        mention(h, "And PDFs?", ts="222.1", event_id="Ev2")
        wait_until(lambda: len(answered(h.api)) >= 2)
        assert len(h.api.called("chat.startStream")) == 1
    finally:
        h.close()


def test_where_the_thread_status_is_refused_the_placeholder_shows_as_before(tmp_path):
    h = harness(tmp_path)
    h.api.refuse["assistant.threads.setStatus"] = "missing_scope"
    try:
        mention(h, "What happens when I delete a file?")
        answered(h.api)
        placeholder = h.api.called("chat.postMessage")[0]
        assert placeholder["text"] == "Looking through the documents…"
        assert "chat.startStream" not in methods(h.api)
        final = [p for p in h.api.called("chat.update") if p.get("blocks")][-1]
        assert "Its chunks are removed [1]" in _all_text(final)
    finally:
        h.close()


def test_native_streaming_switched_off_in_config_posts_the_placeholder(tmp_path):
    h = harness(tmp_path, native_streaming=False)
    try:
        mention(h, "What happens when I delete a file?")
        answered(h.api)
        assert h.api.called("chat.postMessage")[0]["text"] == "Looking through the documents…"
        assert not [m for m in methods(h.api) if m.startswith("assistant.") or m in STREAM_METHODS]
    finally:
        h.close()


def test_a_stream_that_stops_taking_text_is_finished_with_chat_update(tmp_path):
    h = harness(tmp_path)
    h.api.refuse["chat.appendStream"] = "message_not_in_streaming_state"
    try:
        mention(h, "What happens when I delete a file?")
        [final] = answered(h.api)
        [start] = h.api.called("chat.startStream")
        stream_ts = next(iter(h.api.streams))
        assert final["ts"] == stream_ts  # the same message, now complete
        assert "Its chunks are removed [1]. Only admins may re-ingest [2]." in _all_text(final)
        assert "chat.postMessage" not in methods(h.api)
    finally:
        h.close()


def test_where_feedback_buttons_are_rejected_the_classic_buttons_end_the_stream(tmp_path):
    h = harness(tmp_path)
    h.api.refuse["feedback_buttons"] = "invalid_blocks"
    try:
        mention(h, "What happens when I delete a file?")
        [stream] = stopped(h.api)
        assert stream["text"].rstrip().endswith("Done.")
        assert not [b for b in stream["blocks"] if b["type"] == "context_actions"]
        assert [b for b in stream["blocks"] if b["type"] == "actions"]
    finally:
        h.close()


def test_an_llm_failure_after_some_text_replaces_the_message_with_the_error(tmp_path):
    h = harness(tmp_path, answerer=llm_answerer(PacedChat(fail_after=40)))
    try:
        mention(h, "What happens when I delete a file?")
        [final] = answered(h.api)
        assert final["ts"] == next(iter(h.api.streams))
        assert "Its chunks" not in _all_text(final) and "[1]" not in _all_text(final)
        assert [s["state"] for s in h.api.streams.values()] == ["stopped"]
    finally:
        h.close()


def test_native_thumbs_are_recorded_like_the_classic_buttons(tmp_path):
    h = harness(tmp_path)
    try:
        mention(h, "What happens when I delete a file?")
        [stream] = stopped(h.api)
        [thumbs] = [e for b in stream["blocks"] if b["type"] == "context_actions" for e in b["elements"]]
        for value, user in ((thumbs["positive_button"]["value"], "U7"), (thumbs["negative_button"]["value"], "U8")):
            assert thumbs_click(h, value, user) == 200
        assert h.api.wait_for("/response/1", 2, where=lambda p: "Thanks" in p.get("text", ""))
        votes = h.feedback.read_feedback()
        assert [(v.user, v.helpful) for v in votes] == [("U7", True), ("U8", False)]
        assert votes[0].question == "What happens when I delete a file?"
        assert votes[0].answer.startswith("Its chunks are removed [1]") and votes[0].sources[0]["source"] == "/docs/faq.md"
    finally:
        h.close()


def thumbs_click(h, value: str, user: str) -> int:
    """A block_actions payload as Slack posts it for a click on feedback_buttons."""
    payload = json.loads(parse_qs(action_body(FEEDBACK_NATIVE, value, user=user, response_url=h.response_url))["payload"][0])
    payload["actions"][0].update(type="feedback_buttons", text={"type": "plain_text", "text": "👍"})
    return h.send(urlencode({"payload": json.dumps(payload)}), content_type="application/x-www-form-urlencoded")[0]


# -- the assistant side panel ------------------------------------------------------------
def thread_started(h, context_channel=None, event_id="EvStart", kind="assistant_thread_started"):
    thread = {"user_id": "U1", "channel_id": "D1", "thread_ts": "500.1",
              "context": {"channel_id": context_channel, "team_id": "T1", "enterprise_id": None} if context_channel else {}}
    assert h.send(event_body({"type": kind, "assistant_thread": thread, "event_ts": "500.2"}, event_id))[0] == 200


def panel_message(h, text, ts, event_id):
    event = {"type": "message", "channel_type": "im", "user": "U1", "text": text, "ts": ts, "thread_ts": "500.1",
             "channel": "D1", "event_ts": ts}
    assert h.send(event_body(event, event_id))[0] == 200


def test_a_new_assistant_thread_offers_suggested_prompts(tmp_path):
    h = harness(tmp_path)
    try:
        thread_started(h, "C1")
        [call] = h.api.wait_for("assistant.threads.setSuggestedPrompts", 1)
        assert call["channel_id"] == "D1" and call["thread_ts"] == "500.1"
        assert len(call["prompts"]) == 3 and all(p["title"] and p["message"] for p in call["prompts"])
    finally:
        h.close()
    h = harness(tmp_path, suggested_prompts=["How do I book leave?", "Who approves expenses?"])
    try:
        thread_started(h, "C1")
        [call] = h.api.wait_for("assistant.threads.setSuggestedPrompts", 1)
        assert [p["message"] for p in call["prompts"]] == ["How do I book leave?", "Who approves expenses?"]
    finally:
        h.close()


def test_assistant_thread_is_titled_from_its_first_question_and_answered_with_status_and_stream(tmp_path):
    h = harness(tmp_path)
    try:
        thread_started(h, "C1")
        panel_message(h, "What happens when I delete a file and run the ingest again?", "501.1", "EvM1")
        stopped(h.api)
        [title] = h.api.called("assistant.threads.setTitle")
        assert (title["channel_id"], title["thread_ts"]) == ("D1", "500.1")
        assert title["title"] == "What happens when I delete a file and run the ingest again?"
        assert [s["status"] for s in h.api.called("assistant.threads.setStatus")] == ["is searching the documents…", "is writing…"]
        [start] = h.api.called("chat.startStream")
        assert start["channel"] == "D1" and start["thread_ts"] == "500.1"
        panel_message(h, "and for PDFs?", "502.1", "EvM2")
        assert wait_until(lambda: len([s for s in h.api.streams.values() if s["state"] == "stopped"]) == 2)
        assert len(h.api.called("assistant.threads.setTitle")) == 1  # named once
    finally:
        h.close()


def test_a_plain_dm_thread_is_answered_without_a_title(tmp_path):
    h = harness(tmp_path)
    try:
        panel_message(h, "What happens when I delete a file?", "501.1", "EvPlain")  # no assistant_thread_started
        stopped(h.api)
        assert h.api.called("chat.startStream")[0]["thread_ts"] == "500.1"
        assert not h.api.called("assistant.threads.setTitle")
    finally:
        h.close()


def test_the_channel_the_user_looks_at_chooses_sets_but_never_widens_them(tmp_path):
    """The context channel comes from the user's client: it may narrow the DM's sets, never add one (e.g. HR's)."""
    retriever = RecordingRetriever([REINGEST, ADMINS])
    h = harness(
        tmp_path, answerer=llm_answerer(retriever=retriever), bot=BotConfig(default_sets=["general", "eng"]),
        channels={"CENG": ["eng"], "CHR": ["hr"], "CMIX": ["hr", "general"]},
    )
    try:
        thread_started(h, "CENG")
        panel_message(h, "How do I deploy?", "501.1", "EvA")
        assert wait_until(lambda: len(retriever.where) == 1)
        thread_started(h, "CHR", event_id="EvCtx1", kind="assistant_thread_context_changed")
        panel_message(h, "What is the salary band for L5?", "502.1", "EvB")
        assert wait_until(lambda: len(retriever.where) == 2)
        thread_started(h, "CMIX", event_id="EvCtx2", kind="assistant_thread_context_changed")
        panel_message(h, "Holiday policy?", "503.1", "EvC")
        assert wait_until(lambda: len(retriever.where) == 3)
        searched = [w["set"]["$in"] for w in retriever.where]
        assert searched[0] == ["eng"]  # narrowed to what the user looks at
        assert searched[1] == ["general", "eng"]  # #hr's sets are not the DM's: nothing added
        assert searched[2] == ["general"]  # only the part the DM may search
        assert all("hr" not in s for s in searched)
    finally:
        h.close()


def test_the_manifest_asks_for_the_assistant_view_scopes_and_events_the_app_handles():
    from pathlib import Path

    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parent.parent / "slack-app-manifest.yaml").read_text())
    assert manifest["features"]["assistant_view"]["assistant_description"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"assistant:write", "chat:write", "im:history"} <= scopes
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"assistant_thread_started", "assistant_thread_context_changed", "message.im", "app_mention"} <= events


def test_core_context_channel_only_chooses_among_the_asking_channels_sets(tmp_path):
    from bot.core import BotCore
    from bot.state import MemoryState

    core = BotCore(FakeAnswerer(), BotConfig(default_sets=["general", "eng"]), MemoryState(),
                   channel_sets={"CENG": ["eng"], "CHR": ["hr"], "DHR": ["hr", "general"]})
    try:
        assert core.sets_for("D1") == ["general", "eng"]
        assert core.sets_for("D1", "CENG") == ["eng"]
        assert core.sets_for("D1", "CHR") == ["general", "eng"]  # nothing in common: the DM's own
        assert core.sets_for("DHR", "CHR") == ["hr"]  # a DM mapped to hr may narrow to it
        assert core.where_for("D1", "CHR") == {"set": {"$in": ["general", "eng"]}}
        assert BotCore.thread_title("How do I re-ingest?") == "How do I re-ingest?"
        long = BotCore.thread_title("word " * 40)
        assert len(long) <= 60 and long.endswith("…") and not long[:-1].endswith(" ")
    finally:
        core.close()


def test_a_refused_feature_is_tried_again_after_an_hour_and_other_errors_are_not_remembered():
    from bot.slack_stream import STREAM, SlackFeatures

    now = [0.0]
    features = SlackFeatures(clock=lambda: now[0])
    features.refused("T1", STREAM, "ratelimited")  # a passing failure: not a capability
    assert features.allows("T1", STREAM)
    features.refused("T1", STREAM, "not_allowed")
    assert not features.allows("T1", STREAM) and features.allows("T2", STREAM)
    now[0] = 3601
    assert features.allows("T1", STREAM)
    assert not SlackFeatures(enabled=False).allows("T1", STREAM)  # slack.native_streaming: false
