"""Test doubles: a scripted chat model, and a loopback OpenAI-compatible HTTP server with faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChat:
    """A ChatModel that replies with queued texts (streamed in small pieces) and records the prompts."""

    description = "fake"

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.calls: list[list[tuple[str, str]]] = []

    def enqueue(self, *replies: str) -> None:
        self.replies.extend(replies)

    def stream(self, messages: Sequence[tuple[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        self.calls.append(list(messages))
        reply = self.replies.pop(0) if self.replies else "The documents do not cover it."
        for i in range(0, len(reply), 3):
            yield reply[i : i + 3]


class FakeOpenAIServer:
    """/v1/chat/completions on 127.0.0.1, answering from a script of behaviours, one per request.

    Behaviours: ("ok", text) or ("ok", text, seconds between streamed pieces), ("hang", seconds), ("status", code, headers), ("malformed",),
    ("empty",), ("stream_malformed",). After the script runs out, the last one repeats.
    """

    def __init__(self, *script):
        self.script = list(script) or [("ok", "Hello [1].")]
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                step = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                server.handle(self, step, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _send(handler, code: int, body: bytes, headers: dict | None = None, ctype="application/json") -> None:
        handler.send_response(code)
        handler.send_header("content-type", ctype)
        handler.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(body)

    def handle(self, handler, step, body) -> None:
        kind = step[0]
        if kind == "hang":
            time.sleep(step[1])
            return
        if kind == "status":
            payload = json.dumps({"error": {"message": "scripted failure", "type": "server_error"}}).encode()
            self._send(handler, step[1], payload, step[2] if len(step) > 2 else None)
            return
        if kind == "malformed":
            self._send(handler, 200, b'{"id": "x", "choices": [ {"mess')
            return
        text = step[1] if kind == "ok" else ""
        if body.get("stream"):
            handler.send_response(200)
            handler.send_header("content-type", "text/event-stream")
            handler.send_header("connection", "close")
            handler.end_headers()
            if kind == "stream_malformed":
                handler.wfile.write(b"data: {not json\n\n")
            else:
                pause = step[2] if kind == "ok" and len(step) > 2 else 0.0
                for i in range(0, len(text), 4):
                    if pause:
                        time.sleep(pause)  # a model writing at its own pace
                    chunk = {
                        "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                        "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}, "finish_reason": None}],
                    }
                    handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    handler.wfile.flush()
                done = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                handler.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            handler.wfile.flush()
            handler.close_connection = True
            return
        reply = {
            "id": "c1", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._send(handler, 200, json.dumps(reply).encode())
