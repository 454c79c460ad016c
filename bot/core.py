"""The platform-neutral bot: a message in, a reply out.

Slack, Discord and the CLI only translate to and from `IncomingMessage` / `Reply`. The core
owns what every chat front end needs: thread memory for follow-ups, channel -> knowledge set
filters, per-user rate limits, a bounded pool of answer workers (so a platform's own
listener threads are never held by a 30 s answer), admin re-ingest and feedback.

Everything it remembers between questions (threads, answers behind buttons, rate windows,
the ingest lock and progress, feedback) lives in a `StateStore` (bot/state.py), so it
survives a restart and is shared by every worker process; the answer pool is per process.

What a platform delivered and is not answered yet is a job in the state store too, once a
front end says how to take one over (`resume_with`) and `start_recovery` runs: a worker that
dies with questions in its queue (the platform has its ack and will not send them again)
leaves them to the others, which take them over when its liveness mark lapses.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.config import BotConfig
from bot.feedback import Feedback
from bot.state import INGEST_LOCK, StateStore, held, holder_name
from bot.texts import printable
from bot.texts import text as bot_text
from rag.citations import Citation
from rag.conversation import Conversation
from rag.errors import LLMError, QuestionError
from rag.lang import detect_lang
from rag.messages import text as rag_text
from rag.records import Locator

if TYPE_CHECKING:
    from rag.answer import Answer

logger = logging.getLogger(__name__)

Deliver = Callable[["Reply"], None]
OnStage = Callable[[str], None]

# What an answer is doing, for front ends that show a status ("Searching the documents...").
STAGE_SEARCHING = "searching"  # from the moment a question is accepted until the LLM starts
STAGE_WRITING = "writing"  # the LLM is writing (its text streams to on_token)


class IngestRunner(Protocol):
    """Runs an ingest of paths; with roots, folder walks never follow a symlink out of them.

    A runner may also take `progress` (a tqdm-like factory: total=, desc=, unit=; bars with
    update(n) and close()): its progress then shows in /ragbot-status on every worker.
    """

    def __call__(self, paths: list[str], roots: list[str] | None = None) -> IngestReport: ...


class IngestReport(Protocol):
    """What an ingest run reports (ingest.pipeline.IngestReport)."""

    seconds: float
    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: list


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


class Answerer(Protocol):
    """What answers a question (rag.answer.Answerer): mode is "llm" or "extractive"."""

    mode: str

    def answer(self, question: str, conversation: Conversation | None = None, **kwargs) -> Answer: ...


class StatusProvider(Protocol):
    """Counts for /ragbot-status: {"sources": n, "chunks": n, "spaces": [{"space", "chunks", "model"}]}."""

    def __call__(self) -> dict: ...


def _reply_json(reply: Reply) -> dict:
    data = asdict(reply)
    data["citations"] = [asdict(c) for c in reply.citations]
    return data


def _reply_from(data: dict) -> Reply:
    citations = tuple(Citation(**{**c, "locator": Locator(**c["locator"])}) for c in data.get("citations", []))
    return Reply(**{**data, "citations": citations})


class _Locks:
    """One lock per key in this process, the least recently used forgotten beyond capacity."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._locks: OrderedDict[str, threading.Lock] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> threading.Lock:
        with self._lock:
            lock = self._locks.pop(key, None) or threading.Lock()
            self._locks[key] = lock
            while len(self._locks) > self.capacity:
                self._locks.popitem(last=False)
            return lock


INGEST_LOCK_TTL_S = 60.0  # a worker that dies mid-ingest frees the lock after this; a live one refreshes it


class _IngestProgress:
    """A tqdm-like bar factory for the ingest pipeline that publishes "Embedding (en): 120/400 chunks" to a callback."""

    def __init__(self, publish: Callable[[str], None]):
        self.publish = publish

    def __call__(self, total: int = 0, desc: str = "", unit: str = "it", **_):
        progress = self

        class Bar:
            n = 0

            def update(self, n: int = 1) -> None:
                self.n += n
                progress.publish(f"{desc}: {self.n}/{total} {unit}s")

            def close(self) -> None:
                pass

        progress.publish(f"{desc}: 0/{total} {unit}s")
        return Bar()


class BotCore:
    """Answers chat messages within limits; runs admin commands; records feedback."""

    def __init__(
        self,
        answerer: Answerer,
        config: BotConfig,
        state: StateStore,
        channel_sets: Mapping[str, Sequence[str]] | None = None,
        admins: Sequence[str] = (),
        admin_roles: Sequence[str] = (),
        run_ingest: IngestRunner | None = None,
        status: StatusProvider | None = None,
        history_turns: int = 4,
        max_question_chars: int = 2000,
        answer_ttl_s: float = 30 * 86400.0,
    ):
        self.answerer = answerer
        self.config = config
        self.state = state
        self.answer_ttl_s = answer_ttl_s
        self.history_turns = history_turns
        self.channel_sets = {k: list(v) for k, v in (channel_sets or {}).items()}
        self.admins = {str(a) for a in admins}
        self.admin_roles = {str(r) for r in admin_roles}
        self.run_ingest = run_ingest
        self.status_provider = status
        self.max_question_chars = max_question_chars
        self._thread_locks = _Locks(config.threads_remembered)
        self.holder = f"{holder_name()}:{uuid.uuid4().hex[:8]}"  # this core, in job records and its liveness mark
        self._resumers: dict[str, Callable[[str, dict], None]] = {}  # platform -> resume(job id, record)
        self._alive_token: str | None = None
        self._recovery_stop = threading.Event()
        self._recovery: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="ragbot-answer")
        self._slots = threading.BoundedSemaphore(config.workers + config.queue_size)
        try:  # answerers that can say when the LLM starts writing (rag.answer.Answerer) get on_stage
            self._answerer_stages = "on_stage" in inspect.signature(answerer.answer).parameters
        except (TypeError, ValueError):
            self._answerer_stages = False
        try:  # ingest runners that take a progress bar factory publish their progress to /ragbot-status
            self._ingest_progress = run_ingest is not None and "progress" in inspect.signature(run_ingest).parameters
        except (TypeError, ValueError):
            self._ingest_progress = False

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
        on_stage: OnStage | None = None, job_id: str | None = None,
    ) -> Reply | None:
        """Queue a question: None when accepted (deliver gets the reply later), else the refusal to show now.

        Never blocks: a full queue gets the "busy" reply, a user over the rate limit a wait time.
        on_token gets the checked answer text as it is written (markers for passages not shown
        never reach it); on_stage gets STAGE_WRITING when the LLM starts. job_id: the job
        (`note_job`) this question came in as, forgotten once the reply is delivered (or refused).
        """
        early = self._precheck(message)
        if early is None and not self._slots.acquire(blocking=False):
            logger.warning("work queue full; told %s to retry", message.user)
            early = Reply(bot_text("busy", detect_lang(message.text)), private=True, kind="busy", question=message.text)
        if early is not None:
            self.finish_job(job_id)  # the refusal is shown by the caller, now
            return early

        def work() -> None:
            try:
                reply = self._answer(message, on_token, on_stage)
                try:
                    deliver(reply)
                except Exception:  # a platform error while posting must not kill the worker
                    logger.exception("delivering a reply failed")
                self.finish_job(job_id)
            finally:
                self._slots.release()

        self._executor.submit(work)
        return None

    # -- questions a worker accepted and did not answer (it stopped) ---------------------------
    def resume_with(self, platform: str, resume: Callable[[str, dict], None]) -> None:
        """How this process takes over a platform's job: resume(job_id, record) answers it (submit with job_id)."""
        self._resumers[platform] = resume

    def note_job(self, job_id: str, platform: str, record: dict) -> bool:
        """Note what a platform delivered (and is about to be acked) until it is answered; False when not noted.

        Noted only while this core's liveness mark is held (start_recovery): a job of a holder
        without one would look abandoned at once. A chat platform does not deliver an acked event
        again, so this is what lets another worker answer it if this process stops first.
        """
        if self._alive_token is None or platform not in self._resumers:
            return False
        try:
            self.state.add_job(job_id, self.holder, {"platform": platform, **record}, self.config.job_ttl_s)
            return True
        except Exception:  # the answer matters more than its safety net
            logger.exception("could not note a job; answering it anyway")
            return False

    def finish_job(self, job_id: str | None) -> None:
        """Forget a job: answered, refused, or not one to answer."""
        if job_id is None:
            return
        try:
            self.state.finish_job(job_id)
        except Exception:
            logger.exception("could not forget a finished job")

    @staticmethod
    def _alive_lock(holder: str) -> str:
        return f"alive:{holder}"

    def keep_alive(self) -> bool:
        """Mark this core alive for job_liveness_s (take or refresh the mark); whether it holds it."""
        ttl = self.config.job_liveness_s
        info = {"holder": self.holder, "at": time.time()}
        if self._alive_token is not None and self.state.refresh_lock(self._alive_lock(self.holder), self._alive_token, info, ttl):
            return True
        self._alive_token = self.state.try_lock(self._alive_lock(self.holder), info, ttl)
        return self._alive_token is not None

    def _abandoned(self, info: dict) -> bool:
        """Whether a lock's holder was a serving core whose liveness mark lapsed (it stopped)."""
        holder = info.get("holder")
        return bool(holder) and holder != self.holder and self.state.lock_info(self._alive_lock(holder)) is None

    def recover(self) -> int:
        """Take over the jobs of holders whose liveness mark lapsed, and answer them; how many were taken."""
        taken = 0
        alive: dict[str, bool] = {self.holder: True}  # one liveness look-up per holder, however many jobs it left
        for job_id, holder, record in self.state.jobs():
            if holder not in alive:
                alive[holder] = self.state.lock_info(self._alive_lock(holder)) is not None
            if alive[holder]:
                continue
            resume = self._resumers.get(record.get("platform", ""))
            if resume is None or not self.state.take_job(job_id, holder, self.holder):
                continue
            logger.warning("taking over job %s from %s, which stopped before answering it", job_id, holder)
            taken += 1
            try:
                resume(job_id, record)
            except Exception:
                logger.exception("could not resume job %s", job_id)
                self.finish_job(job_id)
        return taken

    def start_recovery(self) -> None:
        """Keep this core's liveness mark and take over stopped workers' jobs, every job_check_s, in a thread."""
        if self._recovery is not None:
            return
        self.keep_alive()

        def loop() -> None:
            while not self._recovery_stop.wait(self.config.job_check_s):
                try:
                    if self.keep_alive():
                        self.recover()
                except Exception as exc:  # a state store that is away for a while: try again next round
                    logger.warning("job recovery: %s: %s", type(exc).__name__, exc)

        self._recovery = threading.Thread(target=loop, name="ragbot-recovery", daemon=True)
        self._recovery.start()

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
        wait = self.state.rate_check(f"{message.platform}:{message.user}", self.config.rate_limit, self.config.rate_window_s)
        if wait:
            return Reply(
                bot_text("rate_limited", lang, limit=self.config.rate_limit, window=int(self.config.rate_window_s), wait=int(wait) + 1),
                private=True, kind="rate_limited", lang=lang,
            )
        return None

    def _answer(self, message: IncomingMessage, on_token, on_stage: OnStage | None = None) -> Reply:
        lang = detect_lang(message.text)
        key = self.thread_key(message.platform, message.channel, message.thread) if message.thread else None
        extra = {"on_stage": _quiet(on_stage)} if on_stage is not None and self._answerer_stages else {}
        try:
            with self._thread_turn(key) as conversation:  # turns of one thread in order, in every worker
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

    @staticmethod
    def thread_key(platform: str, channel: str, thread: str) -> str:
        """The state store's key of a thread's conversation."""
        return f"{platform}:{channel}:{thread}"

    def knows_thread(self, platform: str, channel: str, thread: str) -> bool:
        """Whether the bot holds a conversation for that thread (it answered there, in any worker, before a restart too)."""
        return self.state.knows_thread(self.thread_key(platform, channel, thread))

    @contextmanager
    def _thread_turn(self, key: str | None) -> Iterator[Conversation | None]:
        """The thread's conversation as the state store has it, with the thread locked; its new turn is stored after."""
        if key is None:
            yield None
            return
        # a thread held by a worker that stopped mid-answer (its liveness mark lapsed) is not waited for
        info = {"holder": self.holder} if self._alive_token is not None else {}
        with self._thread_locks.get(key), held(self.state, f"thread:{key}", ttl_s=180.0, wait_s=120.0, info=info, abandoned=self._abandoned):
            conversation = Conversation(self.history_turns)
            for turn in self.state.thread_turns(key) or ():
                conversation.turns.append(turn)
            last = conversation.turns[-1] if conversation.turns else None
            yield conversation
            if conversation.turns and conversation.turns[-1] is not last:
                self.state.add_turn(key, conversation.turns[-1], self.history_turns)

    # -- answers kept for feedback and sharing -------------------------------------------
    def _remember(self, reply: Reply, message: IncomingMessage) -> None:
        record = {"question": message.text.strip(), "reply": _reply_json(reply), "platform": message.platform, "channel": message.channel}
        try:
            self.state.put_answer(reply.answer_id, record, self.answer_ttl_s)
        except Exception:  # the answer is still posted; only its buttons will not find it
            logger.exception("keeping the answer for its buttons failed")

    def _remembered(self, answer_id: str) -> dict | None:
        record = self.state.get_answer(answer_id) if answer_id else None
        if record is None:
            return None
        return {**record, "reply": _reply_from(record["reply"])}

    def answer_by_id(self, answer_id: str) -> Reply | None:
        """A recent answer (for sharing an /ask reply in the channel), whichever worker wrote it."""
        item = self._remembered(answer_id)
        return item["reply"] if item else None

    def record_feedback(self, answer_id: str, user: str, helpful: bool) -> Reply:
        """Store a vote on an answer with its question, text and sources; a private thank-you.

        One vote per user and answer: a second click replaces the first.
        """
        item = self._remembered(answer_id)
        if item is None:
            return Reply(bot_text("feedback_unknown"), private=True, kind="refused")
        reply: Reply = item["reply"]
        self.state.add_feedback(
            Feedback(
                helpful=helpful, user=user, platform=item["platform"], channel=item["channel"], question=item["question"],
                answer=reply.text, sources=[c.as_json() for c in reply.citations], answer_id=answer_id,
            )
        )
        return Reply(bot_text("feedback_thanks", reply.lang), private=True, kind="admin", lang=reply.lang)

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
        info = {"user": user, "started": time.time(), "paths": paths, "worker": holder_name(), "progress": ""}
        token = self.state.try_lock(INGEST_LOCK, info, INGEST_LOCK_TTL_S)
        if token is None:  # one admin re-ingest at a time, across every worker
            running = self.state.lock_info(INGEST_LOCK) or {}
            return Reply(
                bot_text("ingest_running", user=running.get("user", "?"), seconds=int(time.time() - running.get("started", time.time()))),
                private=True, kind="refused",
            )
        shown = ", ".join(paths)
        done = threading.Event()
        progress_now = {"text": "", "sent": ""}

        def publish(progress: str) -> None:  # from the ingest's progress bars: cheap, written by the heartbeat
            progress_now["text"] = progress

        def heartbeat() -> None:
            """Keeps the lock alive while the ingest runs and publishes its progress (at most twice a second)."""
            last_write = time.monotonic()
            while not done.wait(0.5):
                text = progress_now["text"]
                if text == progress_now["sent"] and time.monotonic() - last_write < INGEST_LOCK_TTL_S / 4:
                    continue
                info["progress"] = progress_now["sent"] = text
                last_write = time.monotonic()
                try:
                    if not self.state.refresh_lock(INGEST_LOCK, token, info, INGEST_LOCK_TTL_S):
                        logger.warning("the ingest lock expired while the ingest ran")
                except Exception:
                    logger.exception("publishing the ingest progress failed")

        def work() -> None:
            threading.Thread(target=heartbeat, name="ragbot-ingest-heartbeat", daemon=True).start()
            try:
                kwargs = {"progress": _IngestProgress(publish)} if self._ingest_progress else {}
                report = self.run_ingest(paths, roots=[root.as_posix() for root in roots], **kwargs)
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
                done.set()
                try:
                    self.state.release_lock(INGEST_LOCK, token)
                except Exception:
                    logger.exception("releasing the ingest lock failed (it expires in %g s)", INGEST_LOCK_TTL_S)
            try:
                on_done(reply)
            except Exception:
                logger.exception("posting the ingest summary failed")

        threading.Thread(target=work, name="ragbot-ingest", daemon=True).start()
        return Reply(bot_text("ingest_started", paths=shown), private=True, kind="admin")

    @property
    def ingesting(self) -> bool:
        """Whether an admin re-ingest is running (in any worker)."""
        return self.state.lock_info(INGEST_LOCK) is not None

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
        running = self.state.lock_info(INGEST_LOCK)
        if running is not None:
            lines.append(
                bot_text("status_ingesting_by", user=running.get("user", "?"), seconds=int(time.time() - running.get("started", time.time())),
                         progress=running.get("progress") or "starting")
            )
        return Reply("\n".join(lines), private=True, kind="admin")

    def close(self) -> None:
        """Stop taking work; wait for answers in flight; drop the liveness mark (its jobs are done by then)."""
        self._recovery_stop.set()
        if self._recovery is not None:
            self._recovery.join(timeout=10)
        self._executor.shutdown(wait=True, cancel_futures=False)
        if self._alive_token is not None:
            try:
                self.state.release_lock(self._alive_lock(self.holder), self._alive_token)
            except Exception as exc:
                logger.warning("could not drop the liveness mark: %s", exc)
