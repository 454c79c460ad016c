"""Discord stand-ins at discord.py's own HTTP layer: its HTTPClient and its webhook adapter, recording calls.

Everything above them is discord.py's real code: `Interaction`s and `Message`s are built from
gateway payload dicts by a real `ConnectionState` (as discord.py's tests do), the app-command
tree dispatches them, and `defer()` / `followup.send()` / `Message.create_thread()` build
their real requests, which land here instead of on the network.
"""

from __future__ import annotations

import threading
import json
from datetime import datetime, timezone
from dataclasses import dataclass, field

import discord
from discord.http import HTTPClient
from discord.utils import MISSING
from discord.webhook.async_ import AsyncWebhookAdapter

BOT_ID = 900
APP_ID = 901
GUILD_ID = 100
CHANNEL_ID = 200
HR_CHANNEL_ID = 201
ADMIN_ROLE = 300
class _Snowflakes:
    """Increasing snowflake ids taken from the clock at each call: an interaction is always "now"
    (a counter fixed at import made interactions look older than Discord's 15 min follow-up
    window once a long test run passed that mark, and their replies took the late-answer path)."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, discord.utils.time_snowflake(datetime.now(timezone.utc)))
            return self._last


_ids = _Snowflakes()
_TS = "2024-01-01T00:00:00+00:00"


def user_payload(user_id: int, name: str = "user", bot: bool = False) -> dict:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name, "avatar": None, "bot": bot}


def message_payload(content: str, author: int, channel_id: int, guild_id: int | None = GUILD_ID, mentions=(), bot=False) -> dict:
    data = {
        "id": str(next(_ids)), "channel_id": str(channel_id), "author": user_payload(author, bot=bot), "content": content,
        "timestamp": _TS, "edited_timestamp": None, "tts": False, "mention_everyone": False,
        "mentions": [user_payload(m, bot=m == BOT_ID) for m in mentions], "mention_roles": [], "attachments": [],
        "embeds": [], "pinned": False, "type": 0,
    }
    if guild_id:
        data["guild_id"] = str(guild_id)
        data["member"] = {"roles": [], "joined_at": _TS, "deaf": False, "mute": False, "flags": 0}
    return data


def guild_payload() -> dict:
    channel = lambda cid, name: {"id": str(cid), "type": 0, "name": name, "position": 0, "guild_id": str(GUILD_ID),  # noqa: E731
                                 "permission_overwrites": [], "nsfw": False, "parent_id": None}
    return {
        "id": str(GUILD_ID), "name": "Test server", "icon": None, "owner_id": "1", "roles": [], "emojis": [], "stickers": [],
        "features": [], "member_count": 2, "members": [], "channels": [channel(CHANNEL_ID, "general"), channel(HR_CHANNEL_ID, "hr")],
        "threads": [], "large": False, "unavailable": False, "premium_tier": 0, "preferred_locale": "en-US",
    }


def interaction_payload(
    name: str, options: dict | None = None, user: int = 1, roles=(), channel_id: int = CHANNEL_ID, token: str = "tok",
) -> dict:
    """An APPLICATION_COMMAND interaction as the gateway delivers it."""
    return {
        "id": str(next(_ids)), "application_id": str(APP_ID), "type": 2, "token": f"{token}-{next(_ids)}", "version": 1,
        "guild_id": str(GUILD_ID), "channel_id": str(channel_id),
        "channel": {"id": str(channel_id), "type": 0, "guild_id": str(GUILD_ID), "name": "general"},
        "member": {"user": user_payload(user), "roles": [str(r) for r in roles], "joined_at": _TS, "deaf": False,
                   "mute": False, "permissions": "0", "flags": 0},
        "data": {"id": str(next(_ids)), "name": name, "type": 1,
                 "options": [{"name": k, "type": 5 if isinstance(v, bool) else 3, "value": v} for k, v in (options or {}).items()]},
        "locale": "en-US", "guild_locale": "en-US", "app_permissions": "0", "entitlements": [],
        "authorizing_integration_owners": {"0": str(GUILD_ID)}, "context": 0, "attachment_size_limit": 8388608,
    }


def component_payload(custom_id: str, user: int = 1, channel_id: int = CHANNEL_ID) -> dict:
    """A button click (MESSAGE_COMPONENT interaction) on an ephemeral message."""
    data = interaction_payload("x", user=user, channel_id=channel_id)
    data["type"] = 3
    data["data"] = {"custom_id": custom_id, "component_type": 2}
    data["message"] = message_payload("", BOT_ID, channel_id)
    data["message"]["flags"] = 64
    return data


@dataclass
class Call:
    method: str
    path: str  # the route template, e.g. /channels/{channel_id}/messages
    params: dict
    body: dict | None

    @property
    def content(self) -> str:
        body = self.body or {}
        return (body.get("data") or body).get("content") or ""

    @property
    def embeds(self) -> list[dict]:
        body = self.body or {}
        return (body.get("data") or body).get("embeds") or []

    @property
    def flags(self) -> int:
        body = self.body or {}
        return (body.get("data") or body).get("flags") or 0


def _message_reply(channel_id, body) -> dict:
    data = message_payload((body or {}).get("content") or "", BOT_ID, int(channel_id), bot=True)
    data["embeds"] = (body or {}).get("embeds") or []
    return data


@dataclass
class Failures:
    """Exceptions to raise for a route template (once each, in order)."""

    by_path: dict[str, list[BaseException]] = field(default_factory=dict)

    def add(self, path: str, exc: BaseException) -> None:
        self.by_path.setdefault(path, []).append(exc)

    def take(self, path: str) -> BaseException | None:
        queue = self.by_path.get(path)
        return queue.pop(0) if queue else None


class FakeDiscordHTTP(HTTPClient):
    """discord.py's HTTPClient with `request` answered in process and every call recorded."""

    def __init__(self, calls: list[Call], failures: Failures):
        super().__init__(MISSING)
        self.calls = calls
        self.failures = failures

    async def request(self, route, *, files=None, form=None, **kwargs):
        body = kwargs.get("json")
        if form:
            body = json.loads(next(f["value"] for f in form if f["name"] == "payload_json"))
        params = {k: v for k, v in vars(route).items() if k not in ("path", "method", "url", "metadata")}
        self.calls.append(Call(route.method, route.path, params, body))
        exc = self.failures.take(route.path)
        if exc is not None:
            raise exc
        if route.path == "/channels/{channel_id}/messages" or (
            route.method == "PATCH" and route.path == "/channels/{channel_id}/messages/{message_id}"
        ):
            return _message_reply(params.get("channel_id"), body)
        if route.path == "/channels/{channel_id}/messages/{message_id}/threads":
            return {
                "id": str(next(_ids)), "type": 11, "guild_id": str(GUILD_ID), "parent_id": str(params["channel_id"]),
                "name": body["name"], "owner_id": str(BOT_ID), "message_count": 0, "member_count": 1,
                "thread_metadata": {"archived": False, "auto_archive_duration": body.get("auto_archive_duration", 1440),
                                    "archive_timestamp": _TS, "locked": False},
            }
        if route.path == "/users/@me/channels":
            return {"id": str(next(_ids)), "type": 1, "recipients": [user_payload(int(body["recipient_id"]))], "last_message_id": None}
        return None


class FakeWebhookAdapter(AsyncWebhookAdapter):
    """discord.py's webhook adapter (interaction callbacks and follow-ups) answered in process, recorded."""

    def __init__(self, calls: list[Call], failures: Failures):
        super().__init__()
        self.calls = calls
        self.failures = failures

    async def request(self, route, session, *, payload=None, multipart=None, files=None, params=None, **_):
        body = payload
        if multipart:
            body = json.loads(next(f["value"] for f in multipart if f["name"] == "payload_json"))
        route_params = {k: v for k, v in vars(route).items() if k not in ("path", "method", "url", "metadata")}
        self.calls.append(Call(route.method, route.path, route_params, body))
        exc = self.failures.take(route.path)
        if exc is not None:
            raise exc
        if route.path.endswith("/callback"):
            kind = (body or {}).get("type", 5)
            return {"interaction": {"id": str(route_params["webhook_id"]), "type": 2}, "resource": {"type": kind}}
        if route.method in ("POST", "PATCH") and route.path.startswith("/webhooks/"):
            return _message_reply(CHANNEL_ID, body)
        return None


def http_error(status: int, code: int, message: str = "error") -> discord.HTTPException:
    """An HTTPException as discord.py raises it for a JSON error body (404 -> NotFound)."""

    class _Response:
        def __init__(self):
            self.status = status
            self.reason = message

    cls = {404: discord.NotFound, 403: discord.Forbidden}.get(status, discord.HTTPException)
    return cls(_Response(), {"code": code, "message": message})
