"""CSV and JSONL files: one document per row, its columns chosen by an `ingest.tables` entry."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from ingest.config import TableConfig
from ingest.errors import EmptySourceError, LoadError
from ingest.loaders._shared import capped, number_ranges, stem_of
from ingest.records import Document, LoadResult, Section
from rag.records import Locator, Scalar

logger = logging.getLogger(__name__)

# Columns with these names are not copied into metadata: the pipeline and the store use the keys.
RESERVED_METADATA = frozenset(
    {"source", "title", "url", "row_id", "kind", "lang", "ordinal", *Locator.__dataclass_fields__}
)
AUTO_TEXT_COLUMNS = ("text", "content", "body", "passage", "abstract", "answer", "description")
_DELIMITERS = ",;\t|"


@dataclass(frozen=True)
class _Columns:
    """The columns that make a row's text, title, id, url and metadata."""

    text: tuple[str, ...]
    title: str | None
    id: str | None
    url: str | None
    metadata: tuple[str, ...]


def load_csv(text: str, source: str, table: TableConfig | None = None) -> LoadResult:
    """A CSV file as one document per data row (delimiter sniffed among , ; tab |)."""
    table = table or TableConfig()
    text = text.lstrip("\n")
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    # Long text cells are the point of a document table; the default 128 KiB cell limit is too small.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader, [])
        names = [name.strip() for name in header]
        if not any(names):
            raise LoadError("CSV has no header row (the first line must name the columns)")
        rows: list[tuple[int, dict[str, Any]]] = []
        for record in reader:
            if not any(value.strip() for value in record):
                continue  # blank line
            row: dict[str, Any] = {}
            for name, value in zip(names, record, strict=False):  # short rows lack trailing cells
                if name and name not in row:  # the first of two same-named columns wins
                    row[name] = value
            rows.append((len(rows) + 1, row))
    except csv.Error as exc:
        raise LoadError(f"malformed CSV at line {reader.line_num}: {exc}") from exc
    columns = list(dict.fromkeys(name for name in names if name))
    return _documents(rows, columns, table, source, [])


def load_jsonl(text: str, source: str, table: TableConfig | None = None) -> LoadResult:
    """A JSON Lines file as one document per object; a row number is its line number."""
    table = table or TableConfig()
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"line {number}: invalid JSON")
            continue
        if not isinstance(value, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        rows.append((number, value))
    if not rows:
        if problems:
            raise LoadError(f"no valid JSON lines ({problems[0]})")
        raise EmptySourceError("empty file (only blank lines)")
    columns = list(dict.fromkeys(key for _, row in rows for key in row))
    return _documents(rows, columns, table, source, capped(problems, "bad lines"))


def sniff_delimiter(header: str) -> str:
    """The candidate delimiter found most often, outside quotes, in the header line (',' if none)."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties go to the earlier, more common one
    return best if counts[best] else ","


def _documents(
    rows: list[tuple[int, dict[str, Any]]], columns: list[str], table: TableConfig, source: str, warnings: list[str]
) -> LoadResult:
    if not rows:
        raise EmptySourceError("no data rows (only a header)")
    chosen = _choose_columns(columns, rows, table, warnings)
    stem = stem_of(source)
    documents: list[Document] = []
    empty: list[int] = []
    for number, row in rows:
        body = "\n".join(part for part in (_as_text(row.get(name)) for name in chosen.text) if part)
        if not body:
            empty.append(number)
            continue
        title = _as_text(row.get(chosen.title)) if chosen.title else ""
        title = " ".join(title.split())
        if title and chosen.title not in chosen.text:
            body = f"{title}\n{body}"  # the title is often the best retrieval key a row has
        metadata: dict[str, Scalar] = {}
        row_id = _scalar(row.get(chosen.id)) if chosen.id else None
        if row_id is not None:
            metadata["row_id"] = str(row_id)
        for name in chosen.metadata:
            value = _scalar(row.get(name))
            if value is not None:
                metadata[name] = value
        url = _scalar(row.get(chosen.url)) if chosen.url else None
        documents.append(
            Document(
                source=source,
                kind="table",
                sections=(Section(body, Locator(row=number)),),
                title=title or stem,
                url=url if isinstance(url, str) else None,
                metadata=metadata,
            )
        )
    if empty:
        rows_word = "row" if len(empty) == 1 else "rows"
        warnings.append(f"{len(empty)} {rows_word} with empty text skipped ({rows_word} {number_ranges(empty)})")
    if not documents:
        raise EmptySourceError(f"no row has text in the text column(s) {', '.join(chosen.text)}")
    return LoadResult(documents=tuple(documents), warnings=tuple(warnings))


def _choose_columns(
    columns: list[str], rows: list[tuple[int, dict[str, Any]]], table: TableConfig, warnings: list[str]
) -> _Columns:
    title = _configured(columns, table.title_field, "title_field") or _find(columns, "title")
    row_id = _configured(columns, table.id_field, "id_field") or _find(columns, "_id") or _find(columns, "id")
    url = _configured(columns, table.url_field, "url_field") or _find(columns, "url")
    special = {title, row_id, url}
    if table.text_fields:
        text = tuple(_require(columns, name, "text_fields") for name in table.text_fields)
    else:
        text = (_auto_text(columns, rows, special),)
    taken = special | set(text)
    if table.metadata_fields is None:
        wanted = [name for name in columns if name not in taken]
    else:
        wanted = [_require(columns, name, "metadata_fields") for name in table.metadata_fields]
    reserved = [name for name in wanted if name in RESERVED_METADATA]
    if reserved:
        warnings.append(f"column(s) {', '.join(reserved)} not kept as metadata: the name is used by ragbot itself")
    metadata = tuple(name for name in wanted if name not in RESERVED_METADATA and name not in taken)
    return _Columns(text=text, title=title, id=row_id, url=url, metadata=metadata)


def _configured(columns: list[str], name: str | None, setting: str) -> str | None:
    return None if name is None else _require(columns, name, setting)


def _require(columns: list[str], name: str, setting: str) -> str:
    found = _find(columns, name)
    if found is None:
        available = ", ".join(columns) or "(none)"
        raise LoadError(f"column '{name}' (ingest.tables {setting}) not found; available columns: {available}")
    return found


def _find(columns: list[str], name: str) -> str | None:
    """The column called name: exactly, else ignoring case."""
    if name in columns:
        return name
    matches = [column for column in columns if column.lower() == name.lower()]
    return matches[0] if matches else None


def _auto_text(columns: list[str], rows: list[tuple[int, dict[str, Any]]], special: set[str | None]) -> str:
    for name in AUTO_TEXT_COLUMNS:
        found = _find(columns, name)
        if found and found not in special:
            return found
    candidates = [name for name in columns if name not in special]

    def average_length(name: str) -> float:
        # Only words count: in a CSV every value is a string, and "12" or "2024-01-01" is no text.
        lengths = [len(v) for _, row in rows if isinstance(v := row.get(name), str) and _has_letters(v)]
        return sum(lengths) / len(rows)

    best = max(candidates, key=average_length, default=None)
    if best is None or average_length(best) == 0:
        available = ", ".join(columns) or "(none)"
        raise LoadError(f"no text column found; set text_fields for this file in ingest.tables (columns: {available})")
    logger.debug("text column picked by length: %s", best)
    return best


def _has_letters(value: str) -> bool:
    return any(char.isalpha() for char in value)


def _as_text(value: Any) -> str:
    """A cell as text: scalars as written, lists one item per line, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float, bool)):
        return str(value)
    if isinstance(value, list):
        return "\n".join(part for part in (_as_text(item) for item in value) if part)
    return json.dumps(value, ensure_ascii=False)


def _scalar(value: Any) -> Scalar | None:
    """A metadata-safe value, or None for empty strings, nested values and NaN."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (bool, int, float)):
        return value
    return None
