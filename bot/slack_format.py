"""Replies as Slack messages: escaped mrkdwn, numbered Sources, buttons, and long texts split.

Slack shows a section's text up to 3,000 characters and about 50 blocks per message; a long
answer is cut at paragraph, line, sentence or word boundaries into several sections and, past
that, several messages. Nothing is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePath
from urllib.parse import quote

from bot.core import Reply
from bot.texts import text as bot_text
from rag.citations import Citation

SECTION_LIMIT = 3000
BLOCKS_PER_MESSAGE = 45  # Slack allows 50; room for sources and buttons
FALLBACK_LIMIT = 3900  # the notification text; the blocks carry the full answer

FEEDBACK_HELPFUL = "ragbot_feedback_helpful"
FEEDBACK_UNHELPFUL = "ragbot_feedback_unhelpful"
FEEDBACK_NATIVE = "ragbot_feedback"  # Slack's feedback_buttons element: value "1:<answer id>" or "0:<answer id>"
SHARE_ACTION = "ragbot_share"
MARKDOWN_LIMIT = 12000  # chat.startStream / appendStream / stopStream: markdown_text per call

_BROADCAST = re.compile(r"(?<![\w＠])@(channel|here|everyone)\b", re.IGNORECASE)
_BREAKS = ("\n\n", "\n", "。", ". ", "! ", "? ", "; ", ", ", " ")


def escape(text: str) -> str:
    """Text made literal in mrkdwn: mentions neutralised, then &, <, > escaped (no <!channel>, no links)."""
    text = _BROADCAST.sub(lambda m: f"＠{m.group(1)}", text)  # plain @here never pings via the API, but reads as if
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most limit characters that join back to text exactly, cut at natural breaks."""
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = 0
        for sep in _BREAKS:
            at = window.rfind(sep)
            if at > limit // 3:
                cut = at + len(sep)
                break
        if not cut:
            cut = limit
            # never split an escape such as &amp; in two
            amp = window.rfind("&", limit - 6)
            if amp != -1 and ";" not in window[amp:]:
                cut = amp
        pieces.append(text[:cut])
        text = text[cut:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def _link_url(url: str) -> str:
    return quote(url, safe=":/?#[]@!$'()*+,;=%-._~&")


def source_line(citation: Citation, display: Callable[[str], str] = lambda s: PurePath(s).name) -> str:
    """'[1] <url|faq.md | Setup>' (a link when the source has an http(s) URL), escaped."""
    label = escape(citation.label(display))
    if citation.url and re.match(r"https?://", citation.url):
        return f"[{citation.n}] <{_link_url(citation.url)}|{label.replace('|', '¦')}>"
    if citation.unverified_url:  # the document's own claim: visible, never a link
        return f"[{citation.n}] {label} ({escape(citation.inert_url())})"
    return f"[{citation.n}] {label}"


def sources_text(citations, lang: str = "en") -> str:
    """The Sources section as mrkdwn."""
    return f"*{bot_text('sources', lang)}*\n" + "\n".join(source_line(c) for c in citations)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def feedback_block(answer_id: str, lang: str = "en", share: bool = False) -> dict:
    """Helpful / not helpful buttons (and Share for a private answer), keyed by the answer id."""
    elements = [
        {"type": "button", "action_id": FEEDBACK_HELPFUL, "value": answer_id,
         "text": {"type": "plain_text", "text": bot_text("helpful", lang)}},
        {"type": "button", "action_id": FEEDBACK_UNHELPFUL, "value": answer_id,
         "text": {"type": "plain_text", "text": bot_text("not_helpful", lang)}},
    ]
    if share:
        elements.insert(0, {"type": "button", "action_id": SHARE_ACTION, "value": answer_id, "style": "primary",
                            "text": {"type": "plain_text", "text": bot_text("share", lang)}})
    return {"type": "actions", "block_id": f"ragbot_{answer_id}", "elements": elements}


def native_feedback_block(answer_id: str, lang: str = "en") -> dict:
    """Slack's own thumbs (feedback_buttons in a context_actions block), recorded like feedback_block's buttons."""

    def button(helpful: bool) -> dict:
        label = bot_text("helpful" if helpful else "not_helpful", lang)
        return {"text": {"type": "plain_text", "text": "👍" if helpful else "👎"},
                "value": f"{int(helpful)}:{answer_id}", "accessibility_label": label}

    return {"type": "context_actions", "block_id": f"ragbot_fb_{answer_id}", "elements": [
        {"type": "feedback_buttons", "action_id": FEEDBACK_NATIVE, "positive_button": button(True), "negative_button": button(False)},
    ]}


def parse_native_feedback(value: str) -> tuple[str, bool] | None:
    """(answer id, helpful) from a feedback_buttons value; None for a value not ours."""
    vote, _, answer_id = (value or "").partition(":")
    return (answer_id, vote == "1") if vote in ("0", "1") and answer_id else None


def tail_blocks(reply: Reply, share: bool = False, native_feedback: bool = False) -> list[dict]:
    """What follows an answer's text: the Sources section and the feedback buttons (native or classic)."""
    tail: list[dict] = []
    if reply.citations:
        tail.extend(_section(p) for p in split_text(sources_text(reply.citations, reply.lang)))
    if reply.answer_id:
        if native_feedback and not share:
            tail.append(native_feedback_block(reply.answer_id, reply.lang))
        else:
            tail.append(feedback_block(reply.answer_id, reply.lang, share=share))
    return tail


def reply_messages(reply: Reply, share: bool = False, prefix: str = "", native_feedback: bool = False) -> list[dict]:
    """The reply as one or more chat.postMessage payloads ({"text", "blocks"}), in order."""
    body = escape(reply.text)
    sections = [_section(p) for p in split_text((prefix + body) if prefix else body)]
    blocks = sections + tail_blocks(reply, share=share, native_feedback=native_feedback)
    messages: list[dict] = []
    for start in range(0, len(blocks), BLOCKS_PER_MESSAGE):
        part = blocks[start : start + BLOCKS_PER_MESSAGE]
        fallback = "\n".join(b["text"]["text"] for b in part if b["type"] == "section")
        messages.append({"text": split_text(fallback, FALLBACK_LIMIT)[0] or " ", "blocks": part})
    return messages


def streaming_text(partial: str) -> str:
    """What the placeholder shows while an answer streams (the last section's worth)."""
    escaped = escape(partial)
    return escaped if len(escaped) <= SECTION_LIMIT else "…" + escaped[-(SECTION_LIMIT - 1):]


def stream_markdown(text: str) -> list[str]:
    """Checked answer text as chat.*Stream markdown_text pieces (each within Slack's 12,000 characters).

    The same escaping as mrkdwn: mentions and broadcasts inert, &, <, > as entities (markdown
    shows them as the characters), so nothing in a streamed answer can ping or link on its own.
    """
    return [p for p in split_text(escape(text), MARKDOWN_LIMIT) if p]
