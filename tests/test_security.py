"""Attacks from the red-team pass (issue #11): each one replayed the way an attacker would send it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bot.config import BotConfig, SlackConfig
from bot.core import BotCore
from bot.state import MemoryState
from bot.slack_app import build_slack_app, build_web_client
from bot.slack_http import serve_http
from tests.conftest import FAST_SPACES, fast_config
from tests.slack_fakes import SECRET, FakeSlackAPI, command_body, post, signed_headers
from tests.test_slack import FakeAnswerer, Harness


# -- 1. chat-triggered ingest stays inside the configured roots ----------------------------------
@pytest.fixture
def host(tmp_path, monkeypatch):
    """A bot host: docs/ (the root), outside/ (secrets beside it), a HOME with .ssh, and the bot's cwd at tmp_path."""
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "guide.md").write_text("# Guide\n\nRagbot answers from your documents.\n", encoding="utf-8")
    (docs / "sub" / "faq.md").write_text("# FAQ\n\nAdmins re-ingest with a slash command.\n", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret-notes.md").write_text("# Secret\n\nThe payroll export password is hunter2.\n", encoding="utf-8")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "notes.md").write_text("# keys\n\nprivate key notes\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (docs / "escape").symlink_to(outside, target_is_directory=True)  # a link inside the root leading out of it
    (docs / "secret-link.md").symlink_to(outside / "secret-notes.md")
    return tmp_path


ESCAPES = ["/etc", "~/.ssh", "docs/../outside", "docs/escape", "docs/secret-link.md", "docs/escape/secret-notes.md"]


def _recording_ingest(ran):
    def run_ingest(paths, roots=None):
        ran.append((paths, roots))
        from ingest.pipeline import IngestReport

        return IngestReport()

    return run_ingest


@pytest.mark.parametrize("path", ESCAPES)
def test_slack_admin_cannot_ingest_outside_the_roots(host, path):
    ran = []
    h = Harness(host, run_ingest=_recording_ingest(ran), bot=BotConfig(ingest_paths=["docs"]))
    try:
        status, body, _ = h.command("/ragbot-ingest", path, user="UADMIN")
    finally:
        h.close()
    assert status == 200
    assert "Refused" in body and "outside the folders chat commands may re-ingest" in body
    assert (host / "docs").resolve().as_posix() in body  # names the allowed root
    assert ran == []


def test_slack_admin_ingest_inside_the_roots_runs_confined(host):
    ran = []
    h = Harness(host, run_ingest=_recording_ingest(ran), bot=BotConfig(ingest_paths=["docs"]))
    try:
        status, body, _ = h.command("/ragbot-ingest", "docs/sub ./docs/../docs/guide.md", user="UADMIN")
        assert "started" in body
        h.api.wait_for("chat.postMessage", 1, where=lambda p: "finished" in p.get("text", ""))
    finally:
        h.close()
    root = (host / "docs").resolve().as_posix()
    assert ran == [([f"{root}/sub", f"{root}/guide.md"], [root])]


def test_without_roots_chat_cannot_ingest_explicit_paths(host):
    ran = []
    h = Harness(host, run_ingest=_recording_ingest(ran), bot=BotConfig())
    try:
        _, body, _ = h.command("/ragbot-ingest", "docs", user="UADMIN")
        _, bare, _ = h.command("/ragbot-ingest", "", user="UADMIN")
    finally:
        h.close()
    assert "`bot.ingest_paths`" in body and "empty" in body
    assert "empty" in bare
    assert ran == []


@pytest.mark.parametrize("path", ["/etc", "~/.ssh", "docs/../outside"])
def test_discord_admin_cannot_ingest_outside_the_roots(host, path):
    from tests.test_discord import ADMIN, FOLLOWUP, drive
    from tests.discord_fakes import interaction_payload

    ran = []

    async def scenario(h):
        h.interaction(interaction_payload("ragbot-ingest", {"paths": path}, user=ADMIN))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if h.at(FOLLOWUP):
                break

    h = drive(host, scenario, run_ingest=_recording_ingest(ran), bot=BotConfig(ingest_paths=["docs"]))
    texts = [c.content for c in h.at(FOLLOWUP)]
    assert ran == []
    assert any("outside the folders chat commands may re-ingest" in t and "docs" in t for t in texts)


def test_chat_ingest_walk_follows_no_symlink_out_of_the_root_while_the_cli_does(host):
    """Real ingest through a signed Slack command: the root's own files go in, the linked secrets do not."""
    from bot.runtime import build_bot_core, open_ingestor, open_knowledge_base

    config = fast_config(host / "data", bot={"ingest_paths": ["docs"]}, slack={"admins": ["UADMIN"], "stream_interval_s": 0})
    api = FakeSlackAPI()
    with open_knowledge_base(config) as kb:
        core = build_bot_core(config, kb, FakeAnswerer(), MemoryState(), admins=config.slack.admins)
        app = build_slack_app(core, config.slack, build_web_client("xoxb-test", api.base_url), signing_secret=SECRET)
        server = serve_http(app, "127.0.0.1", 0, signing_secret=SECRET)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
            body = command_body("/ragbot-ingest", "", user="UADMIN")
            status, text, _ = post(url, body, signed_headers(body, content_type="application/x-www-form-urlencoded"))
            assert status == 200 and "started" in text
            [summary] = api.wait_for("chat.postMessage", 1, where=lambda p: "finished" in p.get("text", ""))
        finally:
            server.shutdown()
            server.server_close()
            core.close()
            api.close()
        assert "2 added" in summary["text"]
        assert all("hunter2" not in p.text for p in kb.search("payroll export password hunter2", k=3))
        assert "not followed: outside the ingest roots" in summary["text"]
        # the host's owner, on the command line, may follow the links on purpose
        with open_ingestor(config, kb) as ingestor:
            report = ingestor.run([host / "docs"])
        assert report.added == 2 and any("hunter2" in p.text for p in kb.search("payroll export password hunter2", k=3))


# -- 4. a symlinked file is a source under the root it was found in ---------------------------------
def test_removing_a_link_to_an_outside_file_removes_its_chunks(tmp_path):
    from bot.runtime import open_ingestor, open_knowledge_base

    docs, elsewhere = tmp_path / "docs", tmp_path / "elsewhere"
    docs.mkdir()
    elsewhere.mkdir()
    (docs / "handbook.md").write_text("# Handbook\n\nMeeting rooms are booked in the lobby.\n", encoding="utf-8")
    (elsewhere / "payroll.md").write_text("# Payroll\n\nThe payroll export runs on the first Monday.\n", encoding="utf-8")
    (docs / "link.md").symlink_to(elsewhere / "payroll.md")
    config = fast_config(tmp_path / "data")
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        first = ingestor.run([docs])
        assert first.added == 2
        assert any("payroll export" in p.text for p in kb.search("payroll export", k=3))
        (docs / "link.md").unlink()
        second = ingestor.run([docs])
        assert second.deleted == 1
        assert all("payroll export" not in p.text for p in kb.search("payroll export", k=3))


def test_symlink_loops_and_dangling_links_are_reported(tmp_path):
    from bot.runtime import open_ingestor, open_knowledge_base

    docs = tmp_path / "docs"
    (docs / "a").mkdir(parents=True)
    (docs / "a" / "note.md").write_text("# Note\n\nA note.\n", encoding="utf-8")
    (docs / "a" / "loop").symlink_to(docs, target_is_directory=True)
    (docs / "gone.md").symlink_to(tmp_path / "missing.md")
    config = fast_config(tmp_path / "data")
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        report = ingestor.run([docs])
    assert report.added == 1
    warnings = {w.source.rsplit("/", 2)[-2] + "/" + w.source.rsplit("/", 1)[-1]: w.reason for w in report.warnings}
    assert "symlink loop" in warnings["a/loop"]
    assert "does not exist" in warnings["docs/gone.md"]


# -- 3. the Slack HTTP endpoint does no work for strangers --------------------------------------------
def _raw_request(port: int, head: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send head + body on a plain socket and read what comes back until the server closes or stops."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in b"".join(chunks):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def test_huge_unsigned_post_is_refused_413_without_reading_the_body(slack_server):
    port = slack_server.port
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 400000000\r\n\r\n"
    )
    reply = _raw_request(port, head, b"{" + b" " * 65535)  # 64 KiB of the promised 400 MB, then silence
    assert reply.startswith(b"HTTP/1.1 413")


def test_guard_answers_413_unread_under_any_wsgi_server():
    """The guard itself (as under a multi-process WSGI server with no body limit of its own) never reads a big body."""
    from bot.slack_http import guard_slack_requests

    class Untouchable:
        def read(self, *args):
            raise AssertionError("the body was read")

    statuses = []
    app = guard_slack_requests(lambda e, s: [b""], SECRET, max_body_bytes=1 << 20)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "CONTENT_LENGTH": "400000000", "wsgi.input": Untouchable()}
    app(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["413 Content Too Large"]


@pytest.mark.parametrize(
    "case",
    ["not-json", "timestamp-abc", "unsigned", "json-array"],
)
def test_malformed_requests_get_4xx_and_one_log_line_without_traceback(slack_server, caplog, case):
    import logging
    import time as _time

    caplog.set_level(logging.DEBUG)
    body = "this is not json" if case == "not-json" else ("[1, 2]" if case == "json-array" else '{"type": "event_callback"}')
    headers = signed_headers(body)
    if case == "timestamp-abc":
        headers["X-Slack-Request-Timestamp"] = "abc"
    if case == "unsigned":
        headers.pop("X-Slack-Signature")
    status, _, _ = post(slack_server.url, body, headers)
    _time.sleep(0.2)
    assert status == {"not-json": 400, "timestamp-abc": 400, "unsigned": 401, "json-array": 400}[case]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    refusals = [r for r in caplog.records if r.name == "bot.slack_http"]
    assert len(refusals) == 1 and "refused POST /slack/events" in refusals[0].getMessage()
    assert "Traceback" not in caplog.text
    assert slack_server.answerer.calls == []


def test_a_slow_client_holds_no_worker_and_is_dropped(tmp_path):
    """One worker thread: a client trickling its headers neither blocks a signed request nor stays forever."""
    import socket
    import time as _time

    h = SlackServer(tmp_path, read_timeout_s=1.0, threads=1)
    try:
        slow = socket.create_connection(("127.0.0.1", h.port), timeout=15)
        slow.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n")
        body = '{"type": "url_verification", "challenge": "still-serving", "token": "legacy"}'
        status, text, _ = post(h.url, body, signed_headers(body))
        assert status == 200 and "still-serving" in text  # answered while the slow client is still sending
        closed = False
        deadline = _time.monotonic() + 10
        while _time.monotonic() < deadline and not closed:
            try:
                slow.sendall(b"X")
                slow.settimeout(0.5)
                closed = slow.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
        slow.close()
        assert closed, "the slow client was never disconnected"
    finally:
        h.close()


def test_http_mode_listens_on_loopback_by_default_and_has_a_host_option():
    from click.testing import CliRunner

    from bot.cli import cli

    assert SlackConfig().host == "127.0.0.1"
    result = CliRunner().invoke(cli, ["serve", "slack", "--help"])
    assert "--host" in result.output and "127.0.0.1" in result.output


class SlackServer:
    """The real HTTP endpoint (guard, Bolt's WSGI adapter, waitress) over a core with a fake answerer."""

    def __init__(self, tmp_path, read_timeout_s: float = 10.0, threads: int = 4):
        from bot.slack_http import SlackHTTPServer, build_slack_wsgi

        self.api = FakeSlackAPI()
        self.answerer = FakeAnswerer()
        slack = SlackConfig(admins=["UADMIN"], stream_interval_s=0)
        self.core = BotCore(self.answerer, BotConfig(), MemoryState(), status=lambda: {"sources": 3, "chunks": 42, "spaces": []})
        app = build_slack_app(self.core, slack, build_web_client("xoxb-test", self.api.base_url), signing_secret=SECRET)
        self.server = SlackHTTPServer(build_slack_wsgi(app, SECRET, 1 << 20), "127.0.0.1", 0, 1 << 20, read_timeout_s, threads=threads)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/slack/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.core.close()
        self.api.close()


@pytest.fixture
def slack_server(tmp_path):
    server = SlackServer(tmp_path)
    yield server
    server.close()


# -- 7. one /ragbot-status policy, in the core ------------------------------------------------------
@pytest.mark.parametrize("status_for", ["admins", "everyone"])
def test_status_policy_is_the_same_on_slack_and_discord(tmp_path, status_for):
    from tests.discord_fakes import interaction_payload
    from tests.test_discord import FOLLOWUP, drive

    bot = BotConfig(status_for=status_for)
    h = Harness(tmp_path, bot=bot)
    try:
        _, slack_member, _ = h.command("/ragbot-status", "", user="U1")
        _, slack_admin, _ = h.command("/ragbot-status", "", user="UADMIN")
    finally:
        h.close()

    async def scenario(d):
        d.interaction(interaction_payload("ragbot-status", user=8))

    d = drive(tmp_path, scenario, bot=bot)
    [discord_member] = [c.content for c in d.at(FOLLOWUP)]
    assert "42 chunk(s)" in slack_admin
    if status_for == "admins":
        assert "Only ragbot admins" in slack_member and "Only ragbot admins" in discord_member
        assert "42 chunk(s)" not in slack_member + discord_member
    else:
        assert "42 chunk(s)" in slack_member and "42 chunk(s)" in discord_member


# -- 8. secrets: read once from the variable the config names, never shown ---------------------------
LLM_SECRET = "sk-team-" + "s3cr3t" * 6


def test_secret_report_follows_the_config_and_secrets_never_show(tmp_path, monkeypatch, caplog, capsys):
    import logging

    from bot.cli import main
    from bot.config import load_config, secrets_status
    from rag.errors import LLMError
    from rag.llm import OpenAIChat
    from tests.fakes import FakeOpenAIServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TEAM_LLM_KEY", LLM_SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret-token")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"data_dir: {tmp_path / 'data'}\nllm:\n  api_key_env: TEAM_LLM_KEY\n", encoding="utf-8")
    config, _ = load_config(str(config_file))

    report = secrets_status(config)
    assert report["TEAM_LLM_KEY"].startswith("set (hidden)") and "llm.api_key_env" in report["TEAM_LLM_KEY"]
    assert "OPENAI_API_KEY" not in report  # nothing in this config reads it
    assert report["SLACK_BOT_TOKEN"].startswith("set (hidden)") and report["DISCORD_TOKEN"].startswith("not set")
    assert config.llm.resolved() == ("openai", "TEAM_LLM_KEY is set")

    shown = repr(config) + str(config) + config.model_dump_json() + repr(config.llm.secret("api_key"))
    assert LLM_SECRET not in shown and "xoxb-very-secret-token" not in shown

    caplog.set_level(logging.DEBUG)
    assert main(["--config", str(config_file), "--debug", "config"]) == 0
    out = capsys.readouterr()
    assert "TEAM_LLM_KEY: set (hidden)" in out.out
    with FakeOpenAIServer(("status", 401)) as server:
        chat = OpenAIChat(config.llm.model_copy(update={"base_url": server.base_url, "timeout_s": 5, "max_retries": 0}))
        with pytest.raises(LLMError) as failure:
            list(chat.stream([("user", "hi?")]))
    everything = out.out + out.err + caplog.text + str(failure.value) + repr(failure.value)
    assert LLM_SECRET not in everything and "xoxb-very-secret-token" not in everything

    # a secret pasted into config.yaml is refused without being echoed
    config_file.write_text(f"llm:\n  api_key: {LLM_SECRET}\n", encoding="utf-8")
    assert main(["--config", str(config_file), "config"]) == 1
    err = capsys.readouterr().err
    assert "llm.api_key: unknown key" in err and LLM_SECRET not in err


# -- 2. a document does not decide which links users click ------------------------------------------
PHISH = "https://evil.example/phish?login=1"


@pytest.fixture
def planted(tmp_path):
    """Documents whose metadata points at a phishing page: HTML canonical, CSV and JSONL url columns."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "reset.html").write_text(
        f'<html><head><title>Password reset</title><link rel="canonical" href="{PHISH}"></head>'
        "<body><h1>Password reset</h1><p>To reset your password, open the password reset page and sign in.</p></body></html>",
        encoding="utf-8",
    )
    (docs / "kb.csv").write_text(f"title,text,url\nReset,To reset your password use the password reset page.,{PHISH}\n", encoding="utf-8")
    (docs / "kb.jsonl").write_text(
        '{"title": "Reset", "text": "Password reset: use the password reset page.", "url": "%s"}\n' % PHISH, encoding="utf-8"
    )
    (docs / "wiki.html").write_text(
        '<html><head><title>Wiki reset</title><link rel="canonical" href="https://wiki.example.com/reset"></head>'
        "<body><p>The wiki explains the password reset page too.</p></body></html>",
        encoding="utf-8",
    )
    return docs


def _answer_from(config, docs, model):
    from bot.runtime import build_answerer, open_ingestor, open_knowledge_base

    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            ingestor.run([docs])
        return build_answerer(config, kb, model=model).answer("How do I reset my password with the password reset page?")


def test_document_urls_are_never_clickable_unless_the_operator_vouches(tmp_path, planted):
    import json

    from bot.core import Reply
    from bot.discord_format import reply_payloads
    from bot.slack_format import reply_messages
    from tests.fakes import FakeChat

    # the model repeats what the documents claim, as a prompt-injected page would make it do
    model = FakeChat(f"Open {PHISH} and sign in [1][2][3]. The wiki has it at https://wiki.example.com/reset [4].")
    config = fast_config(
        tmp_path / "data",
        answer={"trusted_urls": ["https://wiki.example.com"], "k": 8},
        embedding={**FAST_SPACES["embedding"], "spaces": {n: {**c, "min_score": -1.0} for n, c in FAST_SPACES["embedding"]["spaces"].items()}},
    )
    answer = _answer_from(config, planted, model)
    by_source = {Path(c.source).name: c for c in answer.citations}
    assert {"reset.html", "kb.csv", "kb.jsonl", "wiki.html"} <= set(by_source), answer.citations
    for name in ("reset.html", "kb.csv", "kb.jsonl"):
        assert by_source[name].url is None and by_source[name].unverified_url == PHISH
    assert by_source["wiki.html"].url == "https://wiki.example.com/reset"  # vouched for: a link
    assert PHISH not in answer.text and "hxxps://evil[.]example/phish" in answer.text
    assert "https://wiki.example.com/reset" in answer.text

    reply = Reply(answer.text, answer.citations)
    for shown in (json.dumps(reply_messages(reply)), json.dumps(reply_payloads(reply), default=str)):
        assert "evil.example" not in shown  # neither a link nor auto-linkable text
        assert "hxxps://evil[.]example/phish" in shown  # but visible, inert
        assert "https://wiki.example.com/reset" in shown


def test_trusted_prefix_is_not_fooled_by_a_lookalike_host():
    from rag.citations import is_trusted_url

    trusted = ["https://wiki.example.com"]
    assert is_trusted_url("https://wiki.example.com/reset", trusted)
    assert not is_trusted_url("https://wiki.example.com.evil.io/reset", trusted)
    assert not is_trusted_url("https://evil.example/?https://wiki.example.com/", trusted)
    assert not is_trusted_url("javascript:alert(1)", ["javascript:"])


# -- 6. bad input that is costly or confusing ---------------------------------------------------------
def test_a_huge_one_line_text_is_split_in_bounded_windows_losing_nothing(monkeypatch):
    import ingest.chunking as chunking

    seen = []

    class Recording(chunking._Splitter):
        def __init__(self, text, *args):
            seen.append(len(text))
            super().__init__(text, *args)

    monkeypatch.setattr(chunking, "_Splitter", Recording)
    words = ("budget", "meeting", "room", "policy", "report", "ingest")
    text = " ".join(words[i % 6] + str(i % 97) for i in range(60_000)) + " " + "x" * 120_000  # one line, and a 120k-char "word"
    pieces = chunking.split_text(text, 200, 0)
    assert seen and max(seen) <= chunking.WINDOW_CHARS  # the splitter never holds the whole text
    enc = chunking.get_encoding("cl100k_base")
    assert all(len(enc.encode(p, disallowed_special=())) <= 200 for p in pieces)
    assert "".join("".join(p.split()) for p in pieces) == "".join(text.split())  # nothing but whitespace lost


def _fast_config_file(tmp_path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'data'}\nembedding:\n  spaces:\n    en: {{provider: hashing, model: hash-en}}\n"
        "    ja: {provider: hashing, model: hash-ja}\n",
        encoding="utf-8",
    )
    return path


def test_a_file_name_cannot_forge_a_line_of_the_ingest_report(tmp_path, capsys):
    from bot.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text("# Handbook\n\nRooms are booked in the lobby.\n", encoding="utf-8")
    (docs / "x\n  handbook.md: OK (nothing failed).md").write_text("", encoding="utf-8")
    (docs / "y\x1b[2Kbad.md").write_text("", encoding="utf-8")
    assert main(["--config", str(_fast_config_file(tmp_path)), "ingest", str(docs)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert not any(line.lstrip().startswith("handbook.md: OK") for line in lines)
    assert any("x\\n  handbook.md: OK (nothing failed).md: empty file" in line for line in lines)
    assert "\x1b" not in out and "y\\x1b[2Kbad.md" in out


def test_deeply_nested_html_and_json_give_one_line_reasons_not_tracebacks(tmp_path, capsys, caplog):
    import logging

    from bot.cli import main

    caplog.set_level(logging.DEBUG)
    docs = tmp_path / "docs"
    docs.mkdir()
    n = 100_000
    (docs / "deep.html").write_text("<html><body>" + "<div>" * n + "hi" + "</div>" * n + "</body></html>", encoding="utf-8")
    (docs / "deep.json").write_text('{"segments": ' + "[" * n + "]" * n + "}", encoding="utf-8")
    (docs / "deep.jsonl").write_text('{"text": ' + "[" * n + "]" * n + "}\n", encoding="utf-8")
    assert main(["--config", str(_fast_config_file(tmp_path)), "ingest", str(docs)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out + caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    reasons = [line for line in captured.out.splitlines() if "nested too deeply" in line]
    assert len(reasons) == 3


# -- 5. a store lost mid-ingest ----------------------------------------------------------------------------
def test_store_lost_mid_ingest_leaves_at_most_one_source_doubled(tmp_path):
    """Edited sources are written and cleaned one by one: a store lost after a write doubles only that source."""
    from bot.runtime import open_ingestor, open_knowledge_base
    from rag.errors import StoreUnavailableError
    from rag.knowledge import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"doc{i}.md").write_text(f"# Doc {i}\n\nVersion one of document {i}: rooms are booked in the lobby.\n", encoding="utf-8")
    config = fast_config(tmp_path / "data")
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        ingestor.run([docs])
        for i in range(3):
            (docs / f"doc{i}.md").write_text(f"# Doc {i}\n\nVersion two of document {i}: rooms are booked online.\n", encoding="utf-8")
        original = KnowledgeBase.delete

        def lost(self, space, ids):
            if list(ids):
                raise StoreUnavailableError("Lost the Chroma server")
            return original(self, space, ids)

        KnowledgeBase.delete = lost
        try:
            with pytest.raises(StoreUnavailableError):
                ingestor.run([docs])
        finally:
            KnowledgeBase.delete = original
        texts = [t for space in config.embedding.spaces for _, page in kb.store.texts(space) for t in page]
    doubled = [i for i in range(3) if any(f"one of document {i}" in t for t in texts) and any(f"two of document {i}" in t for t in texts)]
    assert len(doubled) <= 1, texts


@pytest.mark.integration
def test_chroma_server_lost_mid_ingest_is_one_line_naming_the_server(tmp_path):
    import shutil
    import subprocess
    import sys

    from bot.runtime import open_ingestor, open_knowledge_base
    from rag.errors import StoreUnavailableError
    from tests.conftest import free_port, stop_process, wait_until_serving

    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "srv"), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nRooms are booked in the lobby.\n", encoding="utf-8")
    config = fast_config(tmp_path / "data", store={"mode": "server", "host": "127.0.0.1", "port": port})
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, tmp_path / "chroma.log", "chroma run", log)
        with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
            assert ingestor.run([docs]).added == 1
            (docs / "a.md").write_text("# A\n\nRooms are booked online now.\n", encoding="utf-8")
            stop_process(proc)  # the server goes away between two runs of a long-lived process
            with pytest.raises(StoreUnavailableError) as lost:
                ingestor.run([docs])
    finally:
        stop_process(proc, log)
    message = str(lost.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message and "chroma run" in message


def test_a_file_too_large_to_embed_is_refused_before_any_embedding(tmp_path):
    from bot.runtime import open_ingestor, open_knowledge_base

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one-line.txt").write_text(" ".join(f"word{i % 500}" for i in range(20_000)), encoding="utf-8")  # ~40k tokens, no newline
    (docs / "small.md").write_text("# Small\n\nA short note.\n", encoding="utf-8")
    config = fast_config(tmp_path / "data", ingest={"max_chunks_per_file": 50})
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        report = ingestor.run([docs])
    assert report.added == 1 and report.chunks == 1  # only the small file went in
    [failure] = report.failed
    assert failure.source.endswith("one-line.txt")
    assert "too large to embed" in failure.reason and "ingest.max_chunks_per_file (50)" in failure.reason
