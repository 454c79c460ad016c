"""Errors of the ingest pipeline."""

from rag.errors import RagError


class IngestError(RagError):
    """Base class for ingest errors a user can act on."""


class LoadError(IngestError):
    """A file could not be read; the message is the reason shown in the ingest report."""


class IngestBusyError(IngestError):
    """Another ingest is already running on this data directory."""


class EmptySourceError(LoadError):
    """A file holds no text at all; a previously ingested one has been emptied."""


class TransferError(IngestError):
    """An export cannot be written, or an export cannot be imported as it is."""
