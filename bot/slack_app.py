"""The Slack adapter: Bolt listeners that translate Slack payloads to and from the bot core.

Listeners only translate and hand the question to `BotCore.submit`, which answers on the
core's own worker pool, so Bolt's 5 listener threads are never held by a long answer and
every event, command and button is acked within Slack's 3 s. Slack's retries of an event
(same `event_id`, `X-Slack-Retry-Num`) are dropped by a global middleware, in HTTP and
Socket Mode alike, against the shared state store (whichever worker got the original). Answers in threads go out through `AnswerPoster` (bot/slack_stream.py:
Slack's native stream and thread status where allowed, else the placeholder edited with
chat.update); the assistant side panel is Bolt's `Assistant` middleware (bot/slack_assistant.py).
"""

from __future__ import annotations

import logging
import os
import re

from slack_bolt import App, BoltResponse
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.config import SlackConfig
from bot.core import BotCore, IncomingMessage, Reply
from bot.slack_assistant import register_assistant
from bot.slack_format import (
    FEEDBACK_HELPFUL,
    FEEDBACK_NATIVE,
    FEEDBACK_UNHELPFUL,
    SHARE_ACTION,
    escape,
    parse_native_feedback,
    reply_messages,
)
from bot.slack_stream import AnswerPoster, SlackFeatures
from bot.texts import text as bot_text
from rag.lang import detect_lang

logger = logging.getLogger(__name__)

API_URL_ENV = "SLACK_API_URL"
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def api_url(config: SlackConfig) -> str:
    """The Web API base URL: SLACK_API_URL, else slack.api_url, else Slack's own (always ending in /)."""
    url = os.environ.get(API_URL_ENV) or config.api_url or WebClient.BASE_URL
    return url if url.endswith("/") else url + "/"


def build_web_client(token: str | None, base_url: str) -> WebClient:
    """A WebClient that waits out one 429 (Retry-After) and then reports it."""
    client = WebClient(token=token, base_url=base_url, timeout=30)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    return client


def _team(context) -> str:
    """The workspace an event came from (the key under which Slack's refusals are remembered)."""
    return context.get("team_id") or context.get("enterprise_id") or ""


def _job_id(body: dict) -> str | None:
    """The job an event is noted as (its event id), for the listener that answers it."""
    event_id = body.get("event_id") if isinstance(body, dict) else None
    return f"slack:{event_id}" if event_id else None


def _resumable(event: dict) -> bool:
    """Events another worker can answer if this one stops: mentions and follow-ups in channel threads.

    Direct messages and assistant threads are not noted (Bolt's assistant middleware may take
    them before our listeners, which are what end a job)."""
    if event.get("type") == "app_mention":
        return True
    return event.get("type") == "message" and event.get("channel_type") != "im" and bool(event.get("thread_ts"))


def _question_text(text: str) -> str:
    return _MENTION.sub(" ", text or "").strip()


class _NoTokenSkippedWarning(logging.Filter):
    """Drops Bolt's "As you gave `client` as well, `token` will be unused" warning.

    Bolt reads SLACK_BOT_TOKEN from the environment even when given a client (which holds that
    very token), then warns at every start about a conflict that is not one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_BOLT_LOGGER = logging.getLogger("slack_bolt.App")
_BOLT_LOGGER.addFilter(_NoTokenSkippedWarning())


def build_slack_app(
    core: BotCore,
    config: SlackConfig,
    client: WebClient,
    signing_secret: str | None = None,
    socket_mode: bool = False,
) -> App:
    """The Bolt app over core: mentions, DMs, thread follow-ups, /ask, admin commands, buttons."""
    app = App(
        client=client,
        logger=_BOLT_LOGGER,
        signing_secret=signing_secret or "",
        request_verification_enabled=not socket_mode,
        token_verification_enabled=False,  # auth.test runs on the first request, not at import
        process_before_response=False,
    )
    features = SlackFeatures(enabled=config.native_streaming)

    @app.middleware
    def drop_retries(body: dict, context, next, logger) -> BoltResponse | None:  # noqa: A002 - Bolt's names
        event_id = body.get("event_id") if isinstance(body, dict) else None
        # in the state store: a retry that reaches another worker (or this one after a restart) is dropped too
        if event_id and not core.state.first_delivery(f"slack:{event_id}", config.dedupe_ttl_s):
            logger.info("dropped a repeated delivery of %s", event_id)
            return BoltResponse(status=200, body="")
        event = body.get("event") if event_id else None
        if isinstance(event, dict) and _resumable(event):  # noted before the ack: Slack will not send it again
            core.note_job(_job_id(body), "slack", {"event": event, "team": _team(context), "bot_user": context.get("bot_user_id")})
        next()
        return None

    def ask_in_thread(
        channel: str, thread: str, user: str, text: str, team: str = "", set_status=None, say_stream=None,
        context_channel: str | None = None, job_id: str | None = None,
    ) -> None:
        """Answer in a thread: Slack's status and native stream where allowed, else the placeholder (AnswerPoster).

        job_id: the job the event was noted as (forgotten once answered or refused)."""
        question = _question_text(text)
        open_stream = (lambda: say_stream(buffer_size=1, channel=channel, thread_ts=thread)) if say_stream else None
        poster = AnswerPoster(
            client, channel, thread, team=team, features=features, lang=detect_lang(question), streams=core.streams,
            fallback_interval_s=config.stream_interval_s, append_interval_s=config.native_stream_interval_s,
            set_status=set_status, open_stream=open_stream,
        )
        message = IncomingMessage(question, user, channel, thread, platform="slack", context_channel=context_channel)
        poster.start()
        streaming = core.streams and (config.stream_interval_s > 0 or poster.fallback is None)
        refusal = core.submit(
            message, deliver=poster.finish, on_token=poster.on_token if streaming else None, on_stage=poster.on_stage,
            job_id=job_id,
        )
        if refusal is not None:
            poster.finish(refusal)

    def answer_event(event: dict, team: str, bot_user: str | None, job_id: str | None, set_status=None, say_stream=None,
                     replayed: bool = False) -> None:
        """An app_mention or message event: answered in its thread, or left (edits, bots, chatter); its job ends either way."""
        if event.get("bot_id") or event.get("subtype") or (event.get("type") == "message" and not event.get("user")):
            core.finish_job(job_id)  # another bot's message (ourselves included), an edit, a join: never answered
            return
        channel, thread = event["channel"], event.get("thread_ts")
        if event.get("type") == "app_mention" or event.get("channel_type") == "im":
            thread = thread or event["ts"]
        elif bot_user and f"<@{bot_user}" in (event.get("text") or ""):
            thread = None  # app_mention answers this one
        elif not (thread and core.knows_thread("slack", channel, thread)):
            thread = None  # not a follow-up in a thread the bot answered
        if thread is None:
            core.finish_job(job_id)
            return
        if replayed and set_status is None:  # as Bolt gives a listener: the thread's status where the workspace allows it
            from slack_bolt.context.set_status.set_status import SetStatus

            set_status = SetStatus(client, channel, thread)
        ask_in_thread(channel, thread, event.get("user", ""), event.get("text", ""), team, set_status, say_stream, job_id=job_id)

    def resume(job_id: str, record: dict) -> None:
        """An event another worker noted and did not answer (it stopped): answered here now."""
        answer_event(record["event"], record.get("team", ""), record.get("bot_user"), job_id, replayed=True)

    core.resume_with("slack", resume)
    register_assistant(app, core, config, ask_in_thread)

    @app.event("app_mention")
    def on_mention(event: dict, context, body: dict, set_status=None, say_stream=None) -> None:
        answer_event(event, _team(context), context.get("bot_user_id"), _job_id(body), set_status, say_stream)

    @app.event("message")
    def on_message(event: dict, context, body: dict, set_status=None, say_stream=None) -> None:
        answer_event(event, _team(context), context.get("bot_user_id"), _job_id(body), set_status, say_stream)

    @app.command("/ask")
    def on_ask(ack, command: dict, respond) -> None:
        question = (command.get("text") or "").strip()
        lang = detect_lang(question)
        if not question:
            ack(text=bot_text("ask_usage", lang))
            return
        ack(text=bot_text("thinking", lang))
        message = IncomingMessage(question, command["user_id"], command["channel_id"], platform="slack", private=True)

        def deliver(reply: Reply) -> None:
            for part in reply_messages(reply, share=reply.kind == "answer"):
                respond(response_type="ephemeral", replace_original=False, **part)

        refusal = core.submit(message, deliver=deliver)
        if refusal is not None:
            respond(text=escape(refusal.text), response_type="ephemeral")

    @app.action(SHARE_ACTION)
    def on_share(ack, body: dict, respond) -> None:
        ack()
        answer_id = body["actions"][0]["value"]
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id")
        reply = core.answer_by_id(answer_id)
        if reply is None or not channel:
            respond(text=bot_text("feedback_unknown"), response_type="ephemeral", replace_original=False)
            return
        prefix = bot_text("shared_by", reply.lang, user=user, question=escape(reply.question)) + "\n\n"
        messages = reply_messages(reply)
        messages[0]["blocks"][0]["text"]["text"] = prefix + messages[0]["blocks"][0]["text"]["text"]
        try:
            for part in messages:
                client.chat_postMessage(channel=channel, **part)
        except SlackApiError as exc:
            logger.error("sharing an answer failed: %s", exc.response.get("error"))
            respond(text=bot_text("post_failed", reply.lang), response_type="ephemeral", replace_original=False)
            return
        respond(text=bot_text("shared", reply.lang), response_type="ephemeral", replace_original=False)

    def feedback(helpful: bool):
        def on_feedback(ack, body: dict, respond) -> None:
            ack()
            reply = core.record_feedback(body["actions"][0]["value"], body["user"]["id"], helpful)
            respond(text=reply.text, response_type="ephemeral", replace_original=False)

        return on_feedback

    app.action(FEEDBACK_HELPFUL)(feedback(True))
    app.action(FEEDBACK_UNHELPFUL)(feedback(False))

    @app.action(FEEDBACK_NATIVE)
    def on_native_feedback(ack, body: dict, respond) -> None:
        """Slack's feedback_buttons: the value says which thumb ("1:<answer id>" or "0:<answer id>")."""
        ack()
        parsed = parse_native_feedback(body["actions"][0].get("value", ""))
        if parsed is None:
            return
        reply = core.record_feedback(parsed[0], body["user"]["id"], parsed[1])
        respond(text=reply.text, response_type="ephemeral", replace_original=False)

    @app.command("/ragbot-ingest")
    def on_ingest(ack, command: dict, respond) -> None:
        channel = command["channel_id"]

        def done(reply: Reply) -> None:
            try:
                client.chat_postMessage(channel=channel, text=escape(reply.text))
            except SlackApiError:  # not a member of the channel: the command's own response URL
                respond(text=escape(reply.text), response_type="in_channel")

        reply = core.ingest(command["user_id"], (command.get("text") or "").split(), done)
        ack(text=escape(reply.text))  # it may quote the paths the admin typed

    @app.command("/ragbot-status")
    def on_status(ack, command: dict) -> None:
        ack(text=core.status(command["channel_id"], command["user_id"]).text)

    return app


def run_socket_mode(app: App, app_token: str, base_url: str) -> None:
    """Connect over Socket Mode (no public URL) and serve until interrupted."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    SocketModeHandler(app, app_token, web_client=WebClient(base_url=base_url)).start()
