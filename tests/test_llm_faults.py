"""OpenAIChat against a loopback OpenAI-compatible server: the protocol, streaming and every fault."""

from __future__ import annotations

import socket
import threading

import pytest

from rag.config import LLMConfig
from rag.errors import LLMBadReplyError, LLMError, LLMRateLimitedError, LLMUnavailableError
from rag.llm import OpenAIChat, complete
from tests.conftest import free_port
from tests.fakes import FakeOpenAIServer

MESSAGES = [("system", "Answer from passages."), ("user", "Question?")]


def chat_for(base_url: str, **overrides) -> OpenAIChat:
    config = LLMConfig(provider="openai", base_url=base_url, model="local", timeout_s=2, max_retries=1, **overrides)
    return OpenAIChat(config)


def run_bounded(fn, limit: float = 15):
    """Run fn in a thread; fail the test if it has not returned within limit seconds."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the call did not return within {limit} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_streams_deltas_in_order_and_sends_the_prompt():
    with FakeOpenAIServer(("ok", "Re-ingest is incremental [1].")) as server:
        deltas = run_bounded(lambda: list(chat_for(server.base_url).stream(MESSAGES)))
    assert len(deltas) > 1 and "".join(deltas) == "Re-ingest is incremental [1]."
    sent = server.requests[0]
    assert sent["stream"] is True and sent["model"] == "local"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


@pytest.mark.parametrize(
    "script, error, words",
    [
        ([("hang", 6)], LLMUnavailableError, "within 2 s"),
        ([("status", 500)], LLMUnavailableError, "HTTP 500"),
        ([("status", 429, {"retry-after": "30"})], LLMRateLimitedError, "30 s"),
        ([("status", 429, {"retry-after": "0.2"})], LLMRateLimitedError, "rate limited"),
        ([("malformed",)], LLMBadReplyError, "could not be used"),
        ([("stream_malformed",)], LLMBadReplyError, "could not be used"),
        ([("empty",)], LLMBadReplyError, "empty reply"),
        ([("status", 404)], LLMUnavailableError, "not found"),
    ],
    ids=["hang", "500", "429-long-retry-after", "429-persisting", "malformed-json", "malformed-stream", "empty", "404"],
)
def test_each_fault_becomes_a_short_message_within_the_timeout(script, error, words):
    with FakeOpenAIServer(*script) as server:
        with pytest.raises(error) as caught:
            run_bounded(lambda: complete(chat_for(server.base_url), MESSAGES))
    message = str(caught.value)
    assert words in message and "Traceback" not in message and len(message) < 200
    assert len(server.requests) <= 2  # at most one retry, never a loop


def test_server_down_is_reported_and_retried_once_at_most():
    port = free_port()  # nothing listens here
    with pytest.raises(LLMUnavailableError, match="cannot connect"):
        run_bounded(lambda: complete(chat_for(f"http://127.0.0.1:{port}/v1"), MESSAGES))


def test_short_retry_after_is_honoured_then_the_answer_arrives():
    waits: list[float] = []
    with FakeOpenAIServer(("status", 429, {"retry-after": "0.1"}), ("ok", "Fine [1].")) as server:
        model = OpenAIChat(LLMConfig(provider="openai", base_url=server.base_url, timeout_s=5), sleep=waits.append)
        assert run_bounded(lambda: complete(model, MESSAGES)) == "Fine [1]."
    assert waits == [0.1] and len(server.requests) == 2


def test_a_500_then_success_is_retried_once():
    with FakeOpenAIServer(("status", 503), ("ok", "Back [2].")) as server:
        model = OpenAIChat(LLMConfig(provider="openai", base_url=server.base_url, timeout_s=5), sleep=lambda s: None)
        assert run_bounded(lambda: complete(model, MESSAGES)) == "Back [2]."


def test_the_process_lives_on_after_faults():
    with FakeOpenAIServer(("status", 500), ("status", 500), ("ok", "Recovered.")) as server:
        model = OpenAIChat(LLMConfig(provider="openai", base_url=server.base_url, timeout_s=5, max_retries=0))
        with pytest.raises(LLMError):
            complete(model, MESSAGES)
        with pytest.raises(LLMError):
            complete(model, MESSAGES)
        assert complete(model, MESSAGES) == "Recovered."


def test_japanese_user_message_for_a_fault():
    exc = LLMUnavailableError("HTTP 500")
    assert "言語モデル" in exc.user_message("ja") and "HTTP 500" in exc.user_message("ja")


def test_openai_without_key_or_url_says_what_to_set(monkeypatch):
    from rag.errors import ConfigError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIChat(LLMConfig(provider="openai"))
