"""The Discord bot through discord.py's own objects: gateway payloads in, recorded HTTP calls out."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import discord
import pytest
from discord.user import ClientUser
from discord.webhook.async_ import async_context

from bot.config import BotConfig, DiscordConfig
from bot.core import BotCore, Reply
from bot.discord_app import build_discord_client
from bot.discord_format import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_VALUE_LIMIT,
    embed_dict,
    embed_size,
    feedback_ids,
    reply_payloads,
    split_message,
)
from bot.state import MemoryState
from rag.citations import Citation
from rag.records import Locator
from tests.discord_fakes import (
    ADMIN_ROLE,
    BOT_ID,
    CHANNEL_ID,
    HR_CHANNEL_ID,
    Failures,
    FakeDiscordHTTP,
    FakeWebhookAdapter,
    component_payload,
    guild_payload,
    http_error,
    interaction_payload,
    message_payload,
    user_payload,
)
from tests.test_slack import FakeAnswerer

CALLBACK = "/interactions/{webhook_id}/{webhook_token}/callback"
FOLLOWUP = "/webhooks/{webhook_id}/{webhook_token}"
MESSAGES = "/channels/{channel_id}/messages"
THREADS = "/channels/{channel_id}/messages/{message_id}/threads"
ADMIN = 7


class Harness:
    """A real discord.py client state over the bot core, with HTTP answered by recording fakes."""

    def __init__(self, tmp_path, answerer=None, discord_config=None, bot=None, run_ingest=None):
        self.calls = []
        self.failures = Failures()
        self.answerer = answerer or FakeAnswerer()
        self.feedback = MemoryState()
        self.config = discord_config or DiscordConfig(admins=[ADMIN], admin_roles=[ADMIN_ROLE], channels={HR_CHANNEL_ID: ["hr"]})
        self.core = BotCore(
            self.answerer, bot or BotConfig(), self.feedback, channel_sets={str(k): v for k, v in self.config.channels.items()},
            admins=[str(a) for a in self.config.admins], admin_roles=[str(r) for r in self.config.admin_roles],
            run_ingest=run_ingest, status=lambda: {"sources": 3, "chunks": 42, "spaces": []},
        )
        self.client = build_discord_client(self.core, self.config)
        self.client.http = FakeDiscordHTTP(self.calls, self.failures)
        self.client._connection.http = self.client.http
        async_context.set(FakeWebhookAdapter(self.calls, self.failures))

    async def start(self) -> None:
        await self.client._async_setup_hook()
        state = self.client._connection
        state.user = ClientUser(state=state, data=user_payload(BOT_ID, "ragbot", bot=True))
        state.application_id = 901
        state._add_guild_from_data(guild_payload())

    def interaction(self, payload: dict) -> None:
        self.client._connection.parse_interaction_create(payload)

    def message(self, payload: dict) -> None:
        self.client._connection.parse_message_create(payload)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every task discord.py and the adapter started has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not pending:
                return
            await asyncio.wait(pending, timeout=0.05)
        raise AssertionError(f"handlers did not finish: {pending}")

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def at(self, path: str) -> list:
        return [c for c in self.calls if c.path == path]

    def close(self) -> None:
        self.core.close()


def drive(tmp_path, scenario, **kwargs):
    """Run scenario(harness) on a fresh event loop (debug mode) and close the core afterwards."""
    harness = Harness(tmp_path, **kwargs)

    async def main():
        await harness.start()
        await scenario(harness)
        await harness.settle()

    try:
        asyncio.run(main(), debug=True)
    finally:
        harness.close()
    return harness


# -- /ask --------------------------------------------------------------------------------
def test_ask_defers_first_then_answers_privately_with_sources_and_buttons(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "How do admins re-ingest?"}))

    h = drive(tmp_path, scenario)
    assert h.paths()[0] == CALLBACK
    defer = h.calls[0]
    assert defer.body["type"] == 5 and defer.body["data"]["flags"] == 64  # deferred, ephemeral "thinking"
    followups = h.at(FOLLOWUP)
    assert len(followups) == 1
    sent = followups[0]
    assert sent.flags & 64  # private
    assert sent.body["allowed_mentions"] == {"parse": []}
    embed = sent.embeds[0]
    assert "Admins run /ragbot-ingest [1]" in embed["description"]
    sources = embed["fields"][0]["value"]
    assert "[1] [faq.md | Admin](https://wiki.example.com/faq)" in sources
    assert "[2] kickoff.vtt | 1:05-1:40 (Alice)" in sources
    buttons = [c["custom_id"] for row in sent.body["components"] for c in row["components"]]
    assert buttons[0].startswith("ragbot:share:") and len(buttons) == 3


def test_ask_public_has_no_share_button_and_is_not_ephemeral(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "What is ragbot?", "public": True}))

    h = drive(tmp_path, scenario)
    assert "flags" not in (h.calls[0].body.get("data") or {})
    sent = h.at(FOLLOWUP)[0]
    assert not sent.flags & 64
    buttons = [c["custom_id"] for row in sent.body["components"] for c in row["components"]]
    assert not any(b.startswith("ragbot:share:") for b in buttons)


def test_ask_channel_searches_only_its_knowledge_sets(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "Leave policy?"}, channel_id=HR_CHANNEL_ID))
        h.interaction(interaction_payload("ask", {"question": "Setup?"}, channel_id=CHANNEL_ID))

    h = drive(tmp_path, scenario)
    wheres = sorted(str(c["where"]) for c in h.answerer.calls)
    assert wheres == [str({"set": {"$in": ["default"]}}), str({"set": {"$in": ["hr"]}})]


def test_share_button_posts_the_private_answer_publicly(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "How do admins re-ingest?"}, user=5))
        await h.settle()
        share = next(c["custom_id"] for row in h.at(FOLLOWUP)[0].body["components"] for c in row["components"])
        h.interaction(component_payload(share, user=5))

    h = drive(tmp_path, scenario)
    public = h.at(CALLBACK)[-1]
    assert public.body["type"] == 4 and not (public.body["data"].get("flags") or 0) & 64
    assert "<@5> asked: How do admins re-ingest?" in public.body["data"]["embeds"][0]["description"]
    assert public.body["data"]["allowed_mentions"] == {"parse": []}


def test_feedback_buttons_store_votes_like_slack(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "How do admins re-ingest?"}))
        await h.settle()
        answer_id = next(iter(h.feedback._answers))  # the one answer kept for its buttons
        helpful, unhelpful = feedback_ids(answer_id)
        h.interaction(component_payload(helpful, user=11))
        h.interaction(component_payload(unhelpful, user=12))

    h = drive(tmp_path, scenario)
    votes = h.feedback.read_feedback()
    assert sorted((v.user, v.helpful, v.platform) for v in votes) == [("11", True, "discord"), ("12", False, "discord")]
    assert votes[0].question == "How do admins re-ingest?" and votes[0].sources
    assert "Thanks for the feedback" in h.at(FOLLOWUP)[-1].content


# -- follow-up token expiry, rate limits, busy ------------------------------------------------
def test_expired_followup_token_falls_back_to_a_dm_for_a_private_answer(tmp_path):
    async def scenario(h):
        h.failures.add(FOLLOWUP, http_error(404, 10015, "Unknown Webhook"))
        h.interaction(interaction_payload("ask", {"question": "How do admins re-ingest?"}, user=5))

    h = drive(tmp_path, scenario)
    assert "/users/@me/channels" in h.paths()  # a DM opened: a private answer never lands in the channel
    late = h.at(MESSAGES)[-1]
    assert "longer than Discord keeps the reply open" in late.embeds[0]["description"]
    assert late.body["allowed_mentions"] == {"parse": []}


def test_expired_followup_token_on_a_public_answer_goes_to_the_channel(tmp_path, caplog):
    async def scenario(h):
        h.failures.add(FOLLOWUP, http_error(401, 50027, "Invalid Webhook Token"))
        h.interaction(interaction_payload("ask", {"question": "What is ragbot?", "public": True}))

    with caplog.at_level(logging.INFO):
        h = drive(tmp_path, scenario)
    late = h.at(MESSAGES)[-1]
    assert late.params["channel_id"] == CHANNEL_ID
    assert "Task exception was never retrieved" not in caplog.text


def test_followup_failing_twice_is_logged_never_unhandled(tmp_path, caplog):
    async def scenario(h):
        h.failures.add(FOLLOWUP, http_error(404, 10015))
        h.failures.add("/users/@me/channels", http_error(403, 50007, "Cannot send messages to this user"))
        h.interaction(interaction_payload("ask", {"question": "What is ragbot?"}))

    with caplog.at_level(logging.INFO):
        drive(tmp_path, scenario)
    assert "could not open a DM" in caplog.text
    assert "never retrieved" not in caplog.text and "Ignoring exception" not in caplog.text


def test_rate_limited_thread_creation_tells_the_user_busy(tmp_path):
    async def scenario(h):
        h.failures.add(THREADS, discord.RateLimited(30.0))
        h.message(message_payload(f"<@{BOT_ID}> how do admins re-ingest?", 5, CHANNEL_ID, mentions=[BOT_ID]))

    h = drive(tmp_path, scenario)
    assert h.answerer.calls == []
    assert "answering a lot of questions" in h.at(MESSAGES)[-1].content


def test_full_queue_gets_the_busy_reply_privately(tmp_path):
    gate = threading.Event()

    async def scenario(h):
        for i in range(3):
            h.interaction(interaction_payload("ask", {"question": f"question {i}?"}, user=20 + i))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if h.at(FOLLOWUP):
                break
        gate.set()

    h = drive(tmp_path, scenario, answerer=FakeAnswerer(gate=gate), bot=BotConfig(workers=1, queue_size=1))
    busy = [c for c in h.at(FOLLOWUP) if "answering a lot of questions" in c.content]
    assert len(busy) == 1 and busy[0].flags & 64
    assert len(h.at(CALLBACK)) == 3  # every interaction deferred, the busy one too


# -- mentions, DMs, threads, intents -----------------------------------------------------------
def test_mention_opens_a_thread_and_answers_there(tmp_path):
    async def scenario(h):
        h.message(message_payload(f"<@{BOT_ID}> how do admins re-ingest? @everyone", 5, CHANNEL_ID, mentions=[BOT_ID]))

    h = drive(tmp_path, scenario)
    thread = h.at(THREADS)[0]
    assert thread.body["name"].startswith("how do admins re-ingest?") and "@everyone" not in thread.body["name"]
    assert h.answerer.calls[0]["question"] == "how do admins re-ingest? @everyone"
    assert "/channels/{channel_id}/typing" in h.paths()  # the "thinking" state
    answer = h.at(MESSAGES)[-1]
    assert answer.params["channel_id"] != CHANNEL_ID  # posted in the new thread
    assert answer.body["allowed_mentions"] == {"parse": []}
    assert answer.embeds and answer.embeds[0]["fields"]


def test_dm_is_answered_in_the_dm_and_keeps_its_conversation(tmp_path):
    async def scenario(h):
        h.message(message_payload("what is ragbot?", 5, 555, guild_id=None))
        await h.settle()
        h.message(message_payload("and how do I install it?", 5, 555, guild_id=None))

    h = drive(tmp_path, scenario)
    assert h.at(THREADS) == []
    assert [c["turns"] for c in h.answerer.calls] == [0, 1]
    assert all(c.params["channel_id"] == 555 for c in h.at(MESSAGES))


def test_without_message_content_plain_channel_messages_are_ignored(tmp_path):
    async def scenario(h):
        h.message(message_payload("", 5, CHANNEL_ID))  # what Discord sends without the intent
        h.message(message_payload("hello", 6, CHANNEL_ID, bot=True))

    h = drive(tmp_path, scenario)
    assert h.calls == [] and h.answerer.calls == []


def test_bare_mention_never_sends_an_empty_question(tmp_path):
    async def scenario(h):
        h.message(message_payload(f"<@{BOT_ID}>", 5, CHANNEL_ID, mentions=[BOT_ID]))

    h = drive(tmp_path, scenario)
    assert h.answerer.calls == []
    assert "Mention me with a question" in h.at(MESSAGES)[0].content


def test_with_message_content_configured_channels_are_answered(tmp_path):
    config = DiscordConfig(message_content=True, answer_channels=[HR_CHANNEL_ID], channels={HR_CHANNEL_ID: ["hr"]})

    async def scenario(h):
        h.message(message_payload("how many leave days?", 5, HR_CHANNEL_ID))
        h.message(message_payload("chatter", 5, CHANNEL_ID))

    h = drive(tmp_path, scenario, discord_config=config)
    assert [c["question"] for c in h.answerer.calls] == ["how many leave days?"]
    assert h.answerer.calls[0]["where"] == {"set": {"$in": ["hr"]}}
    assert h.client.intents.message_content


# -- admin commands -----------------------------------------------------------------------------
class FakeReport:
    seconds, added, updated, unchanged, deleted, failed = 1.5, 2, 1, 3, 0, []


@pytest.mark.parametrize("user, roles, allowed", [(ADMIN, (), True), (8, (ADMIN_ROLE,), True), (8, (12345,), False)])
def test_ingest_is_checked_in_code_by_user_or_role(tmp_path, monkeypatch, user, roles, allowed):
    ran = []
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)

    def run_ingest(paths, roots=None):
        ran.append(paths)
        return FakeReport()

    async def scenario(h):
        h.interaction(interaction_payload("ragbot-ingest", {"paths": "docs/"}, user=user, roles=roles))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(h.at(FOLLOWUP)) >= (2 if allowed else 1):
                break

    h = drive(tmp_path, scenario, run_ingest=run_ingest, bot=BotConfig(ingest_paths=["docs"]))
    assert h.calls[0].path == CALLBACK
    texts = [c.content for c in h.at(FOLLOWUP)]
    if allowed:
        assert ran == [[(tmp_path / "docs").resolve().as_posix()]]
        assert any("started" in t for t in texts) and any("finished in 1.5 s" in t for t in texts)
    else:
        assert ran == [] and "Only ragbot admins" in texts[0]


def test_status_for_admins_only(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ragbot-status", user=ADMIN, channel_id=HR_CHANNEL_ID))
        h.interaction(interaction_payload("ragbot-status", user=8))

    h = drive(tmp_path, scenario)
    texts = sorted(c.content for c in h.at(FOLLOWUP))
    assert any("42 chunk(s)" in t and "searches: hr" in t for t in texts)
    assert any("Only ragbot admins" in t for t in texts)


# -- the event loop stays free ---------------------------------------------------------------------
class SlowAnswerer(FakeAnswerer):
    """A fake answer that takes real time in its worker thread (as embedding and the LLM do)."""

    def answer(self, question, conversation=None, on_token=None, where=None):
        time.sleep(0.3)
        return super().answer(question, conversation, on_token, where)


def test_event_loop_never_blocked_while_20_answers_run(tmp_path, caplog):
    async def scenario(h):
        asyncio.get_running_loop().slow_callback_duration = 0.1
        for i in range(20):
            h.interaction(interaction_payload("ask", {"question": f"question {i}?"}, user=100 + i))

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        h = drive(tmp_path, scenario, answerer=SlowAnswerer(), bot=BotConfig(workers=4, queue_size=16, rate_limit=100))
    assert len(h.at(CALLBACK)) == 20 and len(h.at(FOLLOWUP)) == 20
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert slow == []


# -- formatting -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "short",
        "para one.\n\n" * 400,
        "x" * 5000,
        "intro\n\n```python\n" + "print('hello')\n" * 300 + "```\nafter",
        "日本語の文です。" * 600,
    ],
)
def test_split_message_stays_under_2000_and_keeps_fences_balanced(text):
    pieces = split_message(text)
    assert all(len(p) <= CONTENT_LIMIT for p in pieces)
    assert all(p.count("```") % 2 == 0 for p in pieces)
    squash = lambda t: "".join(t.replace("```python", "").replace("```", "").split())  # noqa: E731
    assert squash("".join(pieces)) == squash(text)  # nothing lost; only fences added


def test_embeds_stay_within_every_limit():
    citations = tuple(
        Citation(i, f"/docs/file{i}.md", Locator(heading="Heading " * 40), f"https://example.com/{i}") for i in range(1, 120)
    )
    embed = embed_dict("y" * 9000, citations)
    assert len(embed["description"]) <= DESCRIPTION_LIMIT
    assert embed_size(embed) <= EMBED_TOTAL_LIMIT
    assert len(embed["fields"]) <= 25 and all(len(f["value"]) <= FIELD_VALUE_LIMIT for f in embed["fields"])
    assert embed["fields"][-1]["value"].splitlines()[-1].startswith("… +")


def test_long_answers_become_several_messages_with_sources_last():
    reply = Reply("word " * 2000, (Citation(1, "a.md", Locator()),), answer_id="abc")
    payloads = reply_payloads(reply)
    assert len(payloads) > 1 and all(len(p["content"]) <= CONTENT_LIMIT for p in payloads)
    assert payloads[-1]["embed"]["fields"][0]["value"] == "[1] a.md"


def test_mentions_are_neutralised_in_answers():
    payload = reply_payloads(Reply("ping @everyone and @here and <@123> and <@&456>", kind="answer"))[0]
    description = payload["embed"]["description"]
    assert "@everyone" not in description and "<@123>" not in description and "<@&456>" not in description


def test_prepare_for_serving_loads_the_models_and_freezes_the_heap(tmp_path):
    """Full garbage collections over the loaded models stalled the event loop; serving freezes them out."""
    import gc
    import sys

    from bot.runtime import open_ingestor, open_knowledge_base, prepare_for_serving
    from tests.conftest import SAMPLES, fast_config

    config = fast_config(tmp_path / "data")
    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            ingestor.run([SAMPLES])
        kb.keywords._all = None
        interval = sys.getswitchinterval()
        try:
            prepare_for_serving(kb, ("o200k_base",))
            assert gc.get_freeze_count() > 10_000
            assert kb.keywords._all is not None  # the BM25 matrix is built before the first question
            assert sys.getswitchinterval() == pytest.approx(0.001)  # answer threads hand the GIL back sooner
        finally:
            gc.unfreeze()
            sys.setswitchinterval(interval)
