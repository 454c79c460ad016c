"""Chunks a process has read from the store, kept for the next questions (each worker its own).

A question reads a few dozen stored chunks after its nearest-neighbour searches: the texts and
metadata of the candidates it ranks, and the vectors of those it judges in another space. The
same chunks come back question after question (a team asks about the same pages), and against a
Chroma server each read is a round trip that costs the shared server about as much CPU as a
search (about 1.5 ms a request, most of it per request, not per chunk: docs/BENCHMARKS.md,
"Scale-out"). Several workers on one server then wait on it. So each process keeps the chunks
it read, up to `store.cache_chunks` of them, least recently used first out.

Why it cannot serve a stale chunk for long: a chunk id is a hash of the source, the position
and the text, so a cached text never changes under its id; the metadata (a title, a heading)
and the vectors of that text can. Every write passes through `KnowledgeBase`, which forgets the
chunks it writes or deletes at once. Other processes' writes reach this one through the keyword
channel's change feed (rag.keywords: in server mode every write leaves a keyword record with
its generation, and each process reads the new ones at most every 0.5 s while answering): the
knowledge base forgets each chunk that feed names, and everything when it reloads. Without
that feed (server mode with the keyword channel not loaded) the cache is not used. A read that
was in flight while something was forgotten is not kept (the version check below). And no entry
outlives `max_age_s` (a writer killed between its vector write and its keyword write leaves no
record in the feed).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from rag.records import Passage

Key = tuple[str, str]  # (space, chunk id)
ABSENT = object()  # in place of a passage: the space does not hold the chunk (a read found none)

_OPPOSITE = {"$eq": "$ne", "$ne": "$eq", "$in": "$nin", "$nin": "$in"}
_EXACT = (str, bool, int)  # compared as Chroma does: same type and value (a float, or 1 vs True: left to Chroma)


def _same(a, b) -> bool | None:
    if type(a) is not type(b) or type(a) not in _EXACT:
        return None
    return a == b


def _field(key: str, cond) -> tuple[str, object] | None:
    """A condition on one metadata key as (operator, value): `{"k": v}` is `$eq`; None for anything else."""
    if key.startswith("$"):
        return None
    if not isinstance(cond, dict):
        return "$eq", cond
    if len(cond) != 1:
        return None
    return next(iter(cond.items()))


def matches(where: dict, metadata: dict) -> bool | None:
    """Whether a chunk's metadata passes a Chroma `where` filter; None when unsure (the store decides).

    What the bots and the CLI filter by is read here: equality, `$in` (a channel's knowledge
    sets), `$ne`/`$nin`, `$and`/`$or`; any other operator is left to Chroma. As in Chroma, a
    chunk without the key fails `$eq`/`$in` and passes `$ne`/`$nin`.
    """
    if not isinstance(where, dict) or not where:
        return None
    results = []
    for key, cond in where.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                return None
            parts = [matches(c, metadata) for c in cond]
            if None in parts:
                return None
            results.append(all(parts) if key == "$and" else any(parts))
            continue
        field = _field(key, cond)
        if field is None:
            return None
        op, value = field
        if key not in metadata:
            if op not in _OPPOSITE:
                return None
            results.append(op in ("$ne", "$nin"))
            continue
        have = metadata[key]
        if op in ("$eq", "$ne"):
            same = _same(have, value)
            if same is None:
                return None
            results.append(same if op == "$eq" else not same)
        elif op in ("$in", "$nin"):
            if not isinstance(value, list):
                return None
            each = [_same(have, v) for v in value]
            if None in each:
                return None
            results.append(any(each) if op == "$in" else not any(each))
        else:
            return None
    return all(results)


def complement(where: dict) -> dict | None:
    """The Chroma filter that exactly the chunks failing where pass (None for a filter not read here).

    Asked with limit 1, it tells whether a filter excludes anything at all (see
    KnowledgeBase.filter_needed). Exact for a chunk without the key too: Chroma's `$nin`/`$ne`
    match it where `$in`/`$eq` do not.
    """
    if not isinstance(where, dict) or len(where) != 1:
        if isinstance(where, dict) and len(where) > 1:
            return complement({"$and": [{k: v} for k, v in where.items()]})
        return None
    (key, cond), = where.items()
    if key in ("$and", "$or"):
        if not isinstance(cond, list) or len(cond) < 2:
            return None
        parts = [complement(c) for c in cond]
        return None if None in parts else {("$or" if key == "$and" else "$and"): parts}
    field = _field(key, cond)
    return None if field is None or field[0] not in _OPPOSITE else {key: {_OPPOSITE[field[0]]: field[1]}}


class ChunkCache:
    """A bounded LRU of stored passages and vectors by (space, chunk id), thread-safe."""

    def __init__(self, size: int, max_age_s: float = 300.0, clock=time.monotonic):
        self.size = size
        self.max_age_s = max_age_s
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, list] = OrderedDict()  # key -> [passage | None, vector | None, read at]
        self._version = 0  # moved by every forget: a read that started before one is not kept
        self._verdicts: dict[tuple, tuple[bool, int]] = {}  # (space, filter) -> (needed, version it holds for)

    @property
    def version(self) -> int:
        """Take before reading the store; give it back to put()."""
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, key: Key, now: float) -> list | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry[2] > self.max_age_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _look_up(self, space: str, ids: Sequence[str], usable) -> tuple[dict[str, list], list[str]]:
        """The entries of ids that usable(entry) takes, and the ids to read; ids known absent are in neither."""
        got: dict[str, list] = {}
        missing: list[str] = []
        now = self.clock()
        for cid in ids:
            entry = self._entry((space, cid), now)
            if entry is not None and entry[0] is ABSENT:
                continue
            if entry is not None and usable(entry):
                got[cid] = entry
            else:
                missing.append(cid)
        return got, missing

    def passages(
        self, space: str, ids: Sequence[str], vectors: bool, where: dict | None = None
    ) -> tuple[dict[str, tuple[Passage, np.ndarray | None]], list[str]]:
        """The cached passages of ids that pass where (with their vectors when asked), and the ids to read from the store.

        A cached chunk that fails the filter is neither given nor read; one the filter cannot be
        decided for here (see `matches`) is read.
        """
        found: dict[str, tuple[Passage, np.ndarray | None]] = {}
        with self._lock:
            got, missing = self._look_up(space, ids, lambda e: e[0] is not None and (not vectors or e[1] is not None))
        for cid, (passage, vector, _) in got.items():
            passes = True if where is None else matches(where, passage.metadata)
            if passes is None:
                missing.append(cid)
            elif passes:
                found[cid] = (passage, vector if vectors else None)
        return found, missing

    def vectors(self, space: str, ids: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        """The cached vectors of ids, and the ids to read from the store."""
        with self._lock:
            got, missing = self._look_up(space, ids, lambda e: e[1] is not None)
        return {cid: entry[1] for cid, entry in got.items()}, missing

    def put(
        self, space: str, read: dict[str, tuple[Passage | None, np.ndarray | None]], version: int, absent: Iterable[str] = ()
    ) -> None:
        """Keep what a read of the store gave (passage and/or vector per id) and the ids it found absent,
        unless something was forgotten since the read began (it may predate that write)."""
        if self.size <= 0:
            return
        with self._lock:
            if version != self._version:
                return
            now = self.clock()
            for cid in absent:
                self._entries[(space, cid)] = [ABSENT, None, now]
                self._entries.move_to_end((space, cid))
            for cid, (passage, vector) in read.items():
                if vector is not None:
                    vector = np.array(vector, dtype=np.float32)
                    vector.setflags(write=False)  # handed out to every later question: nobody writes into it
                entry = self._entries.get((space, cid))
                if entry is not None and entry[0] is not ABSENT and now - entry[2] <= self.max_age_s:
                    # a passage read with its vector or without it: keep what either read gave
                    entry[0] = passage if passage is not None else entry[0]
                    entry[1] = vector if vector is not None else entry[1]
                    self._entries.move_to_end((space, cid))
                else:
                    self._entries[(space, cid)] = [passage, vector, now]
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def verdict(self, key: tuple) -> bool | None:
        """A verdict kept by keep_verdict, None when unknown or when something was forgotten since it was reached."""
        with self._lock:
            kept = self._verdicts.get(key)
            return kept[0] if kept is not None and kept[1] == self._version else None

    def keep_verdict(self, key: tuple, value: bool, version: int) -> None:
        """Keep what the store said (about every chunk of a space), until the next write anywhere."""
        with self._lock:
            if version != self._version:
                return
            if len(self._verdicts) >= 1024:
                self._verdicts.clear()
            self._verdicts[key] = (value, version)

    def forget(self, keys: Iterable[Key] | None) -> None:
        """Drop these (space, chunk id) entries; None drops everything."""
        with self._lock:
            self._version += 1
            if keys is None:
                self._entries.clear()
                return
            for key in keys:
                self._entries.pop(key, None)

    def forget_space(self, space: str) -> None:
        """Drop every entry of a space (a dropped or rebuilt space)."""
        with self._lock:
            self._version += 1
            for key in [key for key in self._entries if key[0] == space]:
                del self._entries[key]


class SentenceVectors:
    """Vectors of short texts by (model, text), least recently used out first, thread-safe.

    An extractive answer scores each sentence of the passages it may quote by its cosine with
    the question, and embedding those sentences is most of its cost (with the bundled MiniLM,
    ~1.7 s of CPU for a sample-corpus answer: docs/BENCHMARKS.md). The same passages come back
    for the next questions, and a text's vector does not depend on anything else: the numpy
    encoder embeds each text on its own, so a kept vector is the one it would compute again.
    """

    def __init__(self, size: int = 4096):
        self.size = size
        self._lock = threading.Lock()
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def embed(self, model: str, texts: Sequence[str], embed) -> np.ndarray:
        """Vectors of texts (rows in order): those kept, and embed(the others) for the rest, kept."""
        with self._lock:
            known = {}
            for text in texts:
                vector = self._vectors.get((model, text))
                if vector is not None:
                    self._vectors.move_to_end((model, text))
                    known[text] = vector
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            fresh = np.asarray(embed(todo), dtype=np.float32)
            with self._lock:
                for text, vector in zip(todo, fresh):
                    known[text] = self._vectors[(model, text)] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.vstack([known[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
