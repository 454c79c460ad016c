"""The keyword channel: a BM25 index that understands English and Japanese, kept beside the vectors.

Why our own index rather than bm25s: bm25s cannot add or remove documents, so every ingest
(and every deleted file) would mean re-tokenizing the whole corpus. Here each chunk's tokens
are stored once, when the knowledge base writes the chunk; deleting a chunk deletes them. The
BM25 matrix (one over every space: questions are ranked across spaces at once) is derived
from the stored tokens in memory (sparse, term-major, like bm25s's eager scoring) and then
kept in step with each change in place (`_Matrix.update`: changed rows masked, new ones in a
small delta, exact document frequencies), so a write never costs a question a rebuild.

Two implementations of one interface (`KeywordIndex`):

- `LocalKeywordIndex`: the tokens in SQLite in the data directory. The embedded store is owned
  by one process, so that process is the only writer; a restart loads the rows again without
  re-reading any source file.
- `SharedKeywordIndex` (server mode): the tokens in the Chroma server itself, in a collection
  beside the spaces, one record per (space, chunk) with the token string in its metadata and
  the generation of its write; a deletion leaves a tombstone; a head record holds the newest
  generation. Each process checks the head at most every 0.5 s while answering (one small
  request) and, when it moved, reads only the records of the newer generations; a process
  with an empty data dir reads them all once.

Why the tokens live in Chroma: it is the one engine every process already reaches (a worker
needs nothing else: no state store, no shared file system), the vectors and the tokens are
kept and backed up together, and nothing in the data dir can go stale. Chroma 1.5 cannot
score them for us: its sparse-vector index and Search API are refused outside Chroma Cloud,
and `$contains` filters match without scores; so Chroma keeps the tokens and each process
scores BM25 in memory as before. Why not analyse the stored texts again in each process
instead: Sudachi is slow, and a new worker would pay it for the whole corpus (see
docs/BENCHMARKS.md, "Keyword channel across processes", for the write, load and analysis
costs and the question latency with the shared channel). Why a separate collection rather
than the chunks' own metadata: deletions need tombstones somewhere anyway, exports and
citations would carry the tokens, and one collection is read in one pass.

Tokens: Latin-script words are lower-cased, English stop words dropped and Snowball-stemmed
(PyStemmer). Japanese runs go through Sudachi (dictionary from the sudachidict-core package;
particles, auxiliary verbs and symbols dropped), through character bigrams, or through both,
as `retrieval.keyword.japanese` says.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.config import KeywordConfig
from rag.lang import CJK, CJK_RUN, ENGLISH_STOPWORDS, SUDACHI_MAX_CHARS, sudachi_morphemes
from rag.store import server_errors

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Sudachi parts of speech that carry no topic: particles, auxiliary verbs, symbols, blanks
_DROP_POS = frozenset({"助詞", "助動詞", "補助記号", "空白", "記号"})


class Analyzer:
    """Turns text into keyword tokens; the same analysis for passages and questions."""

    def __init__(self, config: KeywordConfig):
        self.config = config

    def signature(self) -> str:
        """What identifies the analysis; an index built with another one is rebuilt."""
        c = self.config
        return json.dumps(
            {"ja": c.japanese, "mode": c.sudachi_mode, "stem": c.english_stemmer, "stop": c.english_stopwords, "v": 1},
            sort_keys=True,
        )

    @cached_property
    def _stemmer(self):
        if not self.config.english_stemmer:
            return None
        import Stemmer

        return Stemmer.Stemmer("english")

    def _latin(self, words: list[str]) -> list[str]:
        words = [w.lower() for w in words]
        if self.config.english_stopwords:
            words = [w for w in words if w not in ENGLISH_STOPWORDS]
        if self._stemmer is not None:
            words = self._stemmer.stemWords(words)
        return words

    @staticmethod
    def _bigrams(run: str) -> list[str]:
        if len(run) == 1:
            return [run]
        return [run[i : i + 2] for i in range(len(run) - 1)]

    def _morphemes(self, text: str) -> list[str]:
        out: list[str] = []
        for m in sudachi_morphemes(text, self.config.sudachi_mode):
            surface = m.surface()
            if not CJK.search(surface):
                out.extend(self._latin(_WORD.findall(surface)))  # Sudachi would katakana-ise English words
            elif m.part_of_speech()[0] not in _DROP_POS:
                out.append(m.normalized_form())
        return out

    def content_words(self, text: str) -> list[tuple[str, str, bool]]:
        """Sudachi content words of Japanese text: (surface, normalised form, is a noun), in order."""
        out = []
        for m in sudachi_morphemes(text[:SUDACHI_MAX_CHARS], self.config.sudachi_mode):
            pos = m.part_of_speech()[0]
            if CJK.search(m.surface()) and pos in ("名詞", "動詞", "形容詞", "形状詞"):
                out.append((m.surface(), m.normalized_form(), pos == "名詞"))
        return out

    def tokens(self, text: str) -> list[str]:
        """The keyword tokens of a text."""
        if not CJK.search(text):
            return self._latin(_WORD.findall(text))
        japanese = self.config.japanese
        out: list[str] = []
        if japanese in ("sudachi", "sudachi+bigram"):
            out.extend(self._morphemes(text))
        if japanese in ("bigram", "sudachi+bigram"):
            prefix = "#" if japanese == "sudachi+bigram" else ""  # keep bigrams apart from 2-char words
            for run in CJK_RUN.findall(text):
                out.extend(prefix + g for g in self._bigrams(run))
            if japanese == "bigram":
                out.extend(self._latin(_WORD.findall(CJK_RUN.sub(" ", text))))
        return out


class _Matrix:
    """BM25 over every indexed chunk: a chunks x terms sparse matrix, searched by summing columns.

    A chunk embedded in several spaces (English text also in the multilingual space) has a row
    per space in the index but one row here: counted twice, it would halve its terms' idf.

    Changes after the build are applied in place (`update`): a changed or deleted chunk's row is
    masked out, new and changed chunks go to a small delta searched beside the base matrix, and
    document frequencies follow exactly. The matrix holds each term's BM25 term-frequency part
    and idf multiplies it at query time, so idf is exact after every change; the average length
    stays the one of the build (a few added chunks barely move it) until `stale()` says a
    rebuild would pay off.
    """

    def __init__(self, keys: list[tuple[str, str]], docs: list[list[str]], k1: float, b: float):
        from scipy import sparse

        self.k1, self.b = k1, b
        rows_of: dict[str, int] = {}
        self.keys: list[tuple[str, str]] = []  # (space, id) per row: the first space the chunk was seen in
        self.row_spaces: list[set[str]] = []
        kept: list[list[str]] = []
        for (space, cid), tokens in zip(keys, docs):
            row = rows_of.get(cid)
            if row is None:
                rows_of[cid] = len(self.keys)
                self.keys.append((space, cid))
                self.row_spaces.append({space})
                kept.append(tokens)
            else:
                self.row_spaces[row].add(space)
        docs = kept
        vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        lengths = np.zeros(len(docs), dtype=np.float32)
        for row, tokens in enumerate(docs):
            lengths[row] = len(tokens)
            for term, tf in Counter(tokens).items():
                col = vocab.setdefault(term, len(vocab))
                rows.append(row)
                cols.append(col)
                tfs.append(tf)
        self.vocab = vocab
        n = len(docs)
        self.n = n  # live chunks (base rows not masked out, plus the delta)
        self.base_n = n
        tf = np.asarray(tfs, dtype=np.float32)
        rows_a = np.asarray(rows, dtype=np.int32)
        cols_a = np.asarray(cols, dtype=np.int32)
        self.df = np.bincount(cols_a, minlength=len(vocab)).astype(np.float64)
        self.avgdl = float(lengths.mean()) if n else 1.0
        weights = self._tf_part(tf, lengths[rows_a])
        self.base_terms = max(len(vocab), 1)
        self.matrix = sparse.csc_matrix((weights, (rows_a, cols_a)), shape=(n, self.base_terms))
        self._csr = None  # row-major copy, made at the first change of a base row
        self.alive = np.ones(n, dtype=bool)
        self._rows_of = rows_of
        self.delta: dict[str, tuple[tuple[str, str], set[str], Counter, int]] = {}  # id -> (key, spaces, tf, length)
        self._delta_matrix = None

    def _tf_part(self, tf, length):
        norm = self.k1 * (1.0 - self.b + self.b * length / max(self.avgdl, 1e-9))
        return tf * (self.k1 + 1.0) / (tf + norm)

    def _idf(self, cols) -> np.ndarray:
        df = self.df[cols]
        return np.log(1.0 + (self.n - df + 0.5) / (df + 0.5))  # Lucene's BM25 idf: never negative

    # -- changes ---------------------------------------------------------------------------
    def _remove(self, cid: str) -> None:
        entry = self.delta.pop(cid, None)
        if entry is not None:
            for term in entry[2]:
                self.df[self.vocab[term]] -= 1
            self.n -= 1
            return
        row = self._rows_of.get(cid)
        if row is None or not self.alive[row]:
            return
        if self._csr is None:
            self._csr = self.matrix.tocsr()
        start, end = self._csr.indptr[row], self._csr.indptr[row + 1]
        self.df[self._csr.indices[start:end]] -= 1
        self.alive[row] = False
        self.n -= 1

    def update(self, upserts: dict[str, tuple[set[str], Sequence[str]]], removed: Iterable[str] = ()) -> None:
        """Apply changes: upserts give each new or changed chunk's spaces and tokens; removed chunks go."""
        self._delta_matrix = None
        for cid in removed:
            self._remove(cid)
        for cid, (spaces, tokens) in upserts.items():
            self._remove(cid)
            counts = Counter(tokens)
            for term in counts:
                col = self.vocab.get(term)
                if col is None:
                    col = self.vocab[term] = len(self.vocab)
                    if col >= len(self.df):
                        self.df = np.concatenate([self.df, np.zeros(max(len(self.df), 1024))])
                self.df[col] += 1
            self.delta[cid] = ((min(spaces), cid), set(spaces), counts, len(tokens))
            self.n += 1

    def set_spaces(self, cid: str, spaces: set[str]) -> None:
        """Record that a chunk (same tokens) is now indexed in these spaces."""
        if cid in self.delta:
            key, _, counts, length = self.delta[cid]
            self.delta[cid] = ((min(spaces), cid), set(spaces), counts, length)
            self._delta_matrix = None
        elif cid in self._rows_of:
            row = self._rows_of[cid]
            self.row_spaces[row] = set(spaces)
            self.keys[row] = (min(spaces), cid)

    def spaces(self, cid: str) -> set[str]:
        """The spaces a chunk is indexed in (empty when it is not)."""
        if cid in self.delta:
            return self.delta[cid][1]
        row = self._rows_of.get(cid)
        return self.row_spaces[row] if row is not None and self.alive[row] else set()

    def _delta(self):
        """The delta as a sparse matrix (made again at the first search after a change), its keys and spaces."""
        if self._delta_matrix is None:
            from scipy import sparse

            rows, cols, tfs, lengths = [], [], [], []
            entries = list(self.delta.values())
            for i, (_, _, counts, length) in enumerate(entries):
                for term, tf in counts.items():
                    rows.append(i)
                    cols.append(self.vocab[term])
                    tfs.append(tf)
                    lengths.append(length)
            weights = self._tf_part(np.asarray(tfs, dtype=np.float32), np.asarray(lengths, dtype=np.float32))
            matrix = sparse.csc_matrix((weights, (rows, cols)), shape=(len(entries), max(len(self.vocab), 1)))
            self._delta_matrix = (matrix, [e[0] for e in entries], [e[1] for e in entries])
        return self._delta_matrix

    def stale(self) -> bool:
        """Whether enough changed since the build that rebuilding would pay off (delta over a tenth of the base)."""
        return len(self.delta) > max(2000, self.base_n // 10)

    # -- reads -----------------------------------------------------------------------------
    def search(self, tokens: Sequence[str], k: int, space: str | None = None) -> list[tuple[tuple[str, str], float]]:
        """The k best rows sharing a token with the question (only those of space, when given)."""
        cols = sorted({self.vocab[t] for t in tokens if t in self.vocab})
        if not cols or k <= 0:
            return []
        idf = self._idf(cols)
        base_cols = [i for i, c in enumerate(cols) if c < self.base_terms]
        if base_cols and self.base_n:
            scores = np.asarray(self.matrix[:, [cols[i] for i in base_cols]] @ idf[base_cols]).ravel()
            if self._csr is not None:  # some base row was changed or deleted
                scores[~self.alive] = 0.0
        else:
            scores = np.zeros(self.base_n)
        keys: list[tuple[str, str]] = self.keys
        spaces_of: list[set[str]] = self.row_spaces
        if self.delta:
            delta, delta_keys, delta_spaces = self._delta()
            extra = np.asarray(delta[:, cols] @ idf).ravel()
            scores = np.concatenate([scores, extra])
            keys = keys + delta_keys
            spaces_of = spaces_of + delta_spaces
        hit = np.flatnonzero(scores > 0)
        if space is not None:
            hit = np.asarray([i for i in hit if space in spaces_of[i]], dtype=np.int64)
            if not len(hit):
                return []
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        hit = hit[np.argsort(-scores[hit], kind="stable")]
        key = (lambda i: (space, keys[i][1])) if space is not None else (lambda i: keys[i])
        return [(key(i), float(scores[i])) for i in hit]

    def idf_of(self, term: str) -> float:
        """A term's idf; a term no chunk holds gets the idf of a term held by one chunk."""
        col = self.vocab.get(term)
        if col is None or self.df[col] <= 0:
            return float(np.log(1.0 + (self.n - 1 + 0.5) / 1.5)) if self.n else 0.0
        return float(self._idf([col])[0])

    def terms_of(self, cid: str, terms: Sequence[str]) -> set[str]:
        """Which of the terms the chunk holds."""
        if cid in self.delta:
            counts = self.delta[cid][2]
            return {t for t in set(terms) if counts.get(t)}
        row = self._rows_of.get(cid)
        if row is None or not self.alive[row]:
            return set()
        cols = [(t, self.vocab[t]) for t in set(terms) if t in self.vocab and self.vocab[t] < self.base_terms]
        if not cols:
            return set()
        values = self.matrix[row, [c for _, c in cols]].toarray().ravel()
        return {t for (t, _), v in zip(cols, values) if v > 0}

    def terms_of_many(self, cids: Sequence[str], terms: Sequence[str]) -> dict[str, set[str]]:
        """terms_of for many chunks in one slice of the matrix (the relevance decision asks for
        every candidate of a question: one scipy slice per chunk cost ~0.7 ms each)."""
        out: dict[str, set[str]] = {}
        base: list[tuple[str, int]] = []
        for cid in cids:
            row = self._rows_of.get(cid)
            if cid in self.delta:
                out[cid] = self.terms_of(cid, terms)
            elif row is None or not self.alive[row]:
                out[cid] = set()
            else:
                base.append((cid, row))
        cols = [(t, self.vocab[t]) for t in set(terms) if t in self.vocab and self.vocab[t] < self.base_terms]
        if not base or not cols:
            out.update({cid: set() for cid, _ in base})
            return out
        sub = self.matrix[:, [c for _, c in cols]].tocsr()[[r for _, r in base]]
        held = sub.toarray() > 0
        for (cid, _), flags in zip(base, held):
            out[cid] = {t for (t, _), f in zip(cols, flags) if f}
        return out


class KeywordIndex(Protocol):
    """The keyword channel as the knowledge base and the retriever see it: tokens written with the
    chunks, BM25 searched across spaces. `LocalKeywordIndex` keeps it in a SQLite file of the data
    dir (one process: embedded Chroma); `SharedKeywordIndex` keeps it in the Chroma server beside
    the vectors, so every process serving that store follows every other's writes."""

    analyzer: Analyzer

    def refresh(self, force: bool = False) -> None:
        """Take in what other processes wrote (cheap and rate-limited unless forced; a no-op locally)."""

    def is_current(self) -> bool:
        """Whether the stored tokens were made by the configured analysis (else rebuild them)."""

    def reports_others(self) -> bool:
        """Whether watch() listeners now hear of other processes' writes (the shared index, once loaded)."""

    def watch(self, listener) -> None:
        """Call listener(keys) with the (space, chunk id) keys other processes wrote or deleted, None for all."""

    def total(self) -> int: ...
    def count(self, space: str) -> int: ...
    def ids(self, space: str) -> set[str]: ...
    def add(self, space: str, ids: Sequence[str], texts: Sequence[str]) -> None: ...
    def delete(self, space: str, ids: Iterable[str]) -> None: ...
    def drop(self, space: str) -> None: ...
    def clear(self) -> None: ...
    def warm(self) -> None: ...
    def close(self) -> None: ...
    def query_terms(self, query: str) -> list[str]: ...
    def search_terms(self, terms: Sequence[str], k: int) -> list[tuple[tuple[str, str], float]]: ...
    def chunk_terms(self, ids: Sequence[str], terms: Sequence[str]) -> dict[str, set[str]]: ...
    def spaces_of(self, ids: Sequence[str]) -> dict[str, set[str]]: ...
    def shares(self, terms: Sequence[str], matched: dict[str, set[str]]) -> dict[str, float]: ...
    def search(self, space: str, query: str, k: int) -> list[tuple[str, float]]: ...
    def search_all(self, query: str, k: int) -> list[tuple[tuple[str, str], float]]: ...


def _token_string(analyzer: Analyzer, text: str) -> str:
    return " ".join(t.replace(" ", "_") for t in analyzer.tokens(text))


class _Searching:
    """The searches both implementations share, over the `_matrix()` each keeps."""

    analyzer: Analyzer
    config: KeywordConfig
    _lock: threading.RLock  # writes change the matrix in place: reads hold the lock

    def _matrix(self) -> _Matrix:  # pragma: no cover - each implementation has its own
        raise NotImplementedError

    def warm(self) -> None:
        """Build the BM25 matrix now rather than at the first search."""
        self._matrix()

    def _query_tokens(self, query: str) -> list[str]:
        return [t.replace(" ", "_") for t in self.analyzer.tokens(query)]

    def query_terms(self, query: str) -> list[str]:
        """A question's keyword terms, as searched."""
        return self._query_tokens(query)

    def search_terms(self, terms: Sequence[str], k: int) -> list[tuple[tuple[str, str], float]]:
        """The k best ((space, id), BM25 score) across every space for terms already analysed."""
        if not terms:
            return []
        with self._lock:
            return self._matrix().search(terms, k)

    def chunk_terms(self, ids: Sequence[str], terms: Sequence[str]) -> dict[str, set[str]]:
        """Per chunk id, which of the terms it holds."""
        with self._lock:
            return self._matrix().terms_of_many(ids, terms)

    def spaces_of(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """Per chunk id, the spaces it is indexed in (those it is embedded in)."""
        out = {}
        with self._lock:
            matrix = self._matrix()
            for cid in ids:
                spaces = matrix.spaces(cid)
                if spaces:
                    out[cid] = set(spaces)
        return out

    def shares(self, terms: Sequence[str], matched: dict[str, set[str]]) -> dict[str, float]:
        """Per chunk id, the idf-weighted share of a question's content terms it holds (keyword evidence);
        `matched` gives each chunk's terms, as chunk_terms does.

        Content terms: words, not the character bigrams kept beside them, nor the words a
        Japanese question asks with (何, どの, ...). A term no chunk holds weighs as much as the
        rarest one, so a question about something absent stays unmatched.
        """
        from rag.lang import QUESTION_WORDS_JA

        content = {t for t in terms if not t.startswith("#") and t not in QUESTION_WORDS_JA}
        if not content:
            return {cid: 0.0 for cid in matched}
        with self._lock:
            matrix = self._matrix()
            idf = {t: matrix.idf_of(t) for t in content}
        total = sum(idf.values())
        if total <= 0:
            return {cid: 0.0 for cid in matched}
        return {cid: sum(idf[t] for t in content & held) / total for cid, held in matched.items()}

    def search(self, space: str, query: str, k: int) -> list[tuple[str, float]]:
        """The k best (id, BM25 score) of one space for a question; only chunks sharing a token."""
        tokens = self._query_tokens(query)
        if not tokens:
            return []
        with self._lock:
            return [(cid, score) for (_, cid), score in self._matrix().search(tokens, k, space)]

    def search_all(self, query: str, k: int) -> list[tuple[tuple[str, str], float]]:
        """The k best ((space, id), BM25 score) across every space, as one ranking.

        One index over all spaces, not one per space: the analysis is the same for every space,
        so scores (and document frequencies) are comparable, and a space holding a handful of
        chunks cannot put its weak matches at the top of a ranking of its own.
        """
        return self.search_terms(self._query_tokens(query), k)


class LocalKeywordIndex(_Searching):
    """Per-space BM25 over chunk tokens kept in SQLite (one process); persistent when given a file path."""

    def __init__(self, path: Path | str | None, config: KeywordConfig):
        self.config = config
        self.analyzer = Analyzer(config)
        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS chunks (id TEXT NOT NULL, space TEXT NOT NULL, tokens TEXT NOT NULL, PRIMARY KEY (space, id))")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self._lock = threading.RLock()
        self._all: _Matrix | None = None  # built at the first search, then kept in step with each write

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def refresh(self, force: bool = False) -> None:
        """Nothing to take in: this process is the only writer (embedded Chroma is single-process)."""

    def reports_others(self) -> bool:
        """No other process writes here (embedded Chroma is single-process)."""
        return False

    def watch(self, listener) -> None:
        """Nothing to report: this process is the only writer."""

    # -- bookkeeping -----------------------------------------------------------------------
    def is_current(self) -> bool:
        """Whether the stored tokens were made by the configured analysis (else rebuild them)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='analyzer'").fetchone()
        if row is None:
            return self.total() == 0
        return row[0] == self.analyzer.signature()

    def _mark_current(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('analyzer', ?)", (self.analyzer.signature(),))

    def total(self) -> int:
        """Chunks indexed across all spaces."""
        return self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def count(self, space: str) -> int:
        """Chunks indexed in a space."""
        return self._db.execute("SELECT COUNT(*) FROM chunks WHERE space=?", (space,)).fetchone()[0]

    def ids(self, space: str) -> set[str]:
        """Ids indexed in a space."""
        return {r[0] for r in self._db.execute("SELECT id FROM chunks WHERE space=?", (space,))}

    # -- writes ----------------------------------------------------------------------------
    def _follow(self, upserts: dict[str, tuple[set[str], Sequence[str]]], removed: Iterable[str] = ()) -> None:
        """Keep a built matrix in step with a write (or drop it when a rebuild pays off)."""
        if self._all is None:
            return
        self._all.update(upserts, removed)
        if self._all.stale():
            self._all = None

    def add(self, space: str, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index chunks (an existing id is replaced)."""
        rows = [(cid, space, _token_string(self.analyzer, text)) for cid, text in zip(ids, texts)]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?)", rows)
            self._mark_current()
            self._db.commit()
            if self._all is not None:
                self._follow({cid: (self._all.spaces(cid) | {space}, tokens.split()) for cid, _, tokens in rows})

    def delete(self, space: str, ids: Iterable[str]) -> None:
        """Remove chunks (missing ids are ignored)."""
        ids = list(ids)
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM chunks WHERE space=? AND id=?", [(space, cid) for cid in ids])
            self._db.commit()
            if self._all is not None:
                gone = []
                for cid in ids:
                    left = self._all.spaces(cid) - {space}
                    if left:
                        self._all.set_spaces(cid, left)
                    else:
                        gone.append(cid)
                self._follow({}, gone)

    def drop(self, space: str) -> None:
        """Remove a whole space."""
        with self._lock:
            self._db.execute("DELETE FROM chunks WHERE space=?", (space,))
            self._db.commit()
            self._all = None

    def clear(self) -> None:
        """Remove everything (before a rebuild with another analysis)."""
        with self._lock:
            self._db.execute("DELETE FROM chunks")
            self._mark_current()
            self._db.commit()
            self._all = None

    # -- reads -----------------------------------------------------------------------------
    def _matrix(self) -> _Matrix:
        with self._lock:
            if self._all is None:
                keys, docs = [], []
                for space, cid, tokens in self._db.execute("SELECT space, id, tokens FROM chunks ORDER BY space, id"):
                    keys.append((space, cid))
                    docs.append(tokens.split())
                self._all = _Matrix(keys, docs, self.config.k1, self.config.b)
            return self._all


HEAD_ID = "~head"  # the record every writer bumps: generation, epoch, analysis
_NO_VECTOR = [0.0]  # Chroma wants a vector per record (else it embeds the document with a downloaded model)


class SharedKeywordIndex(_Searching):
    """The keyword channel kept in the Chroma server beside the vectors, followed by every process.

    One record per (space, chunk) in the collection `<prefix>-keywords`, all in its metadata:
    the chunk's token string (`tokens`; not a document, which Chroma would full-text index at
    three times the cost of the write), the space and chunk, `gone` (a deletion leaves a
    tombstone) and `gen`, the generation of the write. A head record holds the latest generation,
    an epoch (a new one when a space is dropped or the index cleared: everyone reloads) and the
    analysis signature. Generations are microseconds of the writer's clock, never below the
    head's plus one, so they order writes even across hosts whose clocks differ.

    Each process keeps every token string and the BM25 matrix in memory. `refresh()` (rate-
    limited: at most every `refresh_s`) reads the head, one small request; when it moved, it
    reads the records whose generation is within `window_s` of the newest one applied (writes
    still landing when the head moved are read again, applied once) and updates the matrix in
    place. A process started with an empty data dir loads every record once.
    """

    def __init__(
        self,
        collection,
        config: KeywordConfig,
        refresh_s: float = 0.5,
        window_s: float = 10.0,
        retention_s: float = 86_400.0,
        batch: int = 1000,
        location: str = "the configured address",
    ):
        self.config = config
        self.location = location
        self.analyzer = Analyzer(config)
        self._col = collection
        self.refresh_s = refresh_s
        self._window = int(window_s * 1e6)
        self._retention = int(retention_s * 1e6)
        self._batch = batch
        self._lock = threading.RLock()
        self._rows: dict[tuple[str, str], str] = {}  # (space, id) -> token string
        self._applied: dict[tuple[str, str], int] = {}  # (space, id) -> generation applied (tombstones too)
        self._spaces: dict[str, set[str]] = {}  # id -> spaces holding it
        self._all: _Matrix | None = None
        self._loaded = False
        self._epoch: str | None = None
        self._head_gen: int | None = None
        self._watermark = 0  # the newest generation applied
        self._checked = -math.inf  # monotonic time of the last head check
        self._purged = 0
        self.stats = Counter()  # head checks, pulls, rows pulled, loads (for benchmarks and tests)
        self._listeners: list = []  # told of every (space, chunk) another process changed (rag.cache)

    def _lost_server(self, exc: BaseException) -> str:
        return (
            f"Lost the Chroma server at {self.location} ({type(exc).__name__}) while writing the keyword index. "
            "Start it again (`chroma run ...`) and re-run the command; an interrupted ingest converges on the next run."
        )

    def close(self) -> None:
        """Forget the loaded state (the records stay in the server)."""
        with self._lock:
            self._all = None
            self._loaded = False

    # -- following other processes ---------------------------------------------------------
    def reports_others(self) -> bool:
        """Whether listeners hear of other processes' writes: once loaded (until then nobody follows the feed)."""
        return self._loaded

    def watch(self, listener) -> None:
        """Call listener(keys) with the (space, chunk) keys each refresh finds changed; None when it reloads everything."""
        self._listeners.append(listener)

    def _tell(self, keys) -> None:
        for listener in self._listeners:
            listener(keys)

    def _head(self) -> dict | None:
        got = self._col.get(ids=[HEAD_ID], include=["metadatas"])
        return dict(got["metadatas"][0] or {}) if got["ids"] else None

    def _records(self, where: dict | None) -> Iterable[tuple[tuple[str, str], bool, str, int]]:
        step, offset = 5000, 0
        while True:
            got = self._col.get(where=where, include=["metadatas"], limit=step, offset=offset)
            for rid, meta in zip(got["ids"], got["metadatas"]):
                if rid != HEAD_ID:
                    yield (meta["space"], meta["chunk"]), bool(meta["gone"]), str(meta.get("tokens", "")), int(meta["gen"])
            if len(got["ids"]) < step:
                return
            offset += step

    def refresh(self, force: bool = False) -> None:
        """Take in what other processes wrote since the last refresh (at most every refresh_s unless forced).

        A server that cannot be reached leaves the loaded index serving (logged), unless forced.
        """
        if not force and (not self._loaded or time.monotonic() - self._checked < self.refresh_s):
            return  # nothing loaded yet: the first search loads everything
        with self._lock:
            if not force and time.monotonic() - self._checked < self.refresh_s:
                return
            self._checked = time.monotonic()
            self.stats["checks"] += 1
            try:
                head = self._head()
                if head is None:
                    if not self._loaded or self._rows:
                        self._reset(None, 0)
                elif not self._loaded or head.get("epoch") != self._epoch or int(head["gen"]) - self._watermark > self._retention:
                    self._load(head)
                elif int(head["gen"]) != self._head_gen:
                    self._pull(head)
            except Exception as exc:
                if force or not self._loaded:
                    raise
                logger.warning("keyword channel: cannot read the shared index (%s: %s); serving what was loaded", type(exc).__name__, exc)

    def _reset(self, epoch: str | None, gen: int) -> None:
        self._rows, self._applied, self._spaces = {}, {}, {}
        self._all = None
        self._tell(None)
        self._loaded, self._epoch, self._head_gen, self._watermark = True, epoch, gen, gen

    def _load(self, head: dict) -> None:
        """Read every record (a new process, a dropped space, or a long absence)."""
        for _ in range(3):  # a write landing mid-read may shift the pages: read again when the head moved
            self._reset(head.get("epoch"), int(head["gen"]))
            self._apply(list(self._records(None)))
            after = self._head()
            if after == head:
                break
            head = after or head
        self._head_gen = self._watermark = int(head["gen"])
        self._epoch = head.get("epoch")
        self.stats["loads"] += 1

    def _pull(self, head: dict) -> None:
        """Read the records written since the last refresh (and those of the window before it)."""
        rows = list(self._records({"gen": {"$gt": self._watermark - self._window}}))
        self.stats["pulls"] += 1
        self.stats["rows_pulled"] += len(rows)
        self._apply(rows)
        self._head_gen = int(head["gen"])
        self._watermark = max([self._watermark, int(head["gen"])] + [gen for *_, gen in rows])

    def _apply(self, rows: Sequence[tuple[tuple[str, str], bool, str, int]]) -> None:
        changed: set[str] = set()
        written: list[tuple[str, str]] = []
        for key, gone, tokens, gen in rows:
            if self._applied.get(key) == gen:
                continue
            self._applied[key] = gen
            written.append(key)
            space, cid = key
            if gone:
                if self._rows.pop(key, None) is not None:
                    self._spaces[cid].discard(space)
                    changed.add(cid)
            else:
                self._rows[key] = tokens
                self._spaces.setdefault(cid, set()).add(space)
                changed.add(cid)
        if written:
            self._tell(written)
        upserts, removed = {}, []
        for cid in changed:
            spaces = self._spaces.get(cid)
            if not spaces:
                self._spaces.pop(cid, None)
                removed.append(cid)
            else:
                upserts[cid] = (set(spaces), self._rows[(min(spaces), cid)].split())
        if self._all is not None and (upserts or removed):
            self._all.update(upserts, removed)
            if self._all.stale():
                self._all = self._build()

    def _build(self) -> _Matrix:
        keys = sorted(self._rows)
        return _Matrix(keys, [self._rows[key].split() for key in keys], self.config.k1, self.config.b)

    def _matrix(self) -> _Matrix:
        with self._lock:
            if not self._loaded:
                self.refresh(force=True)
            if self._all is None:
                self._all = self._build()
            return self._all

    # -- bookkeeping -----------------------------------------------------------------------
    def is_current(self) -> bool:
        """Whether the stored tokens were made by the configured analysis (else rebuild them)."""
        head = self._head()
        return head is None or head.get("analyzer") == self.analyzer.signature()

    def _stored_ids(self, where: dict) -> set[tuple[str, str]]:
        step, offset, found = 10_000, 0, set()
        while True:
            got = self._col.get(where=where, include=[], limit=step, offset=offset)
            found.update(tuple(rid.split("/", 1)) for rid in got["ids"] if rid != HEAD_ID)  # ids are space/chunk
            if len(got["ids"]) < step:
                return found
            offset += step

    def _count(self, where: dict) -> int:
        """Records matching where, counted page by page (no set of every id: a command's open stays flat)."""
        step, offset, n = 10_000, 0, 0
        while True:
            got = self._col.get(where=where, include=[], limit=step, offset=offset)
            n += sum(1 for rid in got["ids"] if rid != HEAD_ID)
            if len(got["ids"]) < step:
                return n
            offset += step

    def total(self) -> int:
        """Chunks indexed across all spaces."""
        return self._count({"gone": False})

    def count(self, space: str) -> int:
        """Chunks indexed in a space."""
        return self._count({"$and": [{"space": space}, {"gone": False}]})

    def ids(self, space: str) -> set[str]:
        """Ids indexed in a space (asked of the server: an ingest does not load the tokens)."""
        return {cid for _, cid in self._stored_ids({"$and": [{"space": space}, {"gone": False}]})}

    # -- writes ----------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, str]:
        head = self._head()
        now = time.time_ns() // 1000
        if head is None:
            return now, uuid.uuid4().hex
        return max(now, int(head["gen"]) + 1), str(head.get("epoch"))

    def _bump(self, gen: int, epoch: str) -> None:
        if gen - self._purged > self._retention // 10:  # tombstones older than the retention go
            self._col.delete(where={"$and": [{"gone": True}, {"gen": {"$lt": gen - self._retention}}]})
            self._purged = gen
        meta = {"gen": gen, "epoch": epoch, "analyzer": self.analyzer.signature(), "space": "", "chunk": "", "gone": False}
        self._col.upsert(ids=[HEAD_ID], embeddings=[_NO_VECTOR], metadatas=[meta])

    def _write(self, space: str, ids: Sequence[str], tokens: Sequence[str], gone: bool) -> None:
        # the requests run outside the lock: this process's questions keep being answered meanwhile
        last = {cid: tok for cid, tok in zip(ids, tokens)}  # an id twice in one write: the last one wins
        ids, tokens = list(last), list(last.values())
        for start in range(0, len(ids), self._batch):  # one generation per request: each is visible before its head
            part, toks = ids[start : start + self._batch], tokens[start : start + self._batch]
            gen, epoch = self._stamp()
            self._col.upsert(
                ids=[f"{space}/{cid}" for cid in part],
                embeddings=[_NO_VECTOR] * len(part),
                metadatas=[{"space": space, "chunk": cid, "gen": gen, "gone": gone, "tokens": tok} for cid, tok in zip(part, toks)],
            )
            self._bump(gen, epoch)
            with self._lock:
                if self._loaded and epoch == self._epoch:  # this process sees its own writes at once
                    self._apply([((space, cid), gone, "" if gone else tok, gen) for cid, tok in zip(part, toks)])

    @server_errors
    def add(self, space: str, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index chunks (an existing id is replaced); every process takes them in at its next refresh."""
        ids = list(ids)
        if ids:
            self._write(space, ids, [_token_string(self.analyzer, text) for text in texts], gone=False)

    @server_errors
    def delete(self, space: str, ids: Iterable[str]) -> None:
        """Remove chunks (tombstones, so other processes learn of it; missing ids are ignored)."""
        ids = list(ids)
        if ids:
            self._write(space, ids, [""] * len(ids), gone=True)

    @server_errors
    def _new_epoch(self, where: dict) -> None:
        with self._lock:
            gen, _ = self._stamp()
            self._col.delete(where=where)
            self._bump(gen, uuid.uuid4().hex)
            self._checked = -math.inf  # reload at the next search

    def drop(self, space: str) -> None:
        """Remove a whole space (every process reloads)."""
        self._new_epoch({"space": space})

    def clear(self) -> None:
        """Remove everything (before a rebuild with another analysis; every process reloads)."""
        self._new_epoch({"gen": {"$gte": 0}})


def bm25_idf(n: int, df: int) -> float:
    """Lucene's BM25 idf (exposed for tests)."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
