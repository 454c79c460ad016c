"""The keyword channel: a BM25 index that understands English and Japanese, kept beside the vectors.

Why our own index rather than bm25s: bm25s cannot add or remove documents, so every ingest
(and every deleted file) would mean re-tokenizing the whole corpus. Here each chunk's tokens
are stored once, in SQLite in the data directory, when the knowledge base writes the chunk;
deleting a chunk deletes its row. The BM25 weight matrix (one over every space: questions
are ranked across spaces at once) is derived from those rows in memory (sparse, term-major,
like bm25s's eager scoring) at the first search after a change, and a restart loads the rows
again without re-reading any source file.

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
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from rag.config import KeywordConfig
from rag.lang import CJK, CJK_RUN, ENGLISH_STOPWORDS, SUDACHI_MAX_CHARS, sudachi_morphemes

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
    """BM25 weights of every indexed chunk: a chunks x terms sparse matrix, searched by summing columns.

    A chunk embedded in several spaces (English text also in the multilingual space) has a row
    per space in the index but one row here: counted twice, it would halve its terms' idf.
    """

    def __init__(self, keys: list[tuple[str, str]], docs: list[list[str]], k1: float, b: float):
        from scipy import sparse

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
        self.n = n
        tf = np.asarray(tfs, dtype=np.float32)
        rows_a = np.asarray(rows, dtype=np.int32)
        cols_a = np.asarray(cols, dtype=np.int32)
        df = np.bincount(cols_a, minlength=len(vocab)).astype(np.float32)
        self.df = df
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))  # Lucene's BM25 idf: never negative
        self.idf = idf
        avgdl = float(lengths.mean()) if n else 1.0
        norm = k1 * (1.0 - b + b * lengths[rows_a] / max(avgdl, 1e-9))
        weights = idf[cols_a] * tf * (k1 + 1.0) / (tf + norm)
        self.matrix = sparse.csc_matrix((weights, (rows_a, cols_a)), shape=(n, max(len(vocab), 1)))
        self._rows_of = rows_of

    def search(self, tokens: Sequence[str], k: int, space: str | None = None) -> list[tuple[tuple[str, str], float]]:
        """The k best rows sharing a token with the question (only those of space, when given)."""
        cols = sorted({self.vocab[t] for t in tokens if t in self.vocab})
        if not cols or k <= 0:
            return []
        scores = np.asarray(self.matrix[:, cols].sum(axis=1)).ravel()
        hit = np.flatnonzero(scores > 0)
        if space is not None:
            hit = np.asarray([i for i in hit if space in self.row_spaces[i]], dtype=np.int64)
            if not len(hit):
                return []
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        hit = hit[np.argsort(-scores[hit], kind="stable")]
        key = (lambda i: (space, self.keys[i][1])) if space is not None else (lambda i: self.keys[i])
        return [(key(i), float(scores[i])) for i in hit]

    def idf_of(self, term: str) -> float:
        """A term's idf; a term no chunk holds gets the idf of a term held by one chunk."""
        col = self.vocab.get(term)
        if col is None:
            return float(np.log(1.0 + (self.n - 1 + 0.5) / 1.5)) if self.n else 0.0
        return float(self.idf[col])

    def terms_of(self, cid: str, terms: Sequence[str]) -> set[str]:
        """Which of the terms the chunk holds."""
        row = self._rows_of.get(cid)
        if row is None:
            return set()
        cols = [(t, self.vocab[t]) for t in set(terms) if t in self.vocab]
        if not cols:
            return set()
        values = self.matrix[row, [c for _, c in cols]].toarray().ravel()
        return {t for (t, _), v in zip(cols, values) if v > 0}


class KeywordIndex:
    """Per-space BM25 over stored chunk tokens; persistent when given a file path."""

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
        self._all: _Matrix | None = None  # built at the first search after a change

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

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
    def add(self, space: str, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index chunks (an existing id is replaced)."""
        rows = [(cid, space, " ".join(t.replace(" ", "_") for t in self.analyzer.tokens(text))) for cid, text in zip(ids, texts)]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?)", rows)
            self._mark_current()
            self._db.commit()
            self._all = None

    def delete(self, space: str, ids: Iterable[str]) -> None:
        """Remove chunks (missing ids are ignored)."""
        ids = list(ids)
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM chunks WHERE space=? AND id=?", [(space, cid) for cid in ids])
            self._db.commit()
            self._all = None

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
        return self._matrix().search(terms, k) if terms else []

    def chunk_terms(self, ids: Sequence[str], terms: Sequence[str]) -> dict[str, set[str]]:
        """Per chunk id, which of the terms it holds."""
        matrix = self._matrix()
        return {cid: matrix.terms_of(cid, terms) for cid in ids}

    def spaces_of(self, ids: Sequence[str]) -> dict[str, set[str]]:
        """Per chunk id, the spaces it is indexed in (those it is embedded in)."""
        matrix = self._matrix()
        out = {}
        for cid in ids:
            row = matrix._rows_of.get(cid)
            if row is not None:
                out[cid] = matrix.row_spaces[row]
        return out

    def share(self, terms: Sequence[str], matched: set[str]) -> float:
        """The idf-weighted share of a question's content terms that a chunk holds (keyword evidence).

        Content terms: words, not the character bigrams kept beside them, nor the words a
        Japanese question asks with (何, どの, ...). A term no chunk holds weighs as much as the
        rarest one, so a question about something absent stays unmatched.
        """
        from rag.lang import QUESTION_WORDS_JA

        content = {t for t in terms if not t.startswith("#") and t not in QUESTION_WORDS_JA}
        if not content:
            return 0.0
        matrix = self._matrix()
        total = sum(matrix.idf_of(t) for t in content)
        got = sum(matrix.idf_of(t) for t in content & matched)
        return got / total if total > 0 else 0.0

    def search(self, space: str, query: str, k: int) -> list[tuple[str, float]]:
        """The k best (id, BM25 score) of one space for a question; only chunks sharing a token."""
        tokens = self._query_tokens(query)
        return [(cid, score) for (_, cid), score in self._matrix().search(tokens, k, space)] if tokens else []

    def search_all(self, query: str, k: int) -> list[tuple[tuple[str, str], float]]:
        """The k best ((space, id), BM25 score) across every space, as one ranking.

        One index over all spaces, not one per space: the analysis is the same for every space,
        so scores (and document frequencies) are comparable, and a space holding a handful of
        chunks cannot put its weak matches at the top of a ranking of its own.
        """
        tokens = self._query_tokens(query)
        return self._matrix().search(tokens, k) if tokens else []


def bm25_idf(n: int, df: int) -> float:
    """Lucene's BM25 idf (exposed for tests)."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
