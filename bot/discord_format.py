"""Replies as Discord messages: the answer and its numbered sources in an embed, within Discord's limits.

Discord refuses a message whose content passes 2,000 characters or whose embed passes its
limits (title 256, description 4,096, field name 256, field value 1,024, 25 fields, 6,000 in
all). A short answer is the embed's description; a long one is sent as several messages cut
at paragraph or code-fence boundaries (a fence cut in two is closed and reopened), with the
sources embed on the last. Mentions are made inert text on top of `AllowedMentions.none()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePath

from bot.core import Reply
from bot.texts import text as bot_text
from rag.citations import Citation, neutralise_mentions

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELDS_LIMIT = 25
EMBED_TOTAL_LIMIT = 6000

FEEDBACK_PREFIX = "ragbot:fb:"  # ragbot:fb:1:<answer id> (helpful) / ragbot:fb:0:<answer id>
SHARE_PREFIX = "ragbot:share:"  # ragbot:share:<answer id>
EMBED_COLOUR = 0x5865F2

_BREAKS = ("\n\n", "\n", "。", ". ", "! ", "? ", " ")
_FENCE = re.compile(r"^```(\S*)", re.MULTILINE)


def clean(text: str) -> str:
    """Text safe to post: no mention or broadcast can ping, whatever AllowedMentions says."""
    return neutralise_mentions(text)


def _open_fence(text: str) -> str | None:
    """The language tag of a code fence left open at the end of text ('' for a bare fence), else None."""
    fences = _FENCE.findall(text)
    return fences[-1] if len(fences) % 2 else None


def split_message(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """Pieces of at most limit characters, cut at paragraph, line, sentence or word breaks.

    A piece that ends inside a ``` code block gets a closing fence, and the next piece reopens
    it with the same language, so every message renders on its own.
    """
    pieces: list[str] = []
    while len(text) > limit:
        room = limit - 4  # a closing "\n```" may be added
        window = text[:room]
        cut = next((at + len(sep) for sep in _BREAKS if (at := window.rfind(sep)) > room // 3), room)
        piece, rest = text[:cut], text[cut:]
        lang = _open_fence(piece)
        if lang is not None:
            piece = piece.rstrip("\n") + "\n```"
            rest = f"```{lang}\n" + rest.lstrip("\n")
        pieces.append(piece)
        text = rest
    if text.strip() or not pieces:
        pieces.append(text)
    return pieces


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source_line(citation: Citation, display: Callable[[str], str] = lambda s: PurePath(s).name) -> str:
    """'[1] [faq.md | Admin](https://...)' (a link where the source has an http(s) URL), else plain."""
    label = clean(citation.label(display)).replace("[", "(").replace("]", ")")
    if citation.url and re.match(r"https?://", citation.url):
        url = citation.url.replace(" ", "%20").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
        return f"[{citation.n}] [{label}]({url})"
    if citation.unverified_url:  # the document's own claim: visible, never a link
        return f"[{citation.n}] {label} ({clean(citation.inert_url())})"
    return f"[{citation.n}] {label}"


def _source_fields(citations, lang: str, room: int) -> list[dict]:
    """Sources packed into fields of at most 1,024 characters, within room characters in all.

    Sources that do not fit are counted in a last "… +N" line instead of being cut mid-link.
    """
    title = bot_text("sources", lang)
    lines = [_cut(source_line(c), FIELD_VALUE_LIMIT - 8) for c in citations]
    values: list[str] = []
    room -= len(title) + 8  # the first field's name, and the "… +N" note
    for i, line in enumerate(lines):
        joins = bool(values) and len(values[-1]) + 1 + len(line) <= FIELD_VALUE_LIMIT - 8
        cost = 1 + len(line) if joins else 1 + len(line)  # "\n" or a new field's name ("\u200b")
        if cost > room or (not joins and len(values) >= FIELDS_LIMIT):
            values[-1] += f"\n… +{len(lines) - i}" if values else ""
            break
        if joins:
            values[-1] += "\n" + line
        else:
            values.append(line)
        room -= cost
    return [{"name": title if i == 0 else "\u200b", "value": v, "inline": False} for i, v in enumerate(values)]


def embed_dict(description: str, citations=(), lang: str = "en", title: str = "") -> dict:
    """An embed payload (Discord's JSON) for an answer and its sources, within every embed limit."""
    embed: dict = {"type": "rich", "color": EMBED_COLOUR}
    used = 0
    if title:
        embed["title"] = _cut(clean(title), TITLE_LIMIT)
        used += len(embed["title"])
    if description:
        embed["description"] = _cut(description, DESCRIPTION_LIMIT)
        used += len(embed["description"])
    if citations:
        embed["fields"] = _source_fields(citations, lang, EMBED_TOTAL_LIMIT - used)
    return embed


def embed_size(embed: dict) -> int:
    """The characters Discord counts towards an embed's 6,000 (title, description, fields, footer, author)."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    size += len(embed.get("footer", {}).get("text", "")) + len(embed.get("author", {}).get("name", ""))
    return size


def reply_payloads(reply: Reply, prefix: str = "") -> list[dict]:
    """The reply as messages in order: [{"content": str | None, "embed": dict | None}]; prefix is trusted text.

    Answers carry an embed (the text as its description when it fits, and the sources);
    refusals and notices are plain content. The caller adds buttons to the last one.
    """
    body = prefix + clean(reply.text)  # the prefix is the caller's own text (its user parts already cleaned)
    if reply.kind != "answer":
        return [{"content": piece, "embed": None} for piece in split_message(body)]
    if len(body) <= DESCRIPTION_LIMIT:
        return [{"content": None, "embed": embed_dict(body, reply.citations, reply.lang)}]
    messages: list[dict] = [{"content": piece, "embed": None} for piece in split_message(body)]
    if reply.citations:
        messages[-1]["embed"] = embed_dict("", reply.citations, reply.lang)
    return messages


def streamed_pieces(partial: str) -> list[str]:
    """The text so far of a streaming answer as message contents (each within 2,000 characters)."""
    return [p for p in split_message(clean(partial)) if p.strip()]


def final_payloads(reply: Reply, streamed: int) -> list[dict]:
    """The reply's messages after streaming into `streamed` messages: as reply_payloads, except that an answer
    already shown in several messages stays split the same way, with the sources embed on the last one."""
    if streamed <= 1 or reply.kind != "answer":
        return reply_payloads(reply)
    messages: list[dict] = [{"content": piece, "embed": None} for piece in split_message(clean(reply.text))]
    if reply.citations:
        messages[-1]["embed"] = embed_dict("", reply.citations, reply.lang)
    return messages


def feedback_ids(answer_id: str) -> tuple[str, str]:
    """The custom ids of the helpful / not helpful buttons of an answer."""
    return f"{FEEDBACK_PREFIX}1:{answer_id}", f"{FEEDBACK_PREFIX}0:{answer_id}"


def parse_custom_id(custom_id: str) -> tuple[str, str, bool] | None:
    """('feedback', answer_id, helpful) or ('share', answer_id, False) for our buttons; None for others."""
    if custom_id.startswith(FEEDBACK_PREFIX):
        vote, _, answer_id = custom_id[len(FEEDBACK_PREFIX):].partition(":")
        return ("feedback", answer_id, vote == "1") if answer_id else None
    if custom_id.startswith(SHARE_PREFIX):
        answer_id = custom_id[len(SHARE_PREFIX):]
        return ("share", answer_id, False) if answer_id else None
    return None


def thread_name(question: str, limit: int = 90) -> str:
    """A thread title from the question (Discord allows 100 characters; mentions made inert)."""
    name = " ".join(clean(question).split()) or "ragbot"
    return _cut(name, limit)
