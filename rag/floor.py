"""The answer step's retrieval: the retriever's one relevance decision, plus the closest sources.

`retrieve(question, k, where=None, lang=None)` returns the relevant passages ([] when none is:
the answer says "not found"); `closest` names the nearest sources in that case without a
second search. The decision itself lives in rag.relevance and is the one `ragbot search` uses.
"""

from __future__ import annotations

import json
import logging
import threading

from rag.knowledge import KnowledgeBase
from rag.records import Passage

logger = logging.getLogger(__name__)


class FloorRetriever:
    """The knowledge base's retriever, remembering this thread's last search for `closest`."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        # this thread's last search: "not found" names the closest sources without a second search
        self._last = threading.local()

    def _search(self, question: str, k: int, where: dict | None, lang: str | None, reuse: bool) -> tuple[list[Passage], list[Passage]]:
        key = (question, json.dumps(where, sort_keys=True, default=str))
        last = getattr(self._last, "value", None)
        if reuse and last is not None and last[0] == key and last[1] >= k:
            return last[2]
        retriever = self.kb.retriever
        result = retriever.judged(question, k, where=where, lang=lang, relevant_only=retriever.config.floor)
        self._last.value = (key, k, result)
        return result

    def retrieve(self, question: str, k: int, where: dict | None = None, lang: str | None = None) -> list[Passage]:
        """The top k relevant passages ([] when none is relevant)."""
        if not question.strip():
            return []
        kept, nearest = self._search(question, k, where, lang, reuse=False)
        logger.debug("retrieved %d relevant, %d nearest", len(kept), len(nearest))
        return kept

    def closest(self, question: str, k: int, where: dict | None = None, lang: str | None = None) -> list[Passage]:
        """The nearest passages whatever the decision (to name sources when nothing is relevant)."""
        return self._search(question, k, where, lang, reuse=True)[1][:k]
