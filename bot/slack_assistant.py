"""ragbot in Slack's assistant side panel (paid plans), through Bolt's `Assistant` middleware.

- a thread started: suggested prompts (slack.suggested_prompts, else three defaults);
- the user's message: the thread titled from its first question, then answered like any DM
  (status, native stream, feedback; see bot/slack_stream.py);
- the context changed: the channel the user looks at is remembered for the thread and sent
  with each question as `context_channel`. It comes from the user's Slack client, so the core
  lets it choose among the sets the assistant's own DM channel may search, never add to them.

Thread context lives in memory here (Bolt's default store would read it back with a
conversations.replies call per question); after a restart a thread searches its DM channel's
sets until the user looks at another channel.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from slack_bolt import App
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.store import AssistantThreadContextStore
from slack_bolt.middleware.assistant import Assistant
from slack_sdk.errors import SlackApiError

from bot.config import SlackConfig
from bot.core import BotCore
from bot.texts import text as bot_text

logger = logging.getLogger(__name__)


class MemoryThreadContextStore(AssistantThreadContextStore):
    """Assistant thread contexts by (channel, thread), least recently used dropped past capacity."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str], dict] = OrderedDict()
        self._lock = threading.Lock()

    def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        with self._lock:
            self._items.pop((channel_id, thread_ts), None)
            self._items[(channel_id, thread_ts)] = dict(context)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def started(self, channel_id: str, thread_ts: str, context: dict | None) -> None:
        """A thread opened in the side panel (with the channel the user looked at, if any)."""
        self.save(channel_id=channel_id, thread_ts=thread_ts, context=context or {})

    def is_assistant_thread(self, channel_id: str, thread_ts: str) -> bool:
        """Whether the thread was opened in the side panel (since this process started)."""
        with self._lock:
            return (channel_id, thread_ts) in self._items

    def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        with self._lock:
            context = self._items.get((channel_id, thread_ts))
        return AssistantThreadContext(context) if context and context.get("channel_id") else None


def suggested_prompts(config: SlackConfig, lang: str = "en") -> list[dict[str, str]]:
    """The prompts offered when a thread starts: the configured ones, else three defaults."""
    prompts = config.suggested_prompts or [bot_text(f"prompt_default_{i}", lang) for i in (1, 2, 3)]
    return [{"title": p[:75], "message": p} for p in prompts[:4]]


def register_assistant(app: App, core: BotCore, config: SlackConfig, ask_in_thread: Callable[..., None]) -> Assistant:
    """Add the assistant listeners to app; ask_in_thread(channel, thread, user, text, team, set_status, say_stream, context_channel)."""
    store = MemoryThreadContextStore()
    assistant = Assistant(thread_context_store=store)

    @assistant.thread_started
    def started(payload: dict, set_suggested_prompts) -> None:
        thread = payload["assistant_thread"]
        store.started(thread["channel_id"], thread["thread_ts"], thread.get("context"))
        try:
            set_suggested_prompts(prompts=suggested_prompts(config), title=bot_text("prompts_title"))
        except SlackApiError as exc:
            logger.info("suggested prompts refused (%s)", exc.response.get("error"))

    @assistant.user_message
    def user_message(payload: dict, context, set_status, say_stream, set_title, get_thread_context) -> None:
        if payload.get("bot_id") or not payload.get("user"):
            return
        channel, thread, text = payload["channel"], payload["thread_ts"], payload.get("text", "")
        if store.is_assistant_thread(channel, thread) and not core.knows_thread("slack", channel, thread) and text.strip():
            try:  # the first question names the thread in the History tab
                set_title(core.thread_title(text))
            except SlackApiError as exc:
                logger.info("thread title refused (%s)", exc.response.get("error"))
        thread_context = get_thread_context()
        team = context.get("team_id") or context.get("enterprise_id") or ""
        ask_in_thread(
            channel, thread, payload["user"], text, team, set_status, say_stream,
            context_channel=thread_context.channel_id if thread_context else None,
        )

    app.use(assistant)
    return assistant
