"""Bookkeeping of what was ingested: per source its fingerprint and the ids of its chunks.

SQLite in the data directory, one transaction per source, written only after the vectors are
in the store: a crash in between leaves the old record, and the rerun converges (ids are
deterministic, so rewriting them makes no duplicates).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT NOT NULL,
    space TEXT NOT NULL,
    source TEXT NOT NULL REFERENCES sources(source) ON DELETE CASCADE,
    PRIMARY KEY (space, id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks(source);
"""


@dataclass(frozen=True)
class SourceRecord:
    """What the manifest knows of one source."""

    source: str
    fingerprint: str
    chunks: int


class Manifest:
    """The ingest bookkeeping of one store."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def sources(self) -> dict[str, SourceRecord]:
        """Every recorded source."""
        rows = self._db.execute("SELECT source, fingerprint, chunks FROM sources")
        return {r[0]: SourceRecord(*r) for r in rows}

    def chunk_ids(self, source: str) -> dict[str, set[str]]:
        """A source's chunk ids, by space."""
        out: dict[str, set[str]] = defaultdict(set)
        for cid, space in self._db.execute("SELECT id, space FROM chunks WHERE source = ?", (source,)):
            out[space].add(cid)
        return out

    def ids_by_space(self) -> dict[str, set[str]]:
        """Every recorded chunk id, by space."""
        out: dict[str, set[str]] = defaultdict(set)
        for cid, space in self._db.execute("SELECT id, space FROM chunks"):
            out[space].add(cid)
        return out

    def counts_by_space(self) -> dict[str, int]:
        """Recorded chunk count per space."""
        return dict(self._db.execute("SELECT space, COUNT(*) FROM chunks GROUP BY space").fetchall())

    def sources_of(self, space: str, ids: Iterable[str]) -> set[str]:
        """The sources that own the given chunk ids of a space."""
        found: set[str] = set()
        ids = list(ids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT DISTINCT source FROM chunks WHERE space = ? AND id IN ({marks})", (space, *part)
            )
            found.update(r[0] for r in rows)
        return found

    def replace_source(self, source: str, fingerprint: str, chunks: Iterable[tuple[str, str]], count: int | None = None) -> None:
        """Record a source's new fingerprint and chunk ids (id, space), atomically.

        count: how many chunks the source has (default: one per pair; a chunk embedded in two
        spaces is two pairs).
        """
        chunks = list(chunks)
        with self._transaction():
            self._db.execute("DELETE FROM sources WHERE source = ?", (source,))
            self._db.execute("INSERT INTO sources VALUES (?, ?, ?)", (source, fingerprint, len(chunks) if count is None else count))
            self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?)", [(c, s, source) for c, s in chunks])

    def merge_sources(self, chunks: Mapping[tuple[str, str], Iterable[tuple[str, str]]]) -> None:
        """Add chunk ids (id, space) to sources' records, keyed by (source, fingerprint), in one transaction.

        For an import, possibly in pieces. A source not yet recorded takes the given fingerprint,
        so a later ingest of the same file finds it unchanged. A recorded one with another
        fingerprint is marked for re-ingest: its next ingest reads the file again (re-using every
        stored vector) and drops what the file no longer yields.
        """
        with self._transaction():
            for (source, fingerprint), ids in chunks.items():
                row = self._db.execute("SELECT fingerprint FROM sources WHERE source = ?", (source,)).fetchone()
                if row is None:
                    self._db.execute("INSERT INTO sources VALUES (?, ?, 0)", (source, fingerprint))
                elif row[0] != fingerprint:
                    self._db.execute("UPDATE sources SET fingerprint = '' WHERE source = ?", (source,))
                self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?)", [(c, s, source) for c, s in ids])
                self._db.execute(
                    "UPDATE sources SET chunks = (SELECT COUNT(DISTINCT id) FROM chunks WHERE source = ?) WHERE source = ?", (source, source)
                )

    def fingerprints(self) -> dict[str, str]:
        """Every recorded source's fingerprint."""
        return dict(self._db.execute("SELECT source, fingerprint FROM sources").fetchall())

    def remove_source(self, source: str) -> None:
        """Forget a source and its chunks."""
        with self._transaction():
            self._db.execute("DELETE FROM sources WHERE source = ?", (source,))

    def invalidate(self, sources: Iterable[str]) -> None:
        """Forget the fingerprints of sources so the next run re-ingests them."""
        with self._transaction():
            self._db.executemany("UPDATE sources SET fingerprint = '' WHERE source = ?", [(s,) for s in sources])

    def clear(self) -> None:
        """Forget everything (a rebuild)."""
        with self._transaction():
            self._db.execute("DELETE FROM sources")

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *rest):
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()
