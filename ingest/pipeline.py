"""Incremental, idempotent ingest: files -> documents -> chunks -> vectors in the store.

Why not langchain-core's `index()` with a record manager: its "incremental" cleanup never
removes sources that disappeared, its "full" cleanup deletes every source not seen in this
run (so ingesting one folder wipes the others, and a file that fails to parse loses its old
chunks), it cannot notice a wiped store whose bookkeeping survived, and it works one vector
store at a time while a source here spreads over several embedding spaces. The manifest below
covers those cases in ~300 lines.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ingest.chunking import chunk_document, count_tokens
from ingest.config import IngestConfig
from ingest.errors import EmptySourceError, IngestBusyError, IngestError, LoadError
from ingest.loaders import SUPPORTED_SUFFIXES, load_file
from ingest.manifest import Manifest
from rag.knowledge import KnowledgeBase
from rag.lang import detect_lang
from rag.records import CONTEXT_KEY, Chunk, chunk_context

logger = logging.getLogger(__name__)

FLUSH_CHUNKS = 4096  # chunks gathered across files before they are embedded together
ENCODE_SLICE = 512  # chunks per encode call: large enough to keep the model busy, small enough for progress


@dataclass
class Failure:
    """A source that could not be ingested, and why."""

    source: str
    reason: str


@dataclass
class IngestReport:
    """What one run did. Counts are sources, except embedded and chunks."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    embedded: int = 0
    chunks: int = 0
    seconds: float = 0.0
    failed: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)

    def as_json(self) -> dict:
        """The `ragbot ingest --json` contract."""
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "embedded": self.embedded,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "failed": [{"source": f.source, "reason": f.reason} for f in self.failed],
            "warnings": [{"source": w.source, "message": w.reason} for w in self.warnings],
        }


@dataclass
class _Pending:
    source: str
    fingerprint: str
    chunks: list[Chunk]
    spaces: list[list[str]]  # per chunk, every space it is embedded in (its own first)
    is_new: bool


def chunk_id(source: str, ordinal: int, text: str) -> str:
    """Deterministic chunk id: the source, the chunk's position and its content."""
    digest = hashlib.sha256(f"{source}\0{ordinal}\0{text}".encode()).hexdigest()
    return digest[:32]


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _anchor(path: Path) -> Path:
    """Where a named path's sources live: a folder fully resolved, a file under its resolved folder (a link keeps its name)."""
    if path.is_dir():
        return path.resolve()
    absolute = path.expanduser().absolute()
    return absolute.parent.resolve() / absolute.name


def _walk(root: Path, exclude: Sequence[str], confine: Sequence[Path] | None, warnings: list[Failure]) -> list[Path]:
    """Supported files under root, each named by the path it was found at (a symlink keeps its own name).

    A file's identity is its path under the root, not its link target: removing the link
    removes the source. Symlinked folders are followed except into a folder already on the
    way down (a loop) or, with confine, out of the confined roots; both are reported.
    """
    files: list[Path] = []
    stack: list[tuple[Path, Path, frozenset[Path]]] = [(root, root, frozenset({root}))]  # (as found, real, real chain)
    while stack:
        folder, real, chain = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as exc:
            warnings.append(Failure(folder.as_posix(), f"folder skipped: cannot read it ({exc.strerror})"))
            continue
        for entry in entries:
            if any(fnmatch.fnmatch(entry.name, pattern) for pattern in exclude):
                continue
            path = folder / entry.name
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):  # dangling, or a chain of links that never ends
                    warnings.append(Failure(path.as_posix(), "symlink skipped: its target does not exist or loops"))
                    continue
                if confine is not None and not _inside(target, confine):
                    warnings.append(Failure(path.as_posix(), f"symlink to {target.as_posix()} not followed: outside the ingest roots"))
                    continue
                if target.is_dir():
                    if target in chain:
                        warnings.append(Failure(path.as_posix(), f"symlink loop skipped: it points back to {target.as_posix()}"))
                    else:
                        stack.append((path, target, chain | {target}))
                elif target.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES:
                    files.append(path)
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((path, real / entry.name, chain | {real / entry.name}))
            elif entry.is_file(follow_symlinks=False) and path.suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(path)
    return files


def discover(
    paths: Sequence[Path], exclude: Sequence[str], confine_to: Sequence[Path] | None = None
) -> tuple[list[Path], list[Failure], list[Failure]]:
    """Files to ingest under the given paths, explicitly named files that cannot be, and warnings (skipped links).

    With confine_to (chat-triggered ingests), no symlink is followed out of those roots.
    """
    files: list[Path] = []
    rejected: list[Failure] = []
    warnings: list[Failure] = []
    confine = [Path(r).resolve() for r in confine_to] if confine_to is not None else None
    for path in paths:
        if not path.exists():
            raise IngestError(f"{path}: no such file or folder")
        if path.is_file():
            anchored = _anchor(path)
            if confine is not None and not _inside(path.resolve(), confine):
                rejected.append(Failure(anchored.as_posix(), "outside the ingest roots"))
            elif path.suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(anchored)
            else:
                reason = f"unsupported file type '{path.suffix or path.name}' (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
                rejected.append(Failure(anchored.as_posix(), reason))
            continue
        files.extend(_walk(path.resolve(), exclude, confine, warnings))
    unique = sorted(set(files))
    return unique, rejected, warnings


def _in_scope(source: str, roots: Sequence[Path]) -> bool:
    for root in roots:
        root_s = _anchor(root).as_posix()
        if source == root_s or source.startswith(root_s.rstrip("/") + "/"):
            return True
    return False


class Ingestor:
    """Runs ingests against one knowledge base and its manifest."""

    def __init__(
        self,
        kb: KnowledgeBase,
        config: IngestConfig,
        manifest: Manifest,
        lock_path: Path,
        progress: Callable[..., object] | None = None,
    ):
        self.kb = kb
        self.config = config
        self.manifest = manifest
        self._lock_path = lock_path
        self._progress = progress  # a tqdm-like factory, or None for no progress bars

    # -- settings fingerprint ------------------------------------------------------------
    def settings_fingerprint(self) -> str:
        """Everything besides file content that changes chunks or vectors."""
        emb = self.kb.embedding
        settings = {
            "chunking": self.config.chunking.model_dump(),
            "tables": [t.model_dump() for t in self.config.tables],
            "sets": [r.model_dump() for r in self.config.sets],  # a changed rule re-tags (vectors are re-used)
            "routing": emb.routing,
            "models": {name: self.kb.model_id(name) for name in emb.spaces},
            "version": 2,  # 2: chunks carry a context line (title, heading) into what is embedded
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    # -- the run -------------------------------------------------------------------------
    def run(self, paths: Sequence[Path], rebuild: bool = False, confine_to: Sequence[Path] | None = None) -> IngestReport:
        """Bring the store in line with the files under paths; see IngestReport.

        confine_to (chat-triggered runs): folder walks follow no symlink out of these roots.
        """
        with self._exclusive():
            return self._run(paths, rebuild, confine_to)

    def export(self, out: Path, spaces: Sequence[str] = (), fmt: str = "parquet", map_config=None):
        """Write the store's chunks, vectors and locators to an export folder (ingest.transfer)."""
        from ingest.transfer import export_knowledge

        with self._exclusive():  # no ingest changes the store while it is paged through
            return export_knowledge(self.kb, self.manifest, out, spaces, fmt, map_config, progress=self._progress)

    def import_export(self, path: Path):
        """Load an export into the store without re-embedding, with its bookkeeping (ingest.transfer)."""
        from ingest.transfer import import_knowledge

        with self._exclusive():
            return import_knowledge(self.kb, self.manifest, path, progress=self._progress)

    @contextmanager
    def _exclusive(self):
        lock = FileLock(str(self._lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise IngestBusyError(
                "Another ingest is already running on this data directory; wait for it to finish."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _run(self, paths: Sequence[Path], rebuild: bool, confine_to: Sequence[Path] | None = None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        files, rejected, skipped = discover(paths, self.config.exclude, confine_to)
        report.failed.extend(rejected)
        report.warnings.extend(skipped)

        spaces = list(self.kb.embedding.spaces)
        if rebuild:
            for space in set(spaces) | set(self.kb.stored_spaces()):
                self.kb.drop(space)
            self.manifest.clear()
        for space in spaces:
            self.kb.check_model(space)
        self._reconcile(report, start=True)

        known = self.manifest.sources()
        present = {f.as_posix() for f in files}
        for source in sorted(known):
            if source not in present and _in_scope(source, paths):
                self._delete_source(source)
                report.deleted += 1

        settings = self.settings_fingerprint()
        pending: list[_Pending] = []
        pending_chunks = 0
        bar = self._bar(total=len(files), desc="Reading", unit="file")
        for path in files:
            source = path.as_posix()
            record = known.get(source)
            try:
                fingerprint = self._fingerprint(path, settings)
                if record is not None and record.fingerprint == fingerprint:
                    report.unchanged += 1
                    report.chunks += record.chunks
                    continue
                result = load_file(path, self.config)
                self._check_size(result.documents)
            except EmptySourceError as exc:
                if record is not None:  # an emptied file: its chunks go
                    self._delete_source(source)
                    report.deleted += 1
                else:
                    report.failed.append(Failure(source, str(exc)))
                continue
            except (LoadError, OSError) as exc:
                report.failed.append(Failure(source, str(exc) if isinstance(exc, LoadError) else f"cannot read: {exc}"))
                continue
            finally:
                bar.update(1)
            report.warnings.extend(Failure(source, w) for w in result.warnings)
            item = self._chunk(source, fingerprint, result.documents, is_new=record is None)
            pending.append(item)
            pending_chunks += len(item.chunks)
            if pending_chunks >= FLUSH_CHUNKS:
                self._flush(pending, report)
                pending, pending_chunks = [], 0
        bar.close()
        self._flush(pending, report)
        self._reconcile(report, start=False)
        report.seconds = time.perf_counter() - started
        return report

    # -- steps ---------------------------------------------------------------------------
    def _fingerprint(self, path: Path, settings: str) -> str:
        limit = int(self.config.max_file_mb * 1024 * 1024)
        size = path.stat().st_size
        if size == 0:
            raise EmptySourceError("empty file")
        if size > limit:
            raise LoadError(f"file is larger than the {self.config.max_file_mb:g} MB limit (ingest.max_file_mb)")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"{digest.hexdigest()[:32]}-{settings}"

    def _check_size(self, documents) -> None:
        """Refuse, before chunking and embedding, a file that would make more chunks than ingest.max_chunks_per_file.

        Embedding is the slow part of ingest (about 40 chunks/s for the default model on two
        cores), so one file of a few tens of MB of unbroken text would hold an ingest (and the
        ingest lock) for hours. Counting its tokens first costs seconds.
        """
        cap = self.config.max_chunks_per_file
        chunking = self.config.chunking
        tokens = sum(count_tokens(section.text, chunking.encoding) for doc in documents for section in doc.sections)
        estimate = tokens // max(1, chunking.max_tokens - chunking.overlap_tokens)
        if estimate > cap:
            raise LoadError(
                f"too large to embed: about {estimate:,} chunks ({tokens:,} tokens), more than ingest.max_chunks_per_file "
                f"({cap:,}); split the file, or raise the limit if it is meant to be searchable"
            )

    def _chunk(self, source: str, fingerprint: str, documents, is_new: bool) -> _Pending:
        chunks: list[Chunk] = []
        spaces: list[list[str]] = []
        ordinal = 0
        knowledge_set = self.config.set_for(source)
        for doc in documents:
            for piece in chunk_document(doc, self.config.chunking):
                lang = detect_lang(piece.text)
                meta = dict(doc.metadata)
                meta.update(kind=doc.kind, lang=lang, ordinal=ordinal)
                meta["set"] = knowledge_set
                if doc.title:
                    meta["title"] = doc.title
                context = chunk_context(doc.title, piece.locator.heading, piece.text)
                if context:
                    meta[CONTEXT_KEY] = context
                if doc.url:
                    meta["url"] = doc.url
                chunks.append(
                    Chunk(
                        id=chunk_id(source, ordinal, piece.text),
                        text=piece.text,
                        source=source,
                        locator=piece.locator,
                        metadata=meta,
                    )
                )
                spaces.append(self.kb.embedding.spaces_for(lang))
                ordinal += 1
        return _Pending(source, fingerprint, chunks, spaces, is_new)

    def _flush(self, pending: list[_Pending], report: IngestReport) -> None:
        """Embed what is new (all sources together), write it, drop what is stale, then record each source.

        New sources are written in one batch per space. An edited source is written and its stale
        chunks deleted back to back, one source at a time, so readers see its old chunks beside
        its new ones only while that one source is written (and, if the store is lost right
        then, only that source until the next run), not while the whole batch is.
        """
        if not pending:
            return
        by_space: dict[str, list[tuple[Chunk, int]]] = defaultdict(list)  # space -> (chunk, pending index)
        for index, item in enumerate(pending):
            for chunk, targets in zip(item.chunks, item.spaces):
                for space in targets:
                    by_space[space].append((chunk, index))

        rows_of: dict[tuple[str, int], list[int]] = defaultdict(list)  # (space, pending index) -> rows of its vectors
        vectors_by_space: dict[str, np.ndarray] = {}
        for space, entries in by_space.items():
            chunks = [c for c, _ in entries]
            vectors_by_space[space] = self._vectors_for(space, chunks, [pending[i].source for _, i in entries], report)
            for row, (_, index) in enumerate(entries):
                rows_of[(space, index)].append(row)
            fresh = [row for row, (_, index) in enumerate(entries) if pending[index].is_new]
            if fresh:
                self.kb.write(space, [entries[row][0] for row in fresh], vectors_by_space[space][fresh])

        for index, item in enumerate(pending):
            if not item.is_new:
                for space, entries in by_space.items():
                    rows = rows_of.get((space, index))
                    if rows:
                        self.kb.write(space, [entries[row][0] for row in rows], vectors_by_space[space][rows])
            old = self.manifest.chunk_ids(item.source)
            new_by_space: dict[str, set[str]] = defaultdict(set)
            for chunk, targets in zip(item.chunks, item.spaces):
                for space in targets:
                    new_by_space[space].add(chunk.id)
            for space, ids in old.items():
                stale = ids - new_by_space.get(space, set())
                self.kb.delete(space, stale)
            self.manifest.replace_source(
                item.source,
                item.fingerprint,
                [(c.id, s) for c, targets in zip(item.chunks, item.spaces) for s in targets],
                count=len(item.chunks),
            )
            report.chunks += len(item.chunks)
            if item.is_new:
                report.added += 1
            else:
                report.updated += 1

    def _vectors_for(self, space: str, chunks: list[Chunk], sources: list[str], report: IngestReport) -> np.ndarray:
        """Vectors for chunks: re-used from the store where the same text was embedded before."""
        candidates: set[str] = {c.id for c in chunks}
        for source in set(sources):
            candidates |= self.manifest.chunk_ids(source).get(space, set())
        reusable = {_text_hash(text): vec for text, vec in self.kb.reusable_vectors(space, sorted(candidates)).values()}

        vectors: list[np.ndarray | None] = [reusable.get(_text_hash(c.indexed_text)) for c in chunks]
        todo = [i for i, v in enumerate(vectors) if v is None]
        if todo:
            embedder = self.kb.embedder(space)
            todo.sort(key=lambda i: len(chunks[i].indexed_text))  # similar lengths together: less padding
            bar = self._bar(total=len(todo), desc=f"Embedding ({space})", unit="chunk")
            for start in range(0, len(todo), ENCODE_SLICE):
                part = todo[start : start + ENCODE_SLICE]
                embedded = embedder.embed_passages([chunks[i].indexed_text for i in part])
                for i, vec in zip(part, embedded):
                    vectors[i] = vec
                bar.update(len(part))
            bar.close()
            report.embedded += len(todo)
        return np.vstack(vectors).astype(np.float32)

    def _delete_source(self, source: str) -> None:
        for space, ids in self.manifest.chunk_ids(source).items():
            self.kb.delete(space, ids)
        self.manifest.remove_source(source)

    def _reconcile(self, report: IngestReport, start: bool) -> None:
        """Compare the manifest with the store; a cheap count check first, ids only on mismatch.

        At the start, chunks the manifest records but the store lacks (a wiped or restored
        store) mark their sources for re-ingest. At the end, chunks the store holds but the
        manifest does not (left by an interrupted run) are deleted.
        """
        recorded = self.manifest.counts_by_space()
        spaces = set(recorded) | (set(self.kb.stored_spaces()) & set(self.kb.embedding.spaces))
        mismatched = [space for space in spaces if self.kb.count(space) != recorded.get(space, 0)]
        expected_ids = self.manifest.ids_by_space() if mismatched else {}
        for space in mismatched:
            stored = self.kb.ids(space)
            expected = expected_ids.get(space, set())
            missing = expected - stored
            if missing and start:
                lost = self.manifest.sources_of(space, missing)
                logger.warning("store lacks %d chunks of %d sources; re-ingesting them", len(missing), len(lost))
                self.manifest.invalidate(lost)
            orphans = stored - expected
            if orphans and not start:
                logger.info("removing %d chunks left by an interrupted run", len(orphans))
                self.kb.delete(space, orphans)

    def _bar(self, **kwargs):
        if self._progress is None:
            return _NoBar()
        return self._progress(**kwargs)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
