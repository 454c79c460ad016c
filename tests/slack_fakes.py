"""A loopback Slack Web API that records calls (and can answer 429), and requests signed as Slack signs them.

Besides chat.postMessage / chat.update it implements, as Slack documents them, the AI app
methods: chat.startStream / appendStream / stopStream (a message that grows; appending to an
unknown or stopped one answers message_not_found / message_not_in_streaming_state; streaming
into a channel, not a DM, needs recipient_user_id and recipient_team_id) and
assistant.threads.setStatus / setSuggestedPrompts / setTitle (their required arguments).
A missing required argument answers invalid_arguments. `refuse` scripts a workspace that
cannot do something: {"chat.startStream": "not_allowed"} (or unknown_method, missing_scope,
...) and {"feedback_buttons": "invalid_blocks"} for one that rejects Slack's feedback buttons.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

from slack_sdk.signature import SignatureVerifier

SECRET = "test-signing-secret"
BOT_USER = "UBOT"


class FakeSlackAPI:
    """/api/<method> on 127.0.0.1: every call recorded as (method, params); 429s can be scripted per method."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.times: list[float] = []  # time.perf_counter() of each call, as calls
        self.rate_limits: dict[str, int] = {}  # method -> how many 429s to answer before succeeding
        self.refuse: dict[str, str] = {}  # method (or "feedback_buttons") -> the error Slack answers
        self.streams: dict[str, dict] = {}  # ts -> {"channel", "thread_ts", "text", "state", "blocks"}
        self._lock = threading.Lock()
        self._ts = 1000
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                if "json" in (self.headers.get("content-type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(parse_qsl(raw))
                    for key in ("blocks", "chunks", "prompts", "loading_messages", "metadata"):
                        if key in params and isinstance(params[key], str) and params[key][:1] in "[{":
                            params[key] = json.loads(params[key])
                status, body, headers = api.respond(self.path, params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    # method -> required arguments (Slack's reference); "text|chunks": one of them
    REQUIRED = {
        "chat.startStream": ("channel", "thread_ts"),
        "chat.appendStream": ("channel", "ts", "markdown_text|chunks"),
        "chat.stopStream": ("channel", "ts"),
        "assistant.threads.setStatus": ("channel_id", "thread_ts", "status"),
        "assistant.threads.setSuggestedPrompts": ("channel_id", "prompts"),
        "assistant.threads.setTitle": ("channel_id", "thread_ts", "title"),
    }

    def respond(self, path: str, params: dict):
        method = path.rsplit("/", 1)[-1]
        with self._lock:
            self.calls.append((method if path.startswith("/api/") else path, params))
            self.times.append(time.perf_counter())
            if self.rate_limits.get(method, 0) > 0:
                self.rate_limits[method] -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            self._ts += 1
            ts = f"{self._ts}.000100"
            error = self._check(method, params)
            if error:
                body = {"ok": False, "error": error}
                if error == "missing_scope":
                    body.update(needed="assistant:write", provided="chat:write")
                return 200, body, {}
            body = self._stream_call(method, params, ts)
        if body is not None:
            return 200, body, {}
        if method == "auth.test":
            return 200, {"ok": True, "user_id": BOT_USER, "bot_id": "BBOT", "team_id": "T1", "user": "ragbot"}, {}
        return 200, {"ok": True, "ts": params.get("ts") if method == "chat.update" else ts, "channel": params.get("channel", "")}, {}

    def _check(self, method: str, params: dict) -> str | None:
        if method in self.refuse:
            return self.refuse[method]
        for name in self.REQUIRED.get(method, ()):
            if not any(params.get(n) for n in name.split("|")):
                return "invalid_arguments"
        if method == "chat.startStream" and not str(params["channel"]).startswith("D"):
            if not params.get("recipient_user_id") or not params.get("recipient_team_id"):
                return "invalid_arguments"  # streaming into a channel names its recipient
        if method == "assistant.threads.setSuggestedPrompts":
            prompts = params["prompts"]
            if len(prompts) > 4 or any(not p.get("title") or not p.get("message") for p in prompts):
                return "invalid_arguments"
        if method in ("chat.appendStream", "chat.stopStream"):
            stream = self.streams.get(params["ts"])
            if stream is None:
                return "message_not_found"
            if stream["state"] != "streaming":
                return "message_not_in_streaming_state"
        blocks = params.get("blocks") or []
        if "feedback_buttons" in self.refuse and any(b.get("type") == "context_actions" for b in blocks):
            return self.refuse["feedback_buttons"]
        if len(blocks) > 50:
            return "invalid_blocks"
        return None

    def _stream_call(self, method: str, params: dict, ts: str) -> dict | None:
        def text_of(p: dict) -> str:
            chunks = [c.get("text", "") for c in p.get("chunks") or [] if c.get("type") == "markdown_text"]
            return (p.get("markdown_text") or "") + "".join(chunks)

        if method == "chat.startStream":
            self.streams[ts] = {"channel": params["channel"], "thread_ts": params["thread_ts"], "text": text_of(params),
                                "state": "streaming", "blocks": []}
            return {"ok": True, "ts": ts, "channel": params["channel"]}
        if method in ("chat.appendStream", "chat.stopStream"):
            stream = self.streams[params["ts"]]
            stream["text"] += text_of(params)
            if method == "chat.stopStream":
                stream["state"] = "stopped"
                stream["blocks"] = params.get("blocks") or []
            return {"ok": True, "ts": params["ts"], "channel": params["channel"]}
        if method == "chat.update" and params.get("ts") in self.streams:
            self.streams[params["ts"]].update(state="stopped", text=params.get("text", ""), blocks=params.get("blocks") or [])
        return None

    def called(self, method: str) -> list[dict]:
        """The params of every call to a method (or response URL path), in order."""
        with self._lock:
            return [p for m, p in self.calls if m == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 15, where=lambda p: True) -> list[dict]:
        """Wait until at least count matching calls were made; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [p for p in self.called(method) if where(p)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def signed_headers(body: str, secret: str = SECRET, timestamp: int | None = None, content_type: str = "application/json") -> dict:
    """Headers exactly as Slack sends them: timestamp and v0 signature of the body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body),
    }


def event_body(event: dict, event_id: str = "Ev1") -> str:
    """An event_callback envelope as the Events API sends it."""
    return json.dumps({
        "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()), "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": True}],
        "event": event,
    })


def command_body(command: str, text: str, user: str = "U1", channel: str = "C1", response_url: str = "") -> str:
    """A slash command as Slack posts it (form-encoded)."""
    return urlencode({
        "token": "legacy", "team_id": "T1", "channel_id": channel, "channel_name": "general", "user_id": user,
        "user_name": "someone", "command": command, "text": text, "response_url": response_url, "trigger_id": "1.2.3",
        "api_app_id": "A1",
    })


def action_body(action_id: str, value: str, user: str = "U1", channel: str = "C1", response_url: str = "") -> str:
    """A block_actions interaction as Slack posts it (payload=<json>)."""
    payload = {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1",
        "channel": {"id": channel}, "container": {"type": "message", "channel_id": channel},
        "response_url": response_url, "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "1.1"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def post(url: str, body: str, headers: dict, timeout: float = 10) -> tuple[int, str, float]:
    """POST body to url; (status, body, seconds taken)."""
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.perf_counter() - started
