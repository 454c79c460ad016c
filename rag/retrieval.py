"""Hybrid retrieval: every embedding space and the keyword index, fused, floored and de-duplicated.

A question is embedded in every space that holds chunks (each with its own query prefix) and
searched there; the keyword index is searched once across all spaces (one BM25 ranking: the
analysis is the same everywhere, so scores compare, and a space holding a few chunks cannot
crowd the top). Spaces the question's language is not routed to count less
(`other_space_weight`): an English model ranks Japanese text at random, while e5 still finds
Japanese passages for an English question. Each of those rankings is a channel. Channels are
merged by weighted score fusion: raw cosines and BM25 scores are not comparable, so each
channel's scores are min-max scaled within the question's hits first (this keeps the gaps that
reciprocal rank fusion throws away, and measured better on both tuning sets,
docs/BENCHMARKS.md); `retrieval.fusion: rrf` gives reciprocal rank fusion. Each passage then
gets its cosine similarity to the question in its own space as its score, and passages below
the space's floor (`embedding.spaces.<name>.min_score`) are dropped: the answer step says "not
found" on an empty list. Neighbouring chunks of one source and near-copies are collapsed into
the best one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.config import RetrievalConfig
from rag.errors import ConfigError
from rag.lang import detect_lang
from rag.records import Passage

if TYPE_CHECKING:  # pragma: no cover
    from rag.knowledge import KnowledgeBase

logger = logging.getLogger(__name__)


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
    passages: dict[tuple[str, str], Passage] = field(default_factory=dict)  # (space, id) -> passage with cosine
    scores: dict[tuple[str, str], float] = field(default_factory=dict)  # (space, id) -> cosine, known before its text
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # space -> the question's vector


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


def _scored(p: Passage, score: float) -> Passage:
    return Passage(p.text, p.source, p.locator, score, p.space, p.id, p.metadata)


def _by_space(keys: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """(space, id) keys grouped into each space's ids, in order."""
    out: dict[str, list[str]] = {}
    for space, cid in keys:
        out.setdefault(space, []).append(cid)
    return out


class Retriever:
    """Hybrid search over a knowledge base; `retrieve` is what the answer step calls."""

    def __init__(self, kb: KnowledgeBase, config: RetrievalConfig | None = None, reranker: Reranker | None = None):
        self.kb = kb
        self.config = config or RetrievalConfig()
        if self.config.rerank and reranker is None:
            raise ConfigError(
                "retrieval.rerank is on, but no cross-encoder is available offline (none ships its weights in a "
                "PyPI package that works here). Set retrieval.rerank: false."
            )
        self.reranker = reranker
        self._checked: set[str] = set()

    # -- the steps -------------------------------------------------------------------------
    def candidates(self, question: str, where: dict | None = None) -> Candidates:
        """Run every channel for a question: dense search in each space, then one keyword search of all of them."""
        cfg = self.config
        found = Candidates(channels=[])
        home = self.kb.embedding.space_for(detect_lang(question))
        for space in self.kb.embedding.spaces:
            if self.kb.store.count(space) == 0:
                continue
            if space not in self._checked:  # the collection's model cannot change under a running knowledge base
                self.kb.store.check_model(space, self.kb.model_id(space))
                self._checked.add(space)
            vector = self.kb.embedder(space).embed_query(question)
            found.vectors[space] = vector
            hits = self.kb.store.nearest(space, vector, cfg.dense_k, where=where)  # texts are fetched only for the few kept
            keys = [(space, cid) for cid, _ in hits]
            found.scores.update(zip(keys, (score for _, score in hits)))
            weight = cfg.dense_weight * (1.0 if space == home else cfg.other_space_weight)
            found.channels.append(Channel(f"dense:{space}", weight, keys, [score for _, score in hits]))
        if cfg.keyword.enabled and cfg.keyword.weight > 0 and found.vectors:
            hits = [(key, score) for key, score in self.kb.keywords.search_all(question, cfg.keyword.k) if key[0] in found.vectors]
            if where is not None:  # the index holds no metadata: filter through the store
                for space, ids in _by_space([key for key, _ in hits]).items():
                    self._load(found, space, ids, where)
                hits = [(key, score) for key, score in hits if key in found.passages]
            found.channels.append(Channel("keyword", cfg.keyword.weight, [k for k, _ in hits], [s for _, s in hits]))
        return found

    def _load(self, found: Candidates, space: str, ids: Sequence[str], where: dict | None = None, floor: float | None = None) -> None:
        """Fetch the passages of ids not fetched yet, each scored by its cosine in the space.

        Dense hits already have their cosine: with a floor, those below it are never fetched.
        Keyword-only hits are fetched with their vectors to compute it.
        """
        missing = [cid for cid in ids if (space, cid) not in found.passages]
        known = [cid for cid in missing if (space, cid) in found.scores]
        unknown = [cid for cid in missing if (space, cid) not in found.scores]
        if floor is not None:
            known = [cid for cid in known if found.scores[(space, cid)] >= floor]
        vector = found.vectors[space]
        for cid, (passage, emb) in self.kb.store.passages(space, unknown, where=where).items():
            found.scores[(space, cid)] = float(np.dot(vector, emb) / max(float(np.linalg.norm(emb)), 1e-12))
            found.passages[(space, cid)] = _scored(passage, found.scores[(space, cid)])
        for cid, (passage, _) in self.kb.store.passages(space, known, vectors=False).items():
            found.passages[(space, cid)] = _scored(passage, found.scores[(space, cid)])

    def fused(self, found: Candidates) -> list[tuple[str, str]]:
        """The (space, id) keys of all candidates in fused order."""
        if self.config.fusion == "score":
            return [key for key, _ in fuse_scores([(c.keys, c.scores, c.weight) for c in found.channels])]
        return [key for key, _ in fuse([(c.keys, c.weight) for c in found.channels], self.config.rrf_k)]

    def _floor_of(self, space: str) -> float | None:
        return self.kb.embedding.spaces[space].min_score if space in self.kb.embedding.spaces else None

    def _passes_floor(self, p: Passage) -> bool:
        floor = self._floor_of(p.space)
        return floor is None or p.score >= floor

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

    # -- what callers use ------------------------------------------------------------------
    def ranked(self, question: str, depth: int, where: dict | None = None, floor: bool = True, collapse: bool = True) -> list[Passage]:
        """Up to depth passages, best first (eval uses this with floor and collapse off)."""
        found = self.candidates(question, where)
        order = self.fused(found)
        out: list[Passage] = []
        per_source: dict[str, int] = {}
        first = max(depth * 2, 20)
        # the first window usually fills the result; if the floor or the collapse empties it, fetch the rest at once
        for window in (order[:first], order[first:]):
            for space, ids in _by_space(window).items():
                self._load(found, space, ids, floor=self._floor_of(space) if floor else None)
            for key in window:
                p = found.passages.get(key)
                if p is None:  # gone from the store since the keyword index saw it
                    continue
                if floor and not self._passes_floor(p):
                    continue
                if collapse and self._collapses(p, out, per_source):
                    continue
                out.append(p)
                per_source[p.source] = per_source.get(p.source, 0) + 1
                if len(out) >= depth:
                    break
            if len(out) >= depth:
                break
        if self.reranker is not None and out:
            out = self.reranker.rerank(question, out)
        return out

    def retrieve(self, question: str, k: int = 5, where: dict | None = None) -> list[Passage]:
        """The k best passages above the relevance floor; an empty list means nothing relevant was found."""
        if not question.strip():
            return []
        return self.ranked(question, k, where=where, floor=self.config.floor, collapse=True)
