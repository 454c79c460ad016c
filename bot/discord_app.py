"""The Discord adapter: a discord.py client and app-command tree that translate to and from the bot core.

Handlers run on the event loop and only translate: the question goes to `BotCore.submit`,
which answers on the core's worker pool, and the reply comes back to the loop through a
future, so the loop never waits on embedding, Chroma or the LLM. Interactions are deferred
before anything else (Discord allows 3 s); an answer later than the follow-up token's 15 min
goes to a DM (private /ask) or the channel instead. Every send carries
`AllowedMentions.none()`, and a 429 past `max_ratelimit_timeout` becomes a "busy" notice.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading

import discord
from discord import app_commands

from bot.config import DiscordConfig
from bot.core import BotCore, IncomingMessage, Reply
from bot.discord_format import (
    SHARE_PREFIX,
    clean,
    feedback_ids,
    final_payloads,
    parse_custom_id,
    reply_payloads,
    streamed_pieces,
    thread_name,
)
from bot.texts import text as bot_text
from rag.lang import detect_lang

logger = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
PLATFORM = "discord"
_EXPIRED_CODES = {10015, 50027}  # Unknown Webhook, Invalid Webhook Token: the follow-up token is gone


def build_intents(config: DiscordConfig) -> discord.Intents:
    """Guilds, guild and DM messages; message content only when configured (it is privileged)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = config.message_content
    return intents


def answer_view(answer_id: str, lang: str = "en", share: bool = False) -> discord.ui.View:
    """Helpful / not helpful buttons (and Share for a private answer); clicks are routed by custom id."""
    view = discord.ui.View(timeout=None)
    helpful, unhelpful = feedback_ids(answer_id)
    if share:
        view.add_item(discord.ui.Button(label=bot_text("share", lang), style=discord.ButtonStyle.primary, custom_id=SHARE_PREFIX + answer_id))
    view.add_item(discord.ui.Button(label=bot_text("helpful", lang), style=discord.ButtonStyle.secondary, custom_id=helpful))
    view.add_item(discord.ui.Button(label=bot_text("not_helpful", lang), style=discord.ButtonStyle.secondary, custom_id=unhelpful))
    return view


def _messages(reply: Reply, share: bool = False, prefix: str = "") -> list[dict]:
    """send() keyword arguments for each message of a reply; buttons on the last one of an answer."""
    return _kwargs(reply_payloads(reply, prefix=prefix), reply, share)


def _kwargs(payloads: list[dict], reply: Reply, share: bool = False) -> list[dict]:
    out = []
    for payload in payloads:
        kwargs: dict = {"allowed_mentions": NO_MENTIONS}
        if payload["content"]:
            kwargs["content"] = payload["content"]
        if payload["embed"]:
            kwargs["embed"] = discord.Embed.from_dict(payload["embed"])
        out.append(kwargs)
    if reply.answer_id:
        out[-1]["view"] = answer_view(reply.answer_id, reply.lang, share=share)
    return out


def _sent(kwargs: dict) -> None:
    """Forget a sent message's view: clicks are routed by custom id, so no view (or its task) is kept per answer."""
    view = kwargs.get("view")
    if view is not None:
        view.stop()


def _expired(exc: discord.HTTPException) -> bool:
    return exc.status in (401, 404) and (exc.code in _EXPIRED_CODES or exc.status == 404)


class StreamedReply:
    """An LLM answer shown while it is written, in one or more Discord messages.

    The core's worker hands over checked text (on_token, any thread); the event loop sends it
    as at most one request per interval_s: an edit of the message holding the end of the text,
    or a new message when the text passes Discord's 2,000 characters. finish() waits out the
    interval too and shows the reply as it would have been sent, with the sources embed and
    buttons. Every request carries AllowedMentions.none(). Subclasses say where messages go.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float):
        self.loop = loop
        self.interval_s = interval_s
        self.shown: list[str] = []  # the content shown in each message so far
        self.requests: list[float] = []  # loop.time() of each request (edits and sends)
        self._text = ""
        self._lock = threading.Lock()
        self._scheduled = False
        self._task: asyncio.Task | None = None
        self._done = False
        self._stopped = asyncio.Event()
        self._context = contextvars.copy_context()  # the handler's (discord.py keeps its webhook adapter there)

    # -- where the messages go ----------------------------------------------------------
    async def _post(self, i: int, **kwargs) -> None:
        """Send message i (the next one)."""
        raise NotImplementedError

    async def _edit(self, i: int, **kwargs) -> None:
        raise NotImplementedError

    async def _delete(self, i: int) -> None:
        raise NotImplementedError

    # -- streaming ----------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return bool(self.shown)

    def on_token(self, delta: str) -> None:  # a worker thread
        with self._lock:
            self._text += delta
            first, self._scheduled = not self._scheduled, True
        if first:
            self.loop.call_soon_threadsafe(self._start, context=self._context)

    def _start(self) -> None:
        if not self._done:
            self._task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        while not self._done:
            with self._lock:
                pieces = streamed_pieces(self._text)
            try:
                await self._step(pieces)
            except discord.HTTPException as exc:  # a skipped edit costs nothing: the final one carries everything
                logger.info("a streaming edit failed: %s %s", exc.status, exc.code)
            try:
                await asyncio.wait_for(self._stopped.wait(), self.interval_s)
            except asyncio.TimeoutError:
                pass

    async def _step(self, pieces: list[str]) -> None:
        """One request: edit the first shown message whose text changed, else send the next piece."""
        for i, piece in enumerate(pieces[: len(self.shown)]):
            if piece != self.shown[i]:
                self.requests.append(self.loop.time())
                await self._edit(i, content=piece, allowed_mentions=NO_MENTIONS)
                self.shown[i] = piece
                return
        if len(pieces) > len(self.shown):
            self.requests.append(self.loop.time())
            await self._post(len(self.shown), content=pieces[len(self.shown)], allowed_mentions=NO_MENTIONS)
            self.shown.append(pieces[len(self.shown)])

    async def _wait_turn(self) -> None:
        if self.requests:
            await asyncio.sleep(max(0.0, self.requests[-1] + self.interval_s - self.loop.time()))
        self.requests.append(self.loop.time())

    async def stop(self) -> None:
        """No more streaming edits: the loop's task ends after the request in flight, if any."""
        self._done = True
        self._stopped.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def finish(self, reply: Reply, share: bool = False) -> None:
        """Show the reply in the streamed messages (sources embed and buttons on the last), sending or deleting the difference."""
        await self.stop()
        shown = len(self.shown)
        messages = _kwargs(final_payloads(reply, shown), reply, share)
        for i, kwargs in enumerate(messages):
            await self._wait_turn()
            if i < shown:
                kwargs.setdefault("content", None)
                kwargs.setdefault("embed", None)
                await self._edit(i, **kwargs)
            else:
                await self._post(i, **kwargs)
            _sent(kwargs)
        for i in range(shown - 1, len(messages) - 1, -1):
            await self._delete(i)


class DeferredStream(StreamedReply):
    """Into an interaction's deferred reply (/ask), a long answer going on in follow-ups."""

    def __init__(self, interaction: discord.Interaction, loop: asyncio.AbstractEventLoop, ephemeral: bool, interval_s: float):
        super().__init__(loop, interval_s)
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.followups: list[discord.WebhookMessage] = []

    async def _post(self, i: int, **kwargs) -> None:
        if i == 0:
            await self.interaction.edit_original_response(**kwargs)
        else:
            self.followups.append(await self.interaction.followup.send(ephemeral=self.ephemeral, wait=True, **kwargs))

    async def _edit(self, i: int, **kwargs) -> None:
        if i == 0:
            await self.interaction.edit_original_response(**kwargs)
        else:
            await self.followups[i - 1].edit(**kwargs)

    async def _delete(self, i: int) -> None:
        await self.followups[i - 1].delete()


class ChannelStream(StreamedReply):
    """Into a channel or thread (a mention's thread, a DM): messages sent there and edited."""

    def __init__(self, target, loop: asyncio.AbstractEventLoop, interval_s: float):
        super().__init__(loop, interval_s)
        self.target = target
        self.messages: list[discord.Message] = []

    async def _post(self, i: int, **kwargs) -> None:
        self.messages.append(await self.target.send(**kwargs))

    async def _edit(self, i: int, **kwargs) -> None:
        self.messages[i] = await self.messages[i].edit(**kwargs)

    async def _delete(self, i: int) -> None:
        await self.messages[i].delete()


class RagbotClient(discord.Client):
    """The Discord client over a BotCore: mentions, DMs, configured channels, /ask, admin commands, buttons."""

    def __init__(self, core: BotCore, config: DiscordConfig, **options):
        options.setdefault("allowed_mentions", NO_MENTIONS)
        options.setdefault("max_ratelimit_timeout", config.max_ratelimit_timeout)
        super().__init__(intents=build_intents(config), **options)
        self.core = core
        self.config = config
        self.tree = app_commands.CommandTree(self)
        self._tasks: set[asyncio.Task] = set()
        self._register_commands()

    # -- plumbing ----------------------------------------------------------------------
    async def setup_hook(self) -> None:
        """Sync the app commands (to one server when discord.guild_id is set: instant)."""
        guild = discord.Object(self.config.guild_id) if self.config.guild_id else None
        if guild:
            self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    async def ask_core(self, message: IncomingMessage, on_token=None) -> Reply:
        """The core's reply, produced on its worker pool; the loop only awaits a future."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Reply] = loop.create_future()

        def deliver(reply: Reply) -> None:  # a worker thread
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(reply))

        refusal = self.core.submit(message, deliver=deliver, on_token=on_token)
        return refusal if refusal is not None else await done

    def _spawn(self, coro) -> asyncio.Task:
        """Run a coroutine in the background, keeping a reference and logging its failure (never unhandled)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def finished(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("a Discord handler failed", exc_info=t.exception())

        task.add_done_callback(finished)
        return task

    async def wait_idle(self) -> None:
        """Wait for the background handlers in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @staticmethod
    def _sets_channel(channel, channel_id: int | None) -> str:
        """The channel whose knowledge sets apply: a thread's parent, else the channel itself."""
        return str(getattr(channel, "parent_id", None) or channel_id or "")

    @staticmethod
    def _roles(user) -> list[str]:
        return [str(r) for r in getattr(user, "_roles", ())]

    # -- messages: mentions, DMs, configured channels, thread follow-ups ---------------
    def _question_from(self, message: discord.Message) -> str | None:
        """The question in a message, or None when the bot should stay quiet."""
        if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None
        me = self.user
        text = re.sub(rf"<@!?{me.id}>", " ", message.content or "").strip() if me else (message.content or "").strip()
        if isinstance(message.channel, discord.DMChannel):
            return text
        mentioned = me is not None and me in message.mentions
        if mentioned:
            return text
        if not self.config.message_content:
            return None  # without the intent, other messages arrive without content
        channel = message.channel
        if isinstance(channel, discord.Thread) and self.core.knows_thread(PLATFORM, str(channel.parent_id), str(channel.id)):
            return text  # a follow-up in a thread the bot answers in
        if channel.id in self.config.answer_channels:
            return text
        return None

    async def on_message(self, message: discord.Message) -> None:
        """Answer a mention, a DM or a message in a configured channel, in a thread."""
        question = self._question_from(message)
        if question is None:
            return
        if not question:  # a bare mention (or no content intent): never an empty question to the LLM
            await self._safe_send(message.channel, Reply(bot_text("mention_usage"), kind="refused"))
            return
        await self.answer_message(message, question)

    async def answer_message(self, message: discord.Message, question: str) -> None:
        """Open (or reuse) a thread, show typing while the core answers, post the reply there."""
        channel = message.channel
        try:
            if isinstance(channel, discord.DMChannel):
                target, key = channel, str(channel.id)
            elif isinstance(channel, discord.Thread):
                target, key = channel, str(channel.id)
            else:
                target = await message.create_thread(
                    name=thread_name(question), auto_archive_duration=self.config.thread_archive_minutes
                )
                key = str(target.id)
        except discord.RateLimited:
            await self._safe_send(channel, Reply(bot_text("busy", detect_lang(question)), kind="busy"))
            return
        except discord.HTTPException as exc:  # no permission to create threads: answer in the channel
            logger.warning("could not open a thread (%s); answering in the channel", exc.status)
            target, key = channel, str(message.id)
        incoming = IncomingMessage(question, str(message.author.id), self._sets_channel(channel, channel.id), key, platform=PLATFORM)
        stream = None
        if self.config.stream_answers and self.core.streams:
            stream = ChannelStream(target, asyncio.get_running_loop(), self.config.stream_interval_s)
        on_token = stream.on_token if stream else None
        try:
            async with target.typing():
                reply = await self.ask_core(incoming, on_token=on_token)
        except discord.HTTPException:  # typing is cosmetic; answer anyway
            reply = await self.ask_core(incoming, on_token=on_token)
        if stream is not None:
            await stream.stop()
            if stream.started:
                try:
                    await stream.finish(reply)
                except discord.HTTPException as exc:
                    logger.error("finishing a streamed reply failed: %s %s", exc.status, exc.code)
                return
        await self._safe_send(target, reply)

    async def _safe_send(self, target, reply: Reply, share: bool = False) -> bool:
        """Post a reply's messages to a channel; a 429 past the limit or an error is logged, not raised."""
        try:
            for kwargs in _messages(reply, share=share):
                await target.send(**kwargs)
                _sent(kwargs)
            return True
        except discord.RateLimited as exc:
            logger.warning("rate limited for %.0f s posting to %s; told the user", exc.retry_after, getattr(target, "id", "?"))
            try:
                await target.send(content=bot_text("busy", reply.lang), allowed_mentions=NO_MENTIONS)
            except discord.HTTPException:
                logger.error("telling the user about the rate limit failed too")
        except discord.HTTPException as exc:
            logger.error("posting a reply failed: %s %s", exc.status, exc.code)
        return False

    # -- interactions ---------------------------------------------------------------------
    async def _followup(self, interaction: discord.Interaction, reply: Reply, share: bool = False, prefix: str = "") -> None:
        """Send a reply as the interaction's follow-up; past the token's life, to a DM or the channel."""
        ephemeral = reply.private
        if not interaction.is_expired():
            try:
                for kwargs in _messages(reply, share=share, prefix=prefix):
                    await interaction.followup.send(ephemeral=ephemeral, **kwargs)
                    _sent(kwargs)
                return
            except discord.HTTPException as exc:
                if not _expired(exc):
                    logger.error("an interaction follow-up failed: %s %s", exc.status, exc.code)
                    return
        logger.info("follow-up token of interaction %s expired; falling back", interaction.id)
        notice = bot_text("followup_expired", reply.lang) + "\n\n"
        late = Reply(notice + reply.text, reply.citations, kind=reply.kind, answer_id=reply.answer_id, lang=reply.lang)
        if ephemeral:  # a private answer never goes to the channel
            try:
                target = await interaction.user.create_dm()
            except discord.HTTPException:
                logger.error("could not open a DM to deliver a late private answer")
                return
        else:
            target = interaction.channel or self.get_partial_messageable(interaction.channel_id)
        await self._safe_send(target, late)

    async def handle_ask(self, interaction: discord.Interaction, question: str, public: bool = False) -> None:
        """/ask: defer at once, answer on the pool, follow up (private with a Share button unless public)."""
        await interaction.response.defer(ephemeral=not public, thinking=True)
        channel = self._sets_channel(interaction.channel, interaction.channel_id)
        incoming = IncomingMessage(question, str(interaction.user.id), channel, platform=PLATFORM, private=not public)
        stream = None
        if self.config.stream_answers and self.core.streams:
            stream = DeferredStream(interaction, asyncio.get_running_loop(), not public, self.config.stream_interval_s)
        reply = await self.ask_core(incoming, on_token=stream.on_token if stream else None)
        if public and reply.kind in ("busy", "rate_limited", "refused"):
            reply = Reply(reply.text, kind=reply.kind, private=True, lang=reply.lang)
        elif not public:
            reply = Reply(reply.text, reply.citations, True, reply.kind, reply.answer_id, reply.lang, reply.question, reply.grounded, reply.found)
        share = not public and reply.kind == "answer"
        if stream is not None:
            await stream.stop()
            if stream.started:
                try:
                    await stream.finish(reply, share=share)
                    return
                except discord.HTTPException as exc:  # e.g. the token expired (15 min): the late-answer path
                    logger.info("finishing a streamed reply failed (%s %s); sending it instead", exc.status, exc.code)
        await self._followup(interaction, reply, share=share)

    async def handle_ingest(self, interaction: discord.Interaction, paths: str = "") -> None:
        """/ragbot-ingest: admins (user or role ids, checked here) start a re-ingest; the summary follows."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the handler's context (discord.py keeps its webhook adapter there)

        def done(reply: Reply) -> None:  # the ingest thread
            summary = Reply(reply.text, kind=reply.kind, private=True)
            loop.call_soon_threadsafe(lambda: self._spawn(self._followup(interaction, summary)), context=context)

        reply = await asyncio.to_thread(
            self.core.ingest, str(interaction.user.id), paths.split(), done, "/ragbot-ingest", self._roles(interaction.user)
        )
        await self._followup(interaction, reply)

    async def handle_status(self, interaction: discord.Interaction) -> None:
        """/ragbot-status: what is indexed and what this channel searches (who may see it is the core's rule)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await asyncio.to_thread(
            self.core.status, self._sets_channel(interaction.channel, interaction.channel_id),
            str(interaction.user.id), self._roles(interaction.user),
        )
        await self._followup(interaction, reply)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Our buttons (feedback, share), routed by custom id so they work across restarts."""
        if interaction.type is not discord.InteractionType.component:
            return
        parsed = parse_custom_id((interaction.data or {}).get("custom_id", ""))
        if parsed is None:
            return
        action, answer_id, helpful = parsed
        try:
            if action == "feedback":
                await interaction.response.defer(ephemeral=True, thinking=True)
                reply = await asyncio.to_thread(self.core.record_feedback, answer_id, str(interaction.user.id), helpful)
                await self._followup(interaction, reply)
            else:
                await self.share(interaction, answer_id)
        except discord.HTTPException as exc:
            logger.error("answering a button click failed: %s %s", exc.status, exc.code)

    async def share(self, interaction: discord.Interaction, answer_id: str) -> None:
        """Post a private /ask answer publicly as the response to the Share click."""
        reply = self.core.answer_by_id(answer_id)
        if reply is None:
            await interaction.response.send_message(bot_text("feedback_unknown"), ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        prefix = bot_text("shared_by", reply.lang, user=interaction.user.id, question=clean(reply.question)) + "\n\n"
        messages = _messages(Reply(reply.text, reply.citations, False, "answer", reply.answer_id, reply.lang), prefix=prefix)
        await interaction.response.send_message(**messages[0])
        _sent(messages[0])
        for kwargs in messages[1:]:
            await interaction.followup.send(**kwargs)
            _sent(kwargs)

    def _register_commands(self) -> None:
        @self.tree.command(name="ask", description="Ask the documents a question (only you see the answer unless public).")
        @app_commands.describe(question="Your question", public="Post the answer for everyone in the channel")
        async def ask(interaction: discord.Interaction, question: str, public: bool = False) -> None:
            await self.handle_ask(interaction, question, public)

        @self.tree.command(name="ragbot-ingest", description="Admins: re-read documents into the knowledge base.")
        @app_commands.describe(paths="Paths to re-ingest, separated by spaces (default: bot.ingest_paths)")
        @app_commands.default_permissions(manage_guild=True)  # a hint only; checked in code
        async def ingest(interaction: discord.Interaction, paths: str = "") -> None:
            await self.handle_ingest(interaction, paths)

        async def status(interaction: discord.Interaction) -> None:
            await self.handle_status(interaction)

        if self.core.config.status_for == "admins":  # a hint only; the core decides
            status = app_commands.default_permissions(manage_guild=True)(status)
        self.tree.command(name="ragbot-status", description="What is indexed and what this channel searches.")(status)

        @self.tree.error
        async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            logger.error("app command failed", exc_info=error)
            reply = Reply(bot_text("error"), private=True, kind="error")
            try:
                if interaction.response.is_done():
                    await self._followup(interaction, reply)
                else:
                    await interaction.response.send_message(reply.text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException:
                logger.error("telling the user about the failure failed too")


def build_discord_client(core: BotCore, config: DiscordConfig, **options) -> RagbotClient:
    """The Discord client over core (call .run(token) or await .start(token))."""
    return RagbotClient(core, config, **options)
