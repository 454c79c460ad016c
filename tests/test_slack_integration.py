"""The Slack bot over the real answer pipeline: sample corpus, bundled models, extractive mode."""

from __future__ import annotations

import pytest

from bot.config import AppConfig
from bot.runtime import build_answerer, build_bot_core, open_ingestor, open_knowledge_base
from bot.state import MemoryState
from bot.slack_app import build_slack_app, build_web_client
from bot.slack_http import serve_http
from tests.conftest import SAMPLES
from tests.slack_fakes import SECRET, FakeSlackAPI, event_body, post, signed_headers

pytestmark = pytest.mark.integration


def test_mention_answered_from_the_sample_corpus_with_sources(tmp_path, monkeypatch):
    import threading

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = AppConfig(data_dir=str(tmp_path / "data"), slack={"stream_interval_s": 0})
    api = FakeSlackAPI()
    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            ingestor.run([SAMPLES])
        core = build_bot_core(config, kb, build_answerer(config, kb, model=None), MemoryState())
        app = build_slack_app(core, config.slack, build_web_client("xoxb-test", api.base_url), signing_secret=SECRET)
        server = serve_http(app, "127.0.0.1", 0, signing_secret=SECRET)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
            event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> Who can run /ragbot-ingest?", "ts": "1.1", "channel": "C1"}
            body = event_body(event, "EvReal")
            assert post(url, body, signed_headers(body))[0] == 200
            # posted at once after the thread status (an extractive answer is complete when it is written)
            [final] = api.wait_for("chat.postMessage", 1, timeout=120, where=lambda p: "blocks" in p)
            assert [m for m, _ in api.calls if m != "auth.test"] == ["assistant.threads.setStatus", "chat.postMessage"]
        finally:
            server.shutdown()
            server.server_close()
            core.close()
            api.close()
    text = "\n".join(b["text"]["text"] for b in final["blocks"] if b["type"] == "section")
    assert "*Sources*" in text and "[1]" in text
    # Slack's own feedback buttons (the workspace takes them)
    assert any(b["type"] == "context_actions" and b["elements"][0]["type"] == "feedback_buttons" for b in final["blocks"])
