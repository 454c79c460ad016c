"""The one relevance decision: whether a retrieved passage answers to the question at all.

Search, `ask` and both bots go through it (rag.retrieval), so they agree on "not found".
A passage is relevant when either
- its cosine similarity to the question, in a space that can read the question's language,
  reaches that space's floor (`embedding.spaces.<name>.min_score`; each model has its own
  scale). A chunk embedded in several spaces is judged in the first of its spaces that reads
  the question (English chunks: MiniLM for English questions, the multilingual e5 space for
  Japanese ones), so a cosine from a model that cannot read the question never decides; or
- it holds most of the question's rare terms: the idf-weighted share of the question's
  keyword terms found in it reaches `retrieval.keyword.min_share`. An exact match of a rare
  name (KubeRay, a product code) counts whatever the cosine says.
Both thresholds are calibrated by benchmarks/bench_answer.py (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from rag.config import EmbeddingConfig, RetrievalConfig
from rag.lang import detect_lang
from rag.records import Passage


class Judge:
    """Which space judges a passage, and the decision itself."""

    def __init__(self, embedding: EmbeddingConfig, retrieval: RetrievalConfig):
        self.embedding = embedding
        self.retrieval = retrieval

    def space_of(self, passage: Passage, question_lang: str, searched: Mapping[str, object], found_in: str) -> str:
        """The space whose cosine decides: the first space holding the passage that reads the question."""
        lang = str(passage.metadata.get("lang") or detect_lang(passage.text))
        holders = [s for s in self.embedding.spaces_for(lang) if s in searched]
        readers = [s for s in holders if self.embedding.reads(s, question_lang)]
        return (readers or holders or [found_in])[0]

    def floor(self, space: str) -> float | None:
        """The cosine floor of a space (None: no floor)."""
        cfg = self.embedding.spaces.get(space)
        return cfg.min_score if cfg is not None else None

    def relevant(self, space: str, cosine: float, keyword_share: float) -> bool:
        """The decision: cosine at or above the space's floor, or enough of the question's rare terms."""
        floor = self.floor(space)
        if floor is None or cosine >= floor:
            return True
        kw = self.retrieval.keyword
        return kw.enabled and kw.min_share is not None and keyword_share >= kw.min_share
