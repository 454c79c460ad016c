"""PDF files: one section per page that has a text layer."""

from __future__ import annotations

import io
import logging
import re

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from ingest.errors import LoadError
from ingest.loaders._shared import number_ranges, stem_of
from ingest.records import Document, LoadResult, Section
from rag.records import Locator

logger = logging.getLogger(__name__)

_BLANK_RUNS = re.compile(r"\n{3,}")


def load_pdf(data: bytes, source: str) -> LoadResult:
    """A PDF as one section per page with text; encrypted, broken and text-less PDFs are refused."""
    reader = _open(data)
    warnings: list[str] = []
    sections: list[Section] = []
    blank: list[int] = []
    try:
        pages = list(reader.pages)
    except Exception as exc:  # pypdf raises many kinds on a damaged page tree
        raise LoadError(f"broken PDF: cannot read its pages ({_describe(exc)})") from exc
    if not pages:
        raise LoadError("broken PDF: it has no pages")
    for number, page in enumerate(pages, start=1):
        try:
            text = _clean(page.extract_text() or "")
        except Exception as exc:  # one damaged page should not cost the others
            logger.debug("page %d of %s failed", number, source, exc_info=True)
            warnings.append(f"page {number}: text could not be extracted ({_describe(exc)}), skipped")
            continue
        if text:
            sections.append(Section(text, Locator(page=number)))
        else:
            blank.append(number)
    if not sections:
        if len(blank) == len(pages):
            raise LoadError("PDF has no text layer (scanned? run OCR first)")
        raise LoadError(f"broken PDF: no page could be read ({warnings[0]})")
    if blank:
        label = "page" if len(blank) == 1 else "pages"
        warnings.append(f"{label} {number_ranges(blank)}: no text layer (scanned? run OCR first), skipped")
    doc = Document(source=source, kind="pdf", sections=tuple(sections), title=_title(reader) or stem_of(source))
    return LoadResult(documents=(doc,), warnings=tuple(warnings))


def _open(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # PdfReadError mostly, but malformed files raise ValueError, KeyError, ...
        raise LoadError(f"broken PDF: {_describe(exc)}") from exc
    if not reader.is_encrypted:
        return reader
    # Many "protected" PDFs only restrict printing or copying and open with an empty password.
    try:
        opened = reader.decrypt("")
    except DependencyError as exc:
        raise LoadError("encrypted PDF (AES): install the 'cryptography' package to open it") from exc
    except Exception as exc:
        raise LoadError(f"encrypted PDF: cannot decrypt it ({_describe(exc)})") from exc
    if opened == PasswordType.NOT_DECRYPTED:
        raise LoadError("encrypted PDF: it needs a password; save an unprotected copy to ingest it")
    return reader


def _title(reader: PdfReader) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary is no reason to drop the text
        logger.debug("unreadable PDF metadata", exc_info=True)
        return None
    if not title:
        return None
    return " ".join(str(title).split()) or None


def _clean(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _describe(exc: Exception) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
