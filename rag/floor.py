"""The relevance floor over KnowledgeBase.search: a passage counts only above its space's floor.

Interim seam: the hybrid retriever (BM25 + vectors, fused, with its own floor) replaces this
behind the same call, `retrieve(question, k, where=None) -> list[Passage]`, returning []
when nothing is relevant.
"""

from __future__ import annotations

import json
import logging
import threading

from rag.config import AnswerConfig
from rag.knowledge import KnowledgeBase
from rag.records import Passage

logger = logging.getLogger(__name__)


def above_floor(passages: list[Passage], config: AnswerConfig) -> list[Passage]:
    """The passages whose cosine similarity reaches the floor of their space, order kept."""
    return [p for p in passages if p.score >= config.floor_for(p.space)]


class FloorRetriever:
    """KnowledgeBase.search with the per-space cosine floor from AnswerConfig."""

    def __init__(self, kb: KnowledgeBase, config: AnswerConfig):
        self.kb = kb
        self.config = config
        # this thread's last unfiltered search: "not found" names the closest sources without a second search
        self._last = threading.local()

    def _search(self, question: str, k: int, where: dict | None, reuse: bool) -> list[Passage]:
        key = (question, json.dumps(where, sort_keys=True, default=str))
        last = getattr(self._last, "value", None)
        if reuse and last is not None and last[0] == key and len(last[1]) >= k:
            return last[1][:k]
        # unfloored hybrid ranking: this module applies the answer floor, and "not found" can
        # still name the closest sources
        hits = self.kb.retriever.ranked(question, k, where=where, floor=False)
        self._last.value = (key, hits)
        return hits

    def retrieve(self, question: str, k: int, where: dict | None = None) -> list[Passage]:
        """The top k passages above the floor ([] when none is relevant)."""
        hits = self._search(question, k, where, reuse=False)
        kept = above_floor(hits, self.config)
        logger.debug("retrieved %d, %d above the floor", len(hits), len(kept))
        return kept

    def closest(self, question: str, k: int, where: dict | None = None) -> list[Passage]:
        """The nearest passages whatever their score (to name sources when nothing is relevant)."""
        return self._search(question, k, where, reuse=True)
