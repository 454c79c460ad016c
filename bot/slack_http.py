"""Slack HTTP mode: Bolt's own WSGI adapter behind a guard, served by waitress.

Why this shape: the hand-rolled `BaseHTTPRequestHandler` read whatever `Content-Length` promised
(a 400 MB unsigned POST cost 540 MB of RSS), parsed the body before the signature was known
(non-JSON: no response and a traceback; `X-Slack-Request-Timestamp: abc`: 500) and gave each
connection a thread for as long as the client dawdled. Now:

- `guard_slack_requests` is a plain WSGI middleware in front of Bolt's `SlackRequestHandler`:
  it refuses an oversized `Content-Length` with 413 before reading a byte of the body, checks
  the timestamp and the v0 signature before anything parses the body, and answers malformed
  input with 400/401 and one log line, never a traceback. Being WSGI, the same callable runs
  under any WSGI server: several worker processes (e.g. gunicorn) later need nothing new here.
- waitress (Pylons; pure Python, no C build) reads requests on its event loop and hands a
  worker thread only a complete request, so a slow client never holds a worker; it refuses an
  over-long body at header time (`max_request_body_size`) and drops idle connections
  (`channel_timeout`). `_DeadlineServer` adds what waitress lacks: a whole request that is not
  received within `read_timeout_s` (a client trickling a byte a second) is disconnected.
- Several worker processes (`ragbot serve slack --mode http --workers N`, bot/serve.py): the
  supervisor binds the port once and each worker runs its own waitress, guard and deadline
  on that inherited listening socket (the kernel hands each connection to one of them), so
  every protection above holds per worker.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_SKEW_S = 300  # Slack's own rule: a request more than 5 minutes old is a replay

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def _respond(start_response, status: str, text: str) -> list[bytes]:
    data = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


def _body_problem(raw: bytes, content_type: str) -> str | None:
    """Why a signed body cannot be a Slack payload (None when it can)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    try:
        if content_type.startswith("application/json"):
            return None if isinstance(json.loads(text or "{}"), dict) else "JSON body is not an object"
        form = parse_qs(text, strict_parsing=False)
        if "payload" in form:
            return None if isinstance(json.loads(form["payload"][0]), dict) else "payload is not a JSON object"
    except (ValueError, RecursionError):
        return "body is not valid JSON"
    return None


def guard_slack_requests(
    app: WSGIApp, signing_secret: str, max_body_bytes: int, clock: Callable[[], float] = time.time
) -> WSGIApp:
    """A WSGI app that lets only well-formed, signed, fresh, small requests reach app.

    413 for a body over max_body_bytes (unread), 401 for a missing, stale or wrong signature,
    400 for a malformed header or body; each refusal is one log line without a traceback.
    """
    verifier = SignatureVerifier(signing_secret)

    def refuse(environ, start_response, status: str, why: str) -> list[bytes]:
        logger.warning("refused %s %s from %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                       environ.get("REMOTE_ADDR", "?"), why)
        return _respond(start_response, status, why)

    def guarded(environ: dict, start_response) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            return _respond(start_response, "200 OK", "ok")
        if path != EVENTS_PATH:
            return _respond(start_response, "404 Not Found", "not found")
        if method != "POST":
            return _respond(start_response, "405 Method Not Allowed", "POST only")
        length_header = environ.get("CONTENT_LENGTH") or ""
        if not length_header.isdigit():
            return refuse(environ, start_response, "411 Length Required", "a Content-Length header is required")
        length = int(length_header)
        if length > max_body_bytes:
            return refuse(environ, start_response, "413 Content Too Large", f"body of {length} bytes is over the {max_body_bytes}-byte limit")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not timestamp or not signature:
            return refuse(environ, start_response, "401 Unauthorized", "missing X-Slack-Request-Timestamp or X-Slack-Signature")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return refuse(environ, start_response, "400 Bad Request", "X-Slack-Request-Timestamp is not a number")
        if abs(clock() - int(timestamp)) > MAX_SKEW_S:
            return refuse(environ, start_response, "401 Unauthorized", "stale X-Slack-Request-Timestamp (a replay?)")
        raw = environ["wsgi.input"].read(length)
        if len(raw) != length:
            return refuse(environ, start_response, "400 Bad Request", "body shorter than its Content-Length")
        if not verifier.is_valid(raw, timestamp, signature):
            return refuse(environ, start_response, "401 Unauthorized", "invalid signature")
        problem = _body_problem(raw, environ.get("CONTENT_TYPE", ""))
        if problem:
            return refuse(environ, start_response, "400 Bad Request", problem)
        environ["wsgi.input"] = io.BytesIO(raw)  # Bolt reads the body again
        return app(environ, start_response)

    return guarded


def build_slack_wsgi(app: App, signing_secret: str, max_body_bytes: int) -> WSGIApp:
    """The WSGI callable for Slack HTTP mode: the guard in front of Bolt's own WSGI adapter."""
    return guard_slack_requests(SlackRequestHandler(app, path=EVENTS_PATH), signing_secret, max_body_bytes)


class _DeadlineChannel(HTTPChannel):
    """A waitress connection that remembers when the request it is still receiving began."""

    receiving_since: float | None = None

    def received(self, data):
        if self.request is None and data:
            self.receiving_since = time.monotonic()
        result = super().received(data)
        if self.request is None:  # nothing half-received any more
            self.receiving_since = None
        return result


class _DeadlineServer(TcpWSGIServer):
    channel_class = _DeadlineChannel
    read_timeout_s: float = 10.0

    def maintenance(self, now):
        """Waitress's idle cleanup, plus: close connections whose request is not in after read_timeout_s."""
        super().maintenance(now)
        cutoff = time.monotonic() - self.read_timeout_s
        for channel in list(self.active_channels.values()):
            since = getattr(channel, "receiving_since", None)
            if since is not None and since < cutoff and not channel.requests:
                logger.warning("dropped a client from %s: request not received within %g s", channel.addr[0] if channel.addr else "?", self.read_timeout_s)
                channel.receiving_since = None
                channel.will_close = True


class SlackHTTPServer:
    """The waitress server for Slack HTTP mode; serve_forever() blocks, shutdown() stops it from another thread."""

    def __init__(self, wsgi_app: WSGIApp, host: str, port: int, max_body_bytes: int, read_timeout_s: float, threads: int = 8,
                 sock: socket.socket | None = None):
        adj = Adjustments(
            host=host, port=port, threads=threads,
            max_request_body_size=max_body_bytes + 1,  # waitress refuses >= its limit; ours refuses > max_body_bytes
            max_request_header_size=32 * 1024,
            channel_timeout=max(1, int(read_timeout_s)), cleanup_interval=1, ident="ragbot",
        )
        if sock is None:
            self._server = _DeadlineServer(wsgi_app, map={}, adj=adj)
        else:  # a listening socket shared by several worker processes (bot/serve.py): each accepts from it
            sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
            self._server = _DeadlineServer(wsgi_app, map={}, adj=adj, _sock=sock, bind_socket=False, sockinfo=sockinfo)
        self._server.read_timeout_s = read_timeout_s
        self._stop, self._serving, self._stopped = threading.Event(), threading.Event(), threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        """(host, port) actually bound (port 0 asks for a free one)."""
        return self._server.effective_host, self._server.effective_port

    def serve_forever(self) -> None:
        """Serve until shutdown() (from another thread) or Ctrl-C."""
        self._serving.set()
        try:
            while not self._stop.is_set() and self._server._map:
                wasyncore.loop(timeout=self._server.adj.asyncore_loop_timeout, map=self._server._map, count=1)
        finally:
            self._close()
            self._serving.clear()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving: the loop thread closes the socket, every connection and the worker threads."""
        self._stop.set()
        if self._serving.is_set():
            self._server.pull_trigger()  # wakes the loop out of select()
            self._stopped.wait(10)
        else:
            self._close()

    def server_close(self) -> None:
        """Kept for the shape of socketserver's servers: shutdown() already released everything."""

    def _close(self) -> None:
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._server._map)

def serve_http(
    app: App, host: str, port: int, signing_secret: str, max_body_bytes: int = 1 << 20, read_timeout_s: float = 10.0,
    sock: socket.socket | None = None,
) -> SlackHTTPServer:
    """The Slack HTTP endpoint for app on host:port, or on an inherited listening sock (POST /slack/events, GET /healthz); call serve_forever()."""
    return SlackHTTPServer(build_slack_wsgi(app, signing_secret, max_body_bytes), host, port, max_body_bytes, read_timeout_s, sock=sock)
