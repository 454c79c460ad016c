"""Reading files into documents: pick the loader by suffix and turn every failure into a LoadError."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ingest.config import IngestConfig
from ingest.encoding import decode_bytes, max_bytes_for, read_file_bytes
from ingest.errors import LoadError
from ingest.loaders.pdf import load_pdf
from ingest.loaders.tables import load_csv, load_jsonl
from ingest.loaders.text import load_markdown, load_text
from ingest.loaders.transcripts import load_json_transcript, load_srt, load_vtt
from ingest.loaders.webpage import load_html
from ingest.records import LoadResult

logger = logging.getLogger(__name__)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "load_csv",
    "load_file",
    "load_html",
    "load_json_transcript",
    "load_jsonl",
    "load_markdown",
    "load_pdf",
    "load_srt",
    "load_text",
    "load_vtt",
]

# Loaders that take decoded text and the source; tables also take their `ingest.tables` entry.
_TEXT_LOADERS: dict[str, Callable[[str, str], LoadResult]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".vtt": load_vtt,
    ".srt": load_srt,
    ".json": load_json_transcript,
}
_TABLE_LOADERS = {".csv": load_csv, ".jsonl": load_jsonl}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({*_TEXT_LOADERS, *_TABLE_LOADERS, ".pdf"})


def load_file(path: Path, config: IngestConfig) -> LoadResult:
    """Read one file into documents; a file that cannot be read at all raises LoadError with the reason."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = " ".join(sorted(SUPPORTED_SUFFIXES))
        raise LoadError(f"unsupported file type '{path.suffix or path.name}' (supported: {supported})")
    source = path.resolve().as_posix()
    data = read_file_bytes(path, max_bytes_for(config.max_file_mb))
    try:
        if suffix == ".pdf":
            return load_pdf(data, source)
        text = decode_bytes(data, path.name)
        if suffix in _TABLE_LOADERS:
            return _TABLE_LOADERS[suffix](text, source, config.table_for(path.name))
        return _TEXT_LOADERS[suffix](text, source)
    except LoadError:
        raise
    except RecursionError:  # HTML or JSON nested thousands of levels deep: a reason, not a traceback
        raise LoadError(f"could not read this {suffix} file: it is nested too deeply (thousands of levels)") from None
    except Exception as exc:
        # A parser bug or a file shape nobody foresaw: one file's failure must not end the run.
        # The traceback goes to the log so the bug can still be found and fixed.
        logger.warning("unexpected error reading %s", source, exc_info=True)
        raise LoadError(f"could not read this {suffix} file ({type(exc).__name__}: {exc})") from exc
