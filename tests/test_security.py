"""Attacks from the red-team pass (issue #11): each one replayed the way an attacker would send it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bot.config import BotConfig, SlackConfig
from bot.core import BotCore
from bot.feedback import FeedbackStore
from bot.slack_app import build_slack_app, build_web_client, serve_http
from tests.conftest import fast_config
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
        core = build_bot_core(config, kb, FakeAnswerer(), admins=config.slack.admins)
        app = build_slack_app(core, config.slack, build_web_client("xoxb-test", api.base_url), signing_secret=SECRET)
        server = serve_http(app, "127.0.0.1", 0)
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
