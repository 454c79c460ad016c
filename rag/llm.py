"""Chat models behind one small interface, with our own deadline and retry limits.

openai-python on its own retries twice, honours Retry-After up to a minute and waits 600 s
by default; a chat user cannot wait that long. Here the client is built with no retries of
its own and a timeout of what is left of *our* deadline, and the few retries we allow
(429 with a short Retry-After, 5xx, a refused connection) happen only before the first
token has reached the caller, so nothing is shown twice and nothing is retried forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from rag.config import LLMConfig
from rag.errors import ConfigError, LLMBadReplyError, LLMError, LLMRateLimitedError, LLMUnavailableError

logger = logging.getLogger(__name__)

Message = tuple[str, str]  # (role, content); role is "system", "user" or "assistant"
OnToken = Callable[[str], None]


class ChatModel(Protocol):
    """What the answerer needs from an LLM: stream a reply to messages."""

    description: str

    def stream(self, messages: Sequence[Message], max_tokens: int | None = None) -> Iterator[str]:
        """Yield text deltas of the reply; raise LLMError subclasses on failure."""
        ...


def complete(model: ChatModel, messages: Sequence[Message], max_tokens: int | None = None) -> str:
    """The whole reply as one string."""
    return "".join(model.stream(messages, max_tokens=max_tokens))


def _retry_after(exc: Exception) -> float | None:
    """Seconds a 429 asks us to wait (Retry-After or retry-after-ms), if it says."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except ValueError:  # an HTTP date: treat as "too long to wait"
        return float("inf")
    return None


class OpenAIChat:
    """langchain-openai's ChatOpenAI for OpenAI or any OpenAI-compatible server (Ollama, vLLM, llama.cpp)."""

    def __init__(self, config: LLMConfig, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._sleep = sleep
        # imported here, not inside the deadline: the first import takes seconds on a slow machine
        import langchain_openai  # noqa: F401

        where = config.base_url or "api.openai.com"
        self.description = f"{config.model} at {where}"
        self._key = config.api_key()
        if not self._key and not config.base_url:
            raise ConfigError(
                f"llm.provider is openai but {config.api_key_env} is not set. "
                f"Export {config.api_key_env}=..., set llm.base_url to an OpenAI-compatible server, "
                "or use llm.provider: extractive."
            )

    def _client(self, timeout: float, max_tokens: int | None):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=self.config.model,
            base_url=self.config.base_url,
            # local servers accept any key; ChatOpenAI insists on one
            api_key=self._key or "not-needed",
            timeout=timeout,
            max_retries=0,
            temperature=self.config.temperature,
            max_tokens=max_tokens or self.config.max_answer_tokens,
        )

    def stream(self, messages: Sequence[Message], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the reply's text deltas within the configured deadline."""
        import openai

        deadline = time.monotonic() + self.config.timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                raise LLMUnavailableError(f"no reply within {self.config.timeout_s:g} s")
            emitted = False
            try:
                client = self._client(remaining, max_tokens)
                got_any = False
                for chunk in client.stream(list(messages)):
                    delta = chunk.content if isinstance(chunk.content, str) else ""
                    if delta:
                        got_any = emitted = True
                        yield delta
                    if time.monotonic() > deadline:
                        raise LLMUnavailableError(f"the reply took longer than {self.config.timeout_s:g} s")
                if not got_any:
                    raise LLMBadReplyError("empty reply")
                return
            except LLMError:
                raise
            except openai.APITimeoutError as exc:
                raise LLMUnavailableError(f"no reply within {self.config.timeout_s:g} s") from exc
            except openai.RateLimitError as exc:
                wait = _retry_after(exc)
                wait = 1.0 if wait is None else wait
                detail = f", asked to wait {wait:g} s" if wait != float("inf") else ""
                fits = wait <= self.config.max_retry_after_s and time.monotonic() + wait < deadline - 0.5
                if emitted or attempt >= self.config.max_retries or not fits:
                    raise LLMRateLimitedError(detail) from exc
                logger.warning("LLM rate limited; retrying in %.1f s", wait)
                self._sleep(wait)
            except (openai.APIConnectionError, openai.InternalServerError) as exc:
                detail = (
                    f"HTTP {exc.status_code}" if isinstance(exc, openai.InternalServerError) else "cannot connect to the server"
                )
                if emitted or attempt >= self.config.max_retries or time.monotonic() + 0.5 >= deadline:
                    raise LLMUnavailableError(detail) from exc
                logger.warning("LLM %s; retrying", detail)
                self._sleep(0.5)
            except openai.APIStatusError as exc:
                # 400/401/404...: retrying will not help; say which
                hint = {401: "the API key was refused", 404: f"model {self.config.model!r} or the URL was not found"}
                raise LLMUnavailableError(hint.get(exc.status_code, f"HTTP {exc.status_code}")) from exc
            except Exception as exc:  # malformed JSON, missing fields: the server's reply is unusable
                logger.warning("unusable LLM reply: %r", exc)
                raise LLMBadReplyError("malformed reply") from exc
            attempt += 1


def build_chat_model(config: LLMConfig) -> ChatModel | None:
    """The configured chat model, or None in extractive mode."""
    provider, why = config.resolved()
    logger.debug("answers: %s (%s)", provider, why)
    if provider == "extractive":
        return None
    return OpenAIChat(config)
