"""Errors of the knowledge base; each message says what went wrong and how to fix it."""


class RagError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(RagError):
    """The configuration is invalid."""


class StoreLockedError(RagError):
    """Another process owns the embedded store."""


class ModelMismatchError(RagError):
    """A collection was built with a different embedding model than the one configured."""


class EmbeddingError(RagError):
    """An embedding provider failed or is misconfigured."""
