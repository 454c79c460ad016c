"""Posting one answer into a Slack thread: natively streamed where Slack allows it, else today's placeholder.

Native (Slack's AI app features, Bolt's `set_status` and `say_stream` over chat.startStream /
appendStream / stopStream):

    assistant.threads.setStatus "is searching the documents…"   (the event arrives)
    assistant.threads.setStatus "is writing…"                    (the LLM is asked)
    chat.startStream with the first checked text                 (the first token)
    chat.appendStream at most every native_stream_interval_s     (the text grows in one message)
    chat.stopStream with the rest, the Sources and feedback      (the answer is done)

An answer that is complete at once (extractive, not found, a refusal) is one chat.postMessage
after the status. Where the workspace or token cannot do this (`not_allowed`, `unknown_method`,
`missing_scope`, an older Enterprise Grid, ...) the answer takes the fallback: a placeholder
edited with chat.update (`ThreadPoster`, as before), started with the text the user would
have seen, so the switch shows nothing. A refusal for a capability reason is remembered per
workspace for an hour, so later answers do not pay for a call that will fail.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core import STAGE_WRITING, Reply
from bot.slack_format import reply_messages, stream_markdown, streaming_text, tail_blocks
from bot.texts import text as bot_text

logger = logging.getLogger(__name__)

# errors that say "this workspace / token / plan cannot do that", not "this call failed"
CAPABILITY_ERRORS = frozenset({
    "not_allowed", "unknown_method", "missing_scope", "not_allowed_token_type", "feature_not_enabled",
    "method_deprecated", "team_access_not_granted", "enterprise_is_restricted", "access_denied",
})
STATUS, STREAM, FEEDBACK = "status", "stream", "feedback_buttons"
_FAILED = (SlackClientError, OSError)  # Slack said no, or the call did not get through: both end in the fallback


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return (response.get("error") if response is not None else None) or type(exc).__name__


class SlackFeatures:
    """Which of Slack's AI app features a workspace takes, learnt from its refusals (retried after retry_s)."""

    def __init__(self, enabled: bool = True, retry_s: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.retry_s = retry_s
        self.clock = clock
        self._refused: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def allows(self, team: str, feature: str) -> bool:
        """Whether to try a feature in a workspace (false when switched off or refused within retry_s)."""
        if not self.enabled:
            return False
        with self._lock:
            at = self._refused.get((team, feature))
            if at is not None and self.clock() - at >= self.retry_s:
                del self._refused[(team, feature)]
                at = None
        return at is None

    def refused(self, team: str, feature: str, error: str) -> None:
        """Note a refusal; only capability errors are remembered (others fail just that answer over)."""
        if error in CAPABILITY_ERRORS:
            logger.info("Slack refused %s in workspace %s (%s): using the fallback for an hour", feature, team, error)
            with self._lock:
                self._refused[(team, feature)] = self.clock()


class ThreadPoster:
    """The fallback: a placeholder in the thread, throttled chat.update edits while tokens stream, the final messages."""

    def __init__(self, client: WebClient, channel: str, thread_ts: str, interval_s: float, lang: str = "en", ts: str | None = None):
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.interval_s = interval_s
        self.lang = lang
        self.ts = ts
        self._partial = ""
        self._last_edit = time.monotonic() if ts else 0.0

    def start(self, partial: str = "") -> None:
        """Show that the bot is working: a placeholder in the thread (the text so far, if any)."""
        self._partial = partial
        text = streaming_text(partial) if partial else bot_text("thinking", self.lang)
        try:
            resp = self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=text)
            self.ts = resp.get("ts")
            self._last_edit = time.monotonic()
        except SlackApiError as exc:
            logger.warning("could not post the placeholder: %s", exc.response.get("error"))

    def on_token(self, delta: str) -> None:
        """Edit the placeholder with the text so far, at most once per interval (Slack's rate limits)."""
        self._partial += delta
        if not self.ts or self.interval_s <= 0 or time.monotonic() - self._last_edit < self.interval_s:
            return
        self._last_edit = time.monotonic()
        try:
            self.client.chat_update(channel=self.channel, ts=self.ts, text=streaming_text(self._partial))
        except SlackApiError as exc:  # a skipped edit costs nothing: the final one carries everything
            logger.info("streaming edit skipped: %s", exc.response.get("error"))

    def finish(self, reply: Reply, native_feedback: bool = False, on_native_refused: Callable[[], None] | None = None) -> None:
        """Replace the placeholder with the reply; post the rest of a long one below it.

        With native_feedback, Slack's feedback buttons; a workspace that refuses the block
        (invalid_blocks) gets the classic buttons, and on_native_refused is told.
        """
        messages = reply_messages(reply, native_feedback=native_feedback)
        try:
            for i, message in enumerate(messages):
                if i == 0 and self.ts:
                    self.client.chat_update(channel=self.channel, ts=self.ts, **message)
                else:
                    self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, **message)
        except SlackApiError as exc:
            if native_feedback and exc.response.get("error") == "invalid_blocks":
                if on_native_refused is not None:
                    on_native_refused()
                self.finish(reply, native_feedback=False)
                return
            logger.error("posting an answer failed: %s", exc.response.get("error"))
            try:
                self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=bot_text("post_failed", reply.lang))
            except SlackApiError:
                logger.error("telling the user about it failed too")


class AnswerPoster:
    """One answer into one thread: status, native stream and feedback where allowed, else ThreadPoster.

    start() runs on the listener thread; on_stage / on_token / finish on the core's worker
    (finish on the listener thread for an immediate refusal). Calls are never concurrent.
    """

    def __init__(
        self,
        client: WebClient,
        channel: str,
        thread_ts: str,
        *,
        team: str,
        features: SlackFeatures,
        lang: str = "en",
        streams: bool = True,
        fallback_interval_s: float = 1.5,
        append_interval_s: float = 0.5,
        set_status: Callable[..., object] | None = None,
        open_stream: Callable[[], object] | None = None,
    ):
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.team = team
        self.features = features
        self.lang = lang
        self.streams = streams
        self.fallback_interval_s = fallback_interval_s
        self.append_interval_s = append_interval_s
        self.set_status = set_status
        self.open_stream = open_stream
        self.fallback: ThreadPoster | None = None
        self.stream = None  # slack_sdk's ChatStream once chat.startStream went through
        self._raw = ""  # the checked text received so far
        self._pending = ""  # received but not yet appended
        self._last_append = 0.0

    # -- the steps -----------------------------------------------------------------------
    def start(self) -> None:
        """The status "is searching the documents…" (native) or the placeholder (fallback)."""
        if self._status(bot_text("status_searching", self.lang), [bot_text("loading_searching", self.lang), bot_text("loading_reading", self.lang)]):
            return
        self._fall_back()

    def on_stage(self, stage: str) -> None:
        """The LLM was asked: "is writing…" (nothing to do in the fallback, or once text shows)."""
        if stage == STAGE_WRITING and self.fallback is None and self.stream is None:
            self._status(bot_text("status_writing", self.lang), [bot_text("loading_writing", self.lang)])

    def on_token(self, delta: str) -> None:
        """Checked text as the LLM writes it: the first opens the stream, the rest is appended at most every interval."""
        self._raw += delta
        if self.fallback is not None:
            self.fallback.on_token(delta)
            return
        self._pending += delta
        if self.stream is None:
            self._open()
        elif time.monotonic() - self._last_append >= self.append_interval_s:
            self._append()

    def finish(self, reply: Reply) -> None:
        """The whole reply: the stream stopped with the rest and the Sources, or the reply posted."""
        native = self.features.allows(self.team, FEEDBACK)
        if self.fallback is not None:
            self.fallback.finish(reply)
        elif self.stream is not None:
            self._stop(reply, native)
        else:
            self._post(reply, native)

    # -- native ---------------------------------------------------------------------------
    def _status(self, status: str, loading: list[str]) -> bool:
        if self.set_status is None or not self.features.allows(self.team, STATUS):
            return False
        try:
            self.set_status(status=status, loading_messages=loading)
            return True
        except _FAILED as exc:
            self.features.refused(self.team, STATUS, _error(exc))
            logger.info("thread status refused (%s)", _error(exc))
            return False

    def _open(self) -> None:
        if not self.streams:
            return  # a complete answer: kept in _pending, posted at once by finish()
        if self.open_stream is None or not self.features.allows(self.team, STREAM):
            self._fall_back()
            self._pending = ""
            return
        try:
            stream = self.open_stream()
            for piece in stream_markdown(self._pending):
                stream.append(markdown_text=piece)  # a buffer of 1: the first append is chat.startStream
            self.stream = stream
        except _FAILED as exc:
            self.features.refused(self.team, STREAM, _error(exc))
            logger.info("chat.startStream refused (%s); answering with chat.update", _error(exc))
            self.fallback = ThreadPoster(self.client, self.channel, self.thread_ts, self.fallback_interval_s, self.lang)
            self.fallback.start(self._raw)  # the text the stream would have shown, at once
        self._pending = ""
        self._last_append = time.monotonic()

    def _append(self) -> None:
        try:
            for piece in stream_markdown(self._pending):
                self.stream.append(markdown_text=piece)
            self._pending = ""
            self._last_append = time.monotonic()
        except _FAILED as exc:  # expired or refused mid-way: go on editing the same message
            logger.info("chat.appendStream failed (%s); finishing with chat.update", _error(exc))
            self._edit_instead()

    def _edit_instead(self) -> None:
        self.fallback = ThreadPoster(self.client, self.channel, self.thread_ts, self.fallback_interval_s, self.lang, ts=self.stream.ts)
        self.fallback._partial = self._raw
        self.stream = None

    def _stop(self, reply: Reply, native: bool) -> None:
        continues = reply.kind == "answer" and reply.text.startswith(self._raw)
        rest = self._pending + (reply.text[len(self._raw):] if continues else "")
        pieces = stream_markdown(rest)
        try:
            for piece in pieces[:-1]:
                self.stream.append(markdown_text=piece)
            last = pieces[-1] if pieces else None
            if not continues:  # an error after part of an answer: the message becomes the error
                self.stream.stop(markdown_text=last)
                self._edit_instead()
                self.fallback.finish(reply)
                return
            try:
                self.stream.stop(markdown_text=last, blocks=tail_blocks(reply, native_feedback=native) or None)
            except _FAILED as exc:
                if not native or _error(exc) != "invalid_blocks":
                    raise
                self.features.refused(self.team, FEEDBACK, "not_allowed")  # the workspace does not take feedback_buttons
                self.stream.stop(blocks=tail_blocks(reply) or None)  # the text is still in the stream's buffer
        except _FAILED as exc:
            logger.info("chat.stopStream failed (%s); finishing with chat.update", _error(exc))
            self._edit_instead()
            self.fallback.finish(reply)

    def _post(self, reply: Reply, native: bool) -> None:
        poster = ThreadPoster(self.client, self.channel, self.thread_ts, 0, self.lang)
        refused = lambda: self.features.refused(self.team, FEEDBACK, "not_allowed")  # noqa: E731
        poster.finish(reply, native_feedback=native, on_native_refused=refused)  # no placeholder: every message is posted

    def _fall_back(self) -> None:
        self.fallback = ThreadPoster(self.client, self.channel, self.thread_ts, self.fallback_interval_s, self.lang)
        self.fallback.start(self._raw)
