"""Errors of the knowledge base; each message says what went wrong and how to fix it."""


class RagError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(RagError):
    """The configuration is invalid."""


class StoreLockedError(RagError):
    """Another process owns the embedded store."""


class StoreUnavailableError(RagError):
    """The Chroma server stopped answering (refused, reset, timed out) in the middle of work."""


class ModelMismatchError(RagError):
    """A collection was built with a different embedding model than the one configured."""


class EmbeddingError(RagError):
    """An embedding provider failed or is misconfigured."""


class LLMError(RagError):
    """The language model could not give an answer; str() is a short message safe to show a user."""

    key = "llm_unavailable"

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__(self.user_message("en"))

    def user_message(self, lang: str = "en") -> str:
        """The message for a user, in the question's language."""
        from rag.messages import text

        return text(self.key, lang, detail=self.detail)


class LLMUnavailableError(LLMError):
    """The LLM server is down, refused, failed (5xx) or did not answer in time."""


class LLMRateLimitedError(LLMError):
    """The LLM server kept answering 429 (or asked us to wait too long)."""

    key = "llm_rate_limited"


class LLMBadReplyError(LLMError):
    """The LLM server answered with something that is not a usable reply."""

    key = "llm_bad_reply"


class QuestionError(RagError):
    """The question cannot be asked as it is (empty, too long)."""
