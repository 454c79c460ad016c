"""The knowledge base: embedding spaces over one store, searched together."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from rag.config import EmbeddingConfig
from rag.embedders import Embedder, build_embedder
from rag.records import Passage
from rag.store import VectorStore

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.)


class KnowledgeBase:
    """Embedders for the configured spaces and the store that holds their vectors."""

    def __init__(
        self,
        embedding: EmbeddingConfig,
        store: VectorStore,
        embedders: Mapping[str, Embedder] | None = None,
    ):
        self.embedding = embedding
        self.store = store
        self._embedders: dict[str, Embedder] = dict(embedders or {})

    def embedder(self, space: str) -> Embedder:
        """The embedder of a space, built (not yet loaded) on first use."""
        if space not in self._embedders:
            self._embedders[space] = build_embedder(self.embedding.spaces[space])
        return self._embedders[space]

    def model_id(self, space: str) -> str:
        """The configured model id of a space, without building its embedder."""
        if space in self._embedders:
            return self._embedders[space].model_id
        return self.embedding.spaces[space].model_id()

    # Every write goes through these, so indexes kept beside the vectors stay in step.
    def write(self, space: str, chunks, vectors) -> None:
        """Store chunks and their vectors in a space (existing ids are replaced)."""
        self.store.upsert(space, self.model_id(space), chunks, vectors)

    def delete(self, space: str, ids) -> None:
        """Remove chunks from a space."""
        self.store.delete(space, ids)

    def drop(self, space: str) -> None:
        """Remove a whole space (a rebuild)."""
        self.store.drop_space(space)

    def search(self, query: str, k: int = 5, where: dict | None = None) -> list[Passage]:
        """Search every non-empty space with the question and fuse the rankings.

        Similarities of different models are not comparable, so spaces are merged by
        reciprocal rank fusion; each passage keeps its own cosine similarity as its score.
        """
        ranked: list[list[Passage]] = []
        for space in self.embedding.spaces:
            if self.store.count(space) == 0:
                continue
            self.store.check_model(space, self.model_id(space))
            vector = self.embedder(space).embed_query(query)
            ranked.append(self.store.query(space, vector, k, where=where))
        fused: dict[str, float] = {}
        best: dict[str, Passage] = {}
        for passages in ranked:
            for rank, passage in enumerate(passages):
                key = passage.id or passage.text
                fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank + 1)
                if key not in best or passage.score > best[key].score:
                    best[key] = passage
        order = sorted(fused, key=lambda key: (-fused[key], -best[key].score))
        return [best[key] for key in order[:k]]

    def status(self) -> list[dict]:
        """Per configured space: its model, and what the store holds for it."""
        rows = []
        for space, cfg in self.embedding.spaces.items():
            info = self.store.space_info(space) or {}
            rows.append(
                {
                    "space": space,
                    "provider": cfg.provider,
                    "model": cfg.model_id(),
                    "stored_model": info.get("model"),
                    "dim": info.get("dim"),
                    "chunks": info.get("chunks", 0),
                    "languages": sorted(lang for lang, target in self.embedding.routing.items() if target == space),
                }
            )
        return rows
