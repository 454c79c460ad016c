"""Discord: an LLM answer to /ask grows in the deferred reply (edits at most once a second), through discord.py's own objects."""

from __future__ import annotations

from bot.config import DiscordConfig
from bot.discord_format import CONTENT_LIMIT
from tests.discord_fakes import ADMIN_ROLE, HR_CHANNEL_ID, interaction_payload
from tests.test_discord import ADMIN, CALLBACK, FOLLOWUP, drive
from tests.test_slack_stream import LLM_TEXT, PacedChat, llm_answerer

ORIGINAL = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"  # the deferred reply
EDIT = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"  # a follow-up
NO_MENTIONS = {"parse": []}


def config(**kwargs) -> DiscordConfig:
    return DiscordConfig(admins=[ADMIN], admin_roles=[ADMIN_ROLE], channels={HR_CHANNEL_ID: ["hr"]}, **kwargs)


def test_ask_streams_into_the_deferred_reply_then_shows_sources_and_buttons(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "What happens when I delete a file?"}))

    # about 2 s of writing (like 30 tokens/s), one edit a second at most
    h = drive(tmp_path, scenario, answerer=llm_answerer(PacedChat(pause_s=0.07)), discord_config=config())
    assert h.paths()[0] == CALLBACK
    edits = h.at(ORIGINAL)
    assert not h.at(EDIT)
    partial = [e for e in edits if not e.embeds]
    final = edits[-1]
    pieces = (len(LLM_TEXT) + 3) // 4
    assert partial and len(edits) < pieces // 2  # grew while written, not once per token (the rate is in bench_stream.py)
    for e in partial:  # each edit shows the checked text so far
        assert LLM_TEXT.startswith(e.content[:20]) and "[9]" not in e.content and "<@U999>" not in e.content
        assert not e.content.rstrip().endswith("Done.")
    assert all(c.body["allowed_mentions"] == NO_MENTIONS for c in edits)
    assert not h.at(FOLLOWUP)  # one message: the deferred reply
    embed = final.embeds[0]
    assert embed["description"].startswith("Its chunks are removed [1]. Only admins may re-ingest [2].")
    assert "[9]" not in embed["description"] and "[7]" not in embed["description"]
    assert embed["fields"][0]["name"] == "Sources"
    buttons = [c["custom_id"] for row in final.body["components"] for c in row["components"]]
    assert any(b.startswith("ragbot:share:") for b in buttons) and any(b.startswith("ragbot:fb:1:") for b in buttons)
    assert final.body.get("content") is None  # the streamed text became the embed


def test_a_long_streamed_answer_is_split_at_discords_limit_with_the_sources_on_the_last_message(tmp_path):
    from bot.discord_format import split_message

    long = " ".join(f"Sentence {i} explains the re-ingest [1]." for i in range(120)) + " THE END [2]."
    assert len(long) > 4096  # too long for one embed: several messages however the stream was timed

    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "Explain re-ingest in detail", "public": True}))

    h = drive(tmp_path, scenario, answerer=llm_answerer(PacedChat(long, pause_s=0.002)), discord_config=config())
    requests = [c for c in h.calls if c.path in (ORIGINAL, EDIT, FOLLOWUP)]
    assert requests[0].path == ORIGINAL  # the first words went into the deferred reply
    assert all(c.body["allowed_mentions"] == NO_MENTIONS for c in requests)
    assert all(len(c.content) <= CONTENT_LIMIT for c in requests)
    assert len(h.at(FOLLOWUP)) == len(split_message(long)) - 1  # each further part sent once, then edited
    final = requests[-len(split_message(long)):]  # finish(): one request per message, in order
    assert "".join(c.content for c in final).replace(" ", "") == long.replace(" ", "")
    assert final[-1].embeds and final[-1].embeds[0]["fields"][0]["name"] == "Sources"
    assert "THE END [2]." in final[-1].content


def test_extractive_answers_are_sent_at_once(tmp_path):
    async def scenario(h):
        h.interaction(interaction_payload("ask", {"question": "How do admins re-ingest?"}))

    h = drive(tmp_path, scenario, discord_config=config())
    assert not h.at(ORIGINAL) and not h.at(EDIT) and len(h.at(FOLLOWUP)) == 1


def test_a_mention_streams_into_a_message_in_its_thread(tmp_path):
    from tests.discord_fakes import BOT_ID, CHANNEL_ID, message_payload
    from tests.test_discord import MESSAGES, THREADS

    async def scenario(h):
        h.message(message_payload(f"<@{BOT_ID}> what happens when I delete a file?", 5, CHANNEL_ID, mentions=[BOT_ID]))

    h = drive(tmp_path, scenario, answerer=llm_answerer(PacedChat(pause_s=0.07)), discord_config=config())
    assert h.at(THREADS)
    [sent] = h.at(MESSAGES)  # one message in the new thread ...
    assert sent.params["channel_id"] != CHANNEL_ID and sent.content and not sent.embeds
    edits = h.at("/channels/{channel_id}/messages/{message_id}")  # ... that grows, then becomes the answer
    assert edits and all(e.method == "PATCH" and e.body["allowed_mentions"] == NO_MENTIONS for e in edits)
    assert "[9]" not in sent.content + "".join(e.content for e in edits)
    final = edits[-1]
    assert final.embeds[0]["description"].startswith("Its chunks are removed [1]. Only admins may re-ingest [2].")
    assert final.embeds[0]["fields"][0]["name"] == "Sources"
    assert final.body.get("content") is None and final.body["components"]
