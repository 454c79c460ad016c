"""The platform-neutral bot: a message in, a reply out.

Slack, Discord and the CLI only translate to and from `IncomingMessage` / `Reply`. The core
owns what every chat front end needs: thread memory for follow-ups, channel -> knowledge set
filters, per-user rate limits, a bounded pool of answer workers (so a platform's own
listener threads are never held by a 30 s answer), admin re-ingest and feedback.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.config import BotConfig
from bot.feedback import Feedback, FeedbackStore
from bot.texts import printable
from bot.texts import text as bot_text
from rag.citations import Citation
from rag.conversation import Conversation
from rag.errors import LLMError, QuestionError
from rag.lang import detect_lang
from rag.messages import text as rag_text

logger = logging.getLogger(__name__)

Deliver = Callable[["Reply"], None]
OnStage = Callable[[str], None]

# What an answer is doing, for front ends that show a status ("Searching the documents...").
STAGE_SEARCHING = "searching"  # from the moment a question is accepted until the LLM starts
STAGE_WRITING = "writing"  # the LLM is writing (its text streams to on_token)


class IngestRunner(Protocol):
    """Runs an ingest of paths; with roots, folder walks never follow a symlink out of them."""

    def __call__(self, paths: list[str], roots: list[str] | None = None) -> object: ...


def resolve_path(path: str | Path, base: Path | None = None) -> Path:
    """A path as the host sees it: `~` expanded, relative to base (the working directory), `..` and symlinks resolved."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = (base or Path.cwd()) / candidate
    return candidate.resolve()


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether a resolved path is one of the roots or lies under one."""
    return any(path == root or path.is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class IncomingMessage:
    """A question as a chat platform delivered it."""

    text: str
    user: str
    channel: str
    thread: str | None = None  # the thread it belongs to; None: a conversation of its own
    platform: str = "slack"
    private: bool = False  # asked privately (/ask): the reply is shown to the user only
    # the channel the user is looking at (Slack's assistant side panel): it may narrow the
    # knowledge sets searched, never widen them (see BotCore.sets_for)
    context_channel: str | None = None


@dataclass(frozen=True)
class Reply:
    """What the bot says back: text, the citations behind it, and whether only the asker sees it."""

    text: str
    citations: tuple[Citation, ...] = ()
    private: bool = False
    kind: str = "answer"  # answer | busy | rate_limited | refused | error | admin
    answer_id: str | None = None  # set on answers: the key for feedback and sharing
    lang: str = "en"
    question: str = ""
    grounded: bool = True
    found: bool = True


def _quiet(on_stage: OnStage) -> OnStage:
    """on_stage whose failure (a platform error showing a status) is logged, never fails the answer."""

    def call(stage: str) -> None:
        try:
            on_stage(stage)
        except Exception:
            logger.exception("showing the answer's stage failed")

    return call


@dataclass
class _Remembered:
    question: str
    reply: Reply
    platform: str
    channel: str


class RateLimiter:
    """At most `limit` events per user in a sliding window of `window_s` seconds."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, user: str) -> float:
        """0 when the user may go ahead (and counts it), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(user, deque())
            while events and now - events[0] >= self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return max(self.window_s - (now - events[0]), 0.1)
            events.append(now)
            return 0.0


class ThreadMemory:
    """Conversations per (platform, channel, thread), least recently used dropped first."""

    def __init__(self, capacity: int, history_turns: int):
        self.capacity = capacity
        self.history_turns = history_turns
        self._items: OrderedDict[tuple, Conversation] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[Conversation, threading.Lock]:
        """The conversation of a thread (new if unknown) and the lock that serialises its turns."""
        with self._lock:
            conversation = self._items.pop(key, None) or Conversation(self.history_turns)
            self._items[key] = conversation
            lock = self._locks.setdefault(key, threading.Lock())
            while len(self._items) > self.capacity:
                old, _ = self._items.popitem(last=False)
                self._locks.pop(old, None)
            return conversation, lock

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._items


@dataclass
class IngestState:
    """The admin re-ingest in flight, if any."""

    user: str = ""
    started: float = 0.0
    running: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class BotCore:
    """Answers chat messages within limits; runs admin commands; records feedback."""

    def __init__(
        self,
        answerer,
        config: BotConfig,
        feedback: FeedbackStore,
        channel_sets: Mapping[str, Sequence[str]] | None = None,
        admins: Sequence[str] = (),
        admin_roles: Sequence[str] = (),
        run_ingest: IngestRunner | None = None,
        status: Callable[[], dict] | None = None,
        history_turns: int = 4,
        max_question_chars: int = 2000,
    ):
        self.answerer = answerer
        self.config = config
        self.feedback = feedback
        self.channel_sets = {k: list(v) for k, v in (channel_sets or {}).items()}
        self.admins = {str(a) for a in admins}
        self.admin_roles = {str(r) for r in admin_roles}
        self.run_ingest = run_ingest
        self.status_provider = status
        self.max_question_chars = max_question_chars
        self.memory = ThreadMemory(config.threads_remembered, history_turns)
        self.limiter = RateLimiter(config.rate_limit, config.rate_window_s)
        self._executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="ragbot-answer")
        self._slots = threading.BoundedSemaphore(config.workers + config.queue_size)
        self._answers: OrderedDict[str, _Remembered] = OrderedDict()
        self._answers_lock = threading.Lock()
        self._ingest = IngestState()
        try:  # answerers that can say when the LLM starts writing (rag.answer.Answerer) get on_stage
            self._answerer_stages = "on_stage" in inspect.signature(answerer.answer).parameters
        except (TypeError, ValueError):
            self._answerer_stages = False

    # -- questions -------------------------------------------------------------------------
    def sets_for(self, channel: str, context_channel: str | None = None) -> list[str]:
        """The knowledge sets a channel may search; a context channel only chooses among them.

        The context channel (the channel a user looks at beside Slack's assistant panel) is a
        hint from the user's client, so it never grants anything: the result is the context
        channel's sets that the asking channel may search too, or all of the asking channel's
        sets when none of them are.
        """
        allowed = self.channel_sets.get(channel, list(self.config.default_sets))
        if context_channel is None or context_channel == channel:
            return allowed
        chosen = [s for s in self.channel_sets.get(context_channel, list(self.config.default_sets)) if s in allowed]
        return chosen or allowed

    def where_for(self, channel: str, context_channel: str | None = None) -> dict:
        """The retrieval filter for a channel: only its knowledge sets' chunks."""
        return {"set": {"$in": self.sets_for(channel, context_channel)}}

    @property
    def streams(self) -> bool:
        """Whether answers are written token by token (an LLM) and worth streaming; extractive ones are posted at once."""
        return getattr(self.answerer, "mode", "") == "llm"

    def submit(
        self, message: IncomingMessage, deliver: Deliver, on_token: Callable[[str], None] | None = None,
        on_stage: OnStage | None = None,
    ) -> Reply | None:
        """Queue a question: None when accepted (deliver gets the reply later), else the refusal to show now.

        Never blocks: a full queue gets the "busy" reply, a user over the rate limit a wait time.
        on_token gets the checked answer text as it is written (markers for passages not shown
        never reach it); on_stage gets STAGE_WRITING when the LLM starts.
        """
        early = self._precheck(message)
        if early is not None:
            return early
        if not self._slots.acquire(blocking=False):
            logger.warning("work queue full; told %s to retry", message.user)
            return Reply(bot_text("busy", detect_lang(message.text)), private=True, kind="busy", question=message.text)

        def work() -> None:
            try:
                reply = self._answer(message, on_token, on_stage)
                try:
                    deliver(reply)
                except Exception:  # a platform error while posting must not kill the worker
                    logger.exception("delivering a reply failed")
            finally:
                self._slots.release()

        self._executor.submit(work)
        return None

    def handle(
        self, message: IncomingMessage, on_token: Callable[[str], None] | None = None, on_stage: OnStage | None = None
    ) -> Reply:
        """Answer one message now, in the calling thread (limits applied; no queue)."""
        early = self._precheck(message)
        return early if early is not None else self._answer(message, on_token, on_stage)

    def _precheck(self, message: IncomingMessage) -> Reply | None:
        lang = detect_lang(message.text)
        question = message.text.strip()
        if not question:
            return Reply(rag_text("empty_question", lang), private=True, kind="refused", lang=lang)
        if len(question) > self.max_question_chars:
            return Reply(
                rag_text("question_too_long", lang, length=len(question), limit=self.max_question_chars),
                private=True, kind="refused", lang=lang,
            )
        wait = self.limiter.check(f"{message.platform}:{message.user}")
        if wait:
            return Reply(
                bot_text("rate_limited", lang, limit=self.config.rate_limit, window=int(self.config.rate_window_s), wait=int(wait) + 1),
                private=True, kind="rate_limited", lang=lang,
            )
        return None

    def _answer(self, message: IncomingMessage, on_token, on_stage: OnStage | None = None) -> Reply:
        lang = detect_lang(message.text)
        key = (message.platform, message.channel, message.thread) if message.thread else None
        conversation, lock = self.memory.get(key) if key else (None, threading.Lock())
        extra = {"on_stage": _quiet(on_stage)} if on_stage is not None and self._answerer_stages else {}
        try:
            with lock:  # turns of one thread in order: a follow-up sees the answer before it
                answer = self.answerer.answer(
                    message.text, conversation, on_token=on_token,
                    where=self.where_for(message.channel, message.context_channel), **extra,
                )
        except QuestionError as exc:
            return Reply(str(exc), private=True, kind="refused", lang=lang)
        except LLMError as exc:
            return Reply(exc.user_message(lang), private=message.private, kind="error", lang=lang)
        except Exception:
            logger.exception("answering failed")
            return Reply(bot_text("error", lang), private=message.private, kind="error", lang=lang)
        text = answer.text
        if answer.found and not answer.grounded:
            text += "\n\n" + rag_text("ungrounded", lang)
        reply = Reply(
            text, answer.citations, private=message.private, kind="answer", answer_id=uuid.uuid4().hex[:16],
            lang=lang, question=message.text.strip(), grounded=answer.grounded, found=answer.found,
        )
        self._remember(reply, message)
        return reply

    @staticmethod
    def thread_title(question: str, limit: int = 60) -> str:
        """A short title for a conversation from its first question (whole words, one line)."""
        title = " ".join(question.split())
        if len(title) <= limit:
            return title
        cut = title.rfind(" ", 0, limit - 1)
        return title[: cut if cut > limit // 2 else limit - 1].rstrip(" ,.;:") + "…"

    def knows_thread(self, platform: str, channel: str, thread: str) -> bool:
        """Whether the bot holds a conversation for that thread (it answered there)."""
        return (platform, channel, thread) in self.memory

    # -- answers kept for feedback and sharing -------------------------------------------
    def _remember(self, reply: Reply, message: IncomingMessage) -> None:
        with self._answers_lock:
            self._answers[reply.answer_id] = _Remembered(message.text.strip(), reply, message.platform, message.channel)
            while len(self._answers) > 5000:
                self._answers.popitem(last=False)

    def answer_by_id(self, answer_id: str) -> Reply | None:
        """A recent answer (for sharing an /ask reply in the channel)."""
        with self._answers_lock:
            item = self._answers.get(answer_id)
        return item.reply if item else None

    def record_feedback(self, answer_id: str, user: str, helpful: bool) -> Reply:
        """Store a vote on an answer with its question, text and sources; a private thank-you."""
        with self._answers_lock:
            item = self._answers.get(answer_id)
        if item is None:
            return Reply(bot_text("feedback_unknown"), private=True, kind="refused")
        self.feedback.record(
            Feedback(
                helpful=helpful, user=user, platform=item.platform, channel=item.channel, question=item.question,
                answer=item.reply.text, sources=[c.as_json() for c in item.reply.citations], answer_id=answer_id,
            )
        )
        return Reply(bot_text("feedback_thanks", item.reply.lang), private=True, kind="admin", lang=item.reply.lang)

    # -- admin commands ------------------------------------------------------------------
    def is_admin(self, user: str, roles: Sequence[str] = ()) -> bool:
        """Whether the user (or one of their roles) may run admin commands; checked here, never left to the platform."""
        return str(user) in self.admins or bool(self.admin_roles.intersection(str(r) for r in roles))

    def ingest_roots(self) -> list[Path]:
        """The folders chat commands may ingest (bot.ingest_paths), resolved now."""
        return [resolve_path(root) for root in self.config.ingest_paths]

    def ingest(
        self, user: str, paths: Sequence[str], on_done: Deliver, command: str = "/ragbot-ingest", roles: Sequence[str] = ()
    ) -> Reply:
        """Start a background re-ingest (admins only, one at a time, inside bot.ingest_paths); on_done gets the summary.

        A chat admin is not the host's operator: every path named in chat must resolve (after
        `~`, `..` and symlinks) inside the configured roots, and the walk is told to follow no
        symlink out of them. The local CLI (`ragbot ingest PATH`) is not limited.
        """
        if not self.is_admin(user, roles):
            return Reply(bot_text("admin_only", command=command), private=True, kind="refused")
        roots = self.ingest_roots()
        shown_roots = ", ".join(root.as_posix() for root in roots)
        if not roots:
            logger.warning("refused a chat ingest by %s: bot.ingest_paths is empty", user)
            return Reply(bot_text("ingest_no_roots"), private=True, kind="refused")
        if paths:
            resolved = []
            for path in paths:
                target = resolve_path(path)
                if not inside(target, roots):
                    logger.warning("refused a chat ingest of %r (resolves to %s) by %s: outside bot.ingest_paths", path, target, user)
                    return Reply(
                        bot_text("ingest_outside_roots", path=path, resolved=target.as_posix(), roots=shown_roots),
                        private=True, kind="refused",
                    )
                resolved.append(target.as_posix())
            paths = resolved
        else:
            paths = [root.as_posix() for root in roots]
        if self.run_ingest is None:
            return Reply(bot_text("ingest_error", paths=", ".join(paths), error="ingest is not available here"), private=True, kind="error")
        state = self._ingest
        with state.lock:
            if state.running:
                return Reply(
                    bot_text("ingest_running", user=state.user, seconds=int(time.monotonic() - state.started)),
                    private=True, kind="refused",
                )
            state.running, state.user, state.started = True, user, time.monotonic()
        shown = ", ".join(paths)

        def work() -> None:
            try:
                report = self.run_ingest(paths, roots=[root.as_posix() for root in roots])
                summary = bot_text(
                    "ingest_done", paths=shown, seconds=report.seconds, added=report.added, updated=report.updated,
                    unchanged=report.unchanged, deleted=report.deleted, failed=len(report.failed),
                )
                issues = list(report.failed[:10]) + list(getattr(report, "warnings", [])[:10])
                lines = [summary] + [bot_text("ingest_failed_line", source=printable(f.source), reason=printable(f.reason)) for f in issues]
                reply = Reply("\n".join(lines), kind="admin")
            except Exception as exc:  # the error is the summary; the bot lives on
                logger.exception("admin re-ingest failed")
                reply = Reply(bot_text("ingest_error", paths=shown, error=str(exc)), kind="error")
            finally:
                with state.lock:
                    state.running = False
            try:
                on_done(reply)
            except Exception:
                logger.exception("posting the ingest summary failed")

        threading.Thread(target=work, name="ragbot-ingest", daemon=True).start()
        return Reply(bot_text("ingest_started", paths=shown), private=True, kind="admin")

    @property
    def ingesting(self) -> bool:
        """Whether an admin re-ingest is running."""
        return self._ingest.running

    def status(self, channel: str, user: str = "", roles: Sequence[str] = (), command: str = "/ragbot-status") -> Reply:
        """What is indexed, how answers are made, and what this channel searches (admins only unless bot.status_for: everyone)."""
        if self.config.status_for != "everyone" and not self.is_admin(user, roles):
            return Reply(bot_text("admin_only", command=command), private=True, kind="refused")
        data = self.status_provider() if self.status_provider else {"sources": 0, "chunks": 0, "spaces": []}
        lines = [
            bot_text(
                "status", sources=data.get("sources", 0), chunks=data.get("chunks", 0),
                mode=getattr(self.answerer, "mode", "?"), sets=", ".join(self.sets_for(channel)),
            )
        ]
        for space in data.get("spaces", []):
            lines.append(bot_text("status_space", space=space["space"], chunks=space["chunks"], model=space["model"]))
        if self.ingesting:
            lines.append(bot_text("status_ingesting"))
        return Reply("\n".join(lines), private=True, kind="admin")

    def close(self) -> None:
        """Stop taking work; wait for answers in flight."""
        self._executor.shutdown(wait=True, cancel_futures=False)
