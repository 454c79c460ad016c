"""Export a knowledge base to Parquet or JSONL, and import such an export into another store.

An export is a folder: one data file per embedding space (`en.parquet`, `ja.parquet`, or
`.jsonl`), one row per chunk with its vector, text, context line, source, every locator
field, knowledge set, language and content hash; and `manifest.json` with the format version,
the ragbot version and, per space, its model, dimension, chunk count and the file's SHA-256.
One file per space because a space fixes the vector length: a fixed-size float32 list column
is what pandas, DuckDB and embedding-atlas read as a vector.

Export pages through the store (ragbot holds one page at a time), writes into a hidden
folder beside the target and renames it into place at the end, so a failed export leaves
nothing that looks complete.
Import checks everything it can before writing anything (format version, models, dimensions,
sizes and checksums), writes the stored vectors as they are (no model is loaded), skips chunks
the store already holds, and records each chunk in the ingest manifest under its source and
the source's fingerprint, vectors first, then bookkeeping, page by page, as an ingest does: a
crash midway leaves a state that a rerun completes, and a later `ragbot ingest` of the same
files finds them unchanged and embeds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from ingest.errors import TransferError
from ingest.manifest import Manifest
from rag.errors import ModelMismatchError
from rag.knowledge import KnowledgeBase
from rag.records import CONTEXT_KEY, Chunk, indexed_text
from rag.store import stored_chunk

logger = logging.getLogger(__name__)

FORMAT = "ragbot-export"
FORMAT_VERSION = 1  # raise when a reader of this version could not read the files right
MANIFEST_NAME = "manifest.json"
PAGE = 1000  # chunks per store read and per file batch: memory stays flat at any size
Format = Literal["parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("parquet", "jsonl")

# Stored metadata keys broken out into their own typed columns (the rest goes to `metadata`).
# A value of another type than its column's stays in `metadata`, so the round trip is exact.
_TYPED: dict[str, tuple[type, ...]] = {
    CONTEXT_KEY: (str,),
    "source": (str,),
    "heading": (str,),
    "page": (int,),
    "row": (int,),
    "start_s": (float,),
    "end_s": (float,),
    "speaker": (str,),
    "url": (str,),
    "set": (str,),
    "lang": (str,),
}
MAP_COLUMNS = ("x", "y", "cluster", "topic")


def ragbot_version() -> str:
    """The installed ragbot version (recorded in each export)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragbot")
    except PackageNotFoundError:
        return "unknown"


def content_hash(indexed_text: str) -> str:
    """SHA-256 of what was embedded (context line + text): equal hashes, re-usable vectors."""
    return hashlib.sha256(indexed_text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class SpaceExport:
    """One space of an export: its model, dimension, count, and file with checksum."""

    space: str
    model: str
    dim: int
    chunks: int
    file: str
    sha256: str = ""
    bytes: int = 0

    def as_json(self) -> dict:
        return {"model": self.model, "dim": self.dim, "chunks": self.chunks, "file": self.file, "sha256": self.sha256, "bytes": self.bytes}


@dataclass
class ExportReport:
    """What an export wrote."""

    path: Path
    format: str
    spaces: list[SpaceExport]
    with_map: bool = False
    seconds: float = 0.0

    @property
    def chunks(self) -> int:
        return sum(s.chunks for s in self.spaces)

    def as_json(self) -> dict:
        """The `ragbot export --json` contract."""
        return {
            "path": str(self.path),
            "format": self.format,
            "chunks": self.chunks,
            "with_map": self.with_map,
            "seconds": round(self.seconds, 3),
            "spaces": {s.space: s.as_json() for s in self.spaces},
        }


@dataclass
class ImportReport:
    """What an import did, per space: chunks written and chunks skipped (already present)."""

    path: Path
    imported: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    sources: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict:
        """The `ragbot import --json` contract."""
        return {
            "path": str(self.path),
            "imported": sum(self.imported.values()),
            "skipped": sum(self.skipped.values()),
            "sources": self.sources,
            "seconds": round(self.seconds, 3),
            "spaces": {s: {"imported": self.imported.get(s, 0), "skipped": self.skipped.get(s, 0)} for s in self.imported},
        }


# -- rows -----------------------------------------------------------------------------------
def _row(space: str, model: str, dim: int, cid: str, text: str, meta: dict, fingerprint: str | None) -> dict:
    """One chunk as an export row (the vector is added by the writer)."""
    row: dict = {"id": cid, "space": space, "model": model, "dim": dim, "text": text}
    extra = dict(meta)
    for key, types in _TYPED.items():
        value = extra.get(key)
        if isinstance(value, types) and not isinstance(value, bool):
            row[key] = extra.pop(key)
        else:
            row[key] = None
    row["content_hash"] = content_hash(indexed_text(text, meta))
    row["metadata"] = dict(sorted(extra.items()))  # Chroma gives keys in any order: files stay deterministic
    row["ingest_fingerprint"] = fingerprint
    return row


def _chunk(row: dict) -> Chunk:
    """The chunk an export row holds, with exactly the metadata it was stored with."""
    meta = dict(row.get("metadata") or {})
    for key in _TYPED:
        if row.get(key) is not None:
            meta[key] = row[key]
    return stored_chunk(row["id"], row["text"], meta)


# -- file formats ---------------------------------------------------------------------------
def _arrow_schema(dim: int, with_map: bool):
    import pyarrow as pa

    fields = [
        ("id", pa.string()),
        ("space", pa.string()),
        ("model", pa.string()),
        ("dim", pa.int32()),
        ("vector", pa.list_(pa.float32(), dim)),
        ("text", pa.string()),
        ("context", pa.string()),
        ("source", pa.string()),
        ("heading", pa.string()),
        ("page", pa.int64()),
        ("row", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("speaker", pa.string()),
        ("url", pa.string()),
        ("set", pa.string()),
        ("lang", pa.string()),
        ("content_hash", pa.string()),
        ("metadata", pa.string()),  # JSON object: the stored metadata not in a column above
        ("ingest_fingerprint", pa.string()),
    ]
    if with_map:
        fields += [("x", pa.float32()), ("y", pa.float32()), ("cluster", pa.int32()), ("topic", pa.string())]
    return pa.schema(fields)


class _ParquetWriter:
    def __init__(self, path: Path, dim: int, with_map: bool):
        import pyarrow.parquet as pq

        self.schema = _arrow_schema(dim, with_map)
        self.dim = dim
        self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, rows: list[dict], vectors: np.ndarray) -> None:
        import pyarrow as pa

        columns = {}
        for f in self.schema:
            if f.name == "vector":
                flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), type=pa.float32())
                columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, self.dim)
            elif f.name == "metadata":
                columns["metadata"] = pa.array([json.dumps(r["metadata"], ensure_ascii=False, sort_keys=True) for r in rows], pa.string())
            else:
                columns[f.name] = pa.array([r.get(f.name) for r in rows], f.type)
        self._writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=self.schema))

    def close(self) -> None:
        self._writer.close()


class _JsonlWriter:
    def __init__(self, path: Path, dim: int, with_map: bool):
        self._handle = path.open("w", encoding="utf-8")

    def write(self, rows: list[dict], vectors: np.ndarray) -> None:
        # float32 -> Python float is exact, and repr() of that float parses back to the same float32
        lines = []
        for row, vec in zip(rows, vectors.tolist()):
            lines.append(json.dumps({**row, "vector": vec}, ensure_ascii=False) + "\n")
        self._handle.write("".join(lines))

    def close(self) -> None:
        self._handle.close()


def _read_parquet(path: Path, dim: int) -> Iterator[tuple[list[dict], np.ndarray]]:
    import pyarrow.parquet as pq

    wanted = ["id", "text", "vector", "metadata", "ingest_fingerprint", *_TYPED]
    # pre_buffer=False: pyarrow's default pre-buffers every row group's column chunks up front and
    # keeps them until the last batch is read (the whole file in memory: ~2.2 KB a chunk)
    parquet = pq.ParquetFile(str(path), pre_buffer=False)
    missing = [c for c in wanted if c not in parquet.schema_arrow.names]
    if missing:
        raise TransferError(f"{path.name} lacks the column(s) {', '.join(missing)}: it is not a ragbot export file.")
    for batch in parquet.iter_batches(batch_size=PAGE, columns=wanted):
        vectors = batch.column("vector")
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if len(flat) != len(batch) * dim:
            raise TransferError(f"{path.name} holds vectors that are not {dim}-d, as manifest.json says.")
        data = batch.to_pydict()
        del data["vector"]
        rows = [dict(zip(data, values)) for values in zip(*data.values())]
        for row in rows:
            row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
        yield rows, flat.reshape(len(batch), dim)


def _read_jsonl(path: Path, dim: int) -> Iterator[tuple[list[dict], np.ndarray]]:
    rows: list[dict] = []
    vectors: list[list[float]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TransferError(f"{path.name} line {number} is not valid JSON ({exc.msg}).") from None
            vec = row.pop("vector", None)
            if not isinstance(vec, list) or len(vec) != dim:
                raise TransferError(f"{path.name} line {number}: the vector is not {dim}-d, as manifest.json says.")
            rows.append(row)
            vectors.append(vec)
            if len(rows) == PAGE:
                yield rows, np.asarray(vectors, dtype=np.float32)
                rows, vectors = [], []
    if rows:
        yield rows, np.asarray(vectors, dtype=np.float32)


def _probe_parquet(path: Path) -> int | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(str(path))
    except pa.ArrowException as exc:
        raise TransferError(f"{path} is not a readable Parquet file ({exc}): copy the export again, or export anew.") from None
    field = schema.field("vector") if "vector" in schema.names else None
    return field.type.list_size if field is not None and pa.types.is_fixed_size_list(field.type) else None


def _probe_jsonl(path: Path) -> int | None:
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    try:
        vector = json.loads(first).get("vector") if first.strip() else None
    except (json.JSONDecodeError, AttributeError):
        raise TransferError(f"{path} line 1 is not a JSON object: copy the export again, or export anew.") from None
    return len(vector) if isinstance(vector, list) else None


_PROBES = {"parquet": _probe_parquet, "jsonl": _probe_jsonl}
_WRITERS = {"parquet": _ParquetWriter, "jsonl": _JsonlWriter}
_READERS = {"parquet": _read_parquet, "jsonl": _read_jsonl}


# -- export ---------------------------------------------------------------------------------
def map_layout(kb: KnowledgeBase, space: str, map_config) -> dict[str, tuple[float, float, int, str | None]]:
    """Per chunk id: its 2-D position, cluster and cluster label, as `ragbot map` draws the space."""
    from rag.atlas.builder import build_layer, read_space

    layer = build_layer(read_space(kb, space), map_config)
    labels = {t.cluster: t.label for t in layer.topics}
    xy = layer.projection.xy
    return {
        cid: (float(xy[i, 0]), float(xy[i, 1]), int(layer.clusters[i]), labels.get(int(layer.clusters[i])))
        for i, cid in enumerate(layer.records.ids)
    }


def export_knowledge(
    kb: KnowledgeBase,
    manifest: Manifest,
    out: Path,
    spaces: Sequence[str] = (),
    fmt: Format = "parquet",
    map_config=None,
    progress: Callable[..., object] | None = None,
) -> ExportReport:
    """Write every chunk of the given spaces (default: all non-empty ones) to the folder `out`."""
    started = time.perf_counter()
    if fmt not in FORMATS:
        raise TransferError(f"Unknown export format '{fmt}': use one of {', '.join(FORMATS)}.")
    out = Path(out)
    if out.exists():
        raise TransferError(f"{out} already exists: choose another --out, or delete it first.")
    stored = [s for s in kb.stored_spaces() if kb.count(s)]
    if spaces:
        unknown = [s for s in spaces if s not in stored]
        if unknown:
            raise TransferError(
                f"The store has no chunks in the space(s) {', '.join(unknown)}; it holds: {', '.join(stored) or 'nothing'}."
            )
        stored = list(dict.fromkeys(spaces))
    if not stored:
        raise TransferError("Nothing is ingested yet, so there is nothing to export. Run `ragbot ingest PATH...` first.")

    fingerprints = manifest.fingerprints()
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    report = ExportReport(out, fmt, [], with_map=map_config is not None)
    try:
        for space in stored:
            report.spaces.append(_export_space(kb, space, tmp, fmt, fingerprints, map_config, progress))
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ragbot_version": ragbot_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "file_format": fmt,
            "with_map": map_config is not None,
            "spaces": {s.space: s.as_json() for s in report.spaces},
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, out)  # only a complete export appears under the name asked for
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _export_space(kb, space, folder, fmt, fingerprints, map_config, progress) -> SpaceExport:
    info = kb.space_info(space) or {}
    model = str(info.get("model") or "")
    dim = int(info.get("dim") or 0)
    total = int(info.get("chunks") or 0)
    layout = map_layout(kb, space, map_config) if map_config is not None else None
    entry = SpaceExport(space, model, dim, 0, f"{space}.{fmt}")
    path = folder / entry.file
    writer = _WRITERS[fmt](path, dim, layout is not None)
    bar = _bar(progress, total=total, desc=f"Exporting ({space})", unit="chunk")
    try:
        for page in kb.pages(space, size=PAGE):
            if page.vectors.shape[1] != dim:
                raise TransferError(f"The '{space}' space holds {page.vectors.shape[1]}-d vectors but records {dim}-d ones.")
            rows = []
            for cid, text, meta in zip(page.ids, page.texts, page.metadatas):
                row = _row(space, model, dim, cid, text, meta, fingerprints.get(str(meta.get("source", ""))))
                if layout is not None:
                    row.update(zip(MAP_COLUMNS, layout.get(cid, (None, None, None, None))))
                rows.append(row)
            writer.write(rows, page.vectors)
            entry.chunks += len(rows)
            bar.update(len(rows))
    finally:
        writer.close()
        bar.close()
    entry.sha256 = file_sha256(path)
    entry.bytes = path.stat().st_size
    return entry


# -- import ---------------------------------------------------------------------------------
def read_export_manifest(path: Path) -> tuple[Path, dict]:
    """The export folder and its manifest, checked for format and version."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    manifest_file = folder / MANIFEST_NAME
    if not path.exists():
        raise TransferError(f"{path}: no such file or folder.")
    if not manifest_file.is_file():
        raise TransferError(f"{folder} is not a ragbot export: it has no {MANIFEST_NAME} (make one with `ragbot export --out PATH`).")
    try:
        document = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransferError(f"{manifest_file} is damaged ({exc}): copy the export again, or export anew.") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TransferError(f"{manifest_file} is not a ragbot export manifest.")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TransferError(
            f"{folder} was written by a newer ragbot (export format version {version}, made by ragbot "
            f"{document.get('ragbot_version', '?')}); this ragbot {ragbot_version()} reads format version "
            f"{FORMAT_VERSION} and older. Upgrade ragbot on this machine, then import again."
        )
    if document.get("file_format") not in FORMATS or not isinstance(document.get("spaces"), dict):
        raise TransferError(f"{manifest_file} is damaged (no file format or spaces): copy the export again, or export anew.")
    return folder, document


def _model_hint(model_id: str) -> str:
    provider, _, rest = model_id.partition(":")
    model = rest.split(":", 1)[0] if rest else model_id
    return f"provider: {provider}, model: {model}" if rest else f"model: {model_id}"


def check_import(kb: KnowledgeBase, folder: Path, document: dict) -> None:
    """Refuse an export the configured store cannot take, before anything is written."""
    for space, entry in document["spaces"].items():
        model, dim = str(entry.get("model") or ""), int(entry.get("dim") or 0)
        if space not in kb.embedding.spaces:
            raise ModelMismatchError(
                f"The export holds a '{space}' space ({model}, {dim}-d) that config.yaml does not configure. "
                f"Add it under embedding.spaces ({space}: {{{_model_hint(model)}}}) and import again."
            )
        configured = kb.model_id(space)
        if configured != model:
            raise ModelMismatchError(
                f"The export's '{space}' space was built with {model} ({dim}-d vectors), but config.yaml "
                f"configures {configured} for it. Vectors of two models cannot be mixed: set embedding.spaces.{space} "
                f"to {{{_model_hint(model)}}} to import it, or ingest the documents again with the new model."
            )
        kb.check_model(space)  # the target store's own space built with another model
        info = kb.space_info(space) or {}
        if info.get("dim") and int(info["dim"]) != dim:
            raise ModelMismatchError(
                f"The store's '{space}' space holds {info['dim']}-d vectors but the export's are {dim}-d; "
                "import into an empty data directory, or rebuild the space with `ragbot ingest --rebuild PATH...`."
            )
    for space, entry in document["spaces"].items():
        name = str(entry.get("file") or "")
        path = folder / name
        if not name or "/" in name or "\\" in name or not path.is_file():
            raise TransferError(f"The export lacks the file {name or '?'} of the '{space}' space: copy the whole export folder.")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise TransferError(
                f"{path} is truncated or altered ({size:,} bytes, manifest.json says {entry.get('bytes'):,}): "
                "copy the export again, or export anew. Nothing was imported."
            )
        if file_sha256(path) != entry.get("sha256"):
            raise TransferError(
                f"{path} is corrupted (its SHA-256 differs from manifest.json): copy the export again, "
                "or export anew. Nothing was imported."
            )
        found = _PROBES[document["file_format"]](path)
        if found is not None and found != int(entry.get("dim") or 0):
            raise TransferError(
                f"{path} holds {found}-d vectors but manifest.json says {entry.get('dim')}-d: the export was "
                "altered; export anew. Nothing was imported."
            )


def import_knowledge(
    kb: KnowledgeBase, manifest: Manifest, path: Path, progress: Callable[..., object] | None = None
) -> ImportReport:
    """Load an export into the store behind kb (no re-embedding) and record it in the ingest manifest."""
    started = time.perf_counter()
    folder, document = read_export_manifest(path)
    check_import(kb, folder, document)
    report = ImportReport(folder)
    read = _READERS[document["file_format"]]
    sources: set[str] = set()
    for space, entry in document["spaces"].items():
        dim = int(entry["dim"])
        report.imported[space] = report.skipped[space] = 0
        bar = _bar(progress, total=int(entry.get("chunks") or 0), desc=f"Importing ({space})", unit="chunk")
        try:
            for rows, vectors in read(folder / entry["file"], dim):
                chunks = [_chunk(r) for r in rows]
                present = kb.existing_ids(space, [c.id for c in chunks])
                keep = [i for i, c in enumerate(chunks) if c.id not in present]
                if keep:
                    kb.restore(space, [chunks[i] for i in keep], vectors[keep])
                by_source: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
                for row, chunk in zip(rows, chunks):
                    by_source[(chunk.source, row.get("ingest_fingerprint") or "")].append((chunk.id, space))
                manifest.merge_sources(by_source)
                sources.update(source for source, _ in by_source)
                report.imported[space] += len(keep)
                report.skipped[space] += len(chunks) - len(keep)
                bar.update(len(chunks))
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferError(
                f"{entry['file']} has a malformed row ({type(exc).__name__}: {exc}); the chunks before it were "
                "imported, and importing a sound copy of the export completes the rest."
            ) from exc
        finally:
            bar.close()
    kb.sync_keywords()
    report.sources = len(sources)
    report.seconds = time.perf_counter() - started
    return report


def _bar(progress, **kwargs):
    if progress is None:
        return _NoBar()
    return progress(**kwargs)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
