"""The knowledge base: embedding spaces over one store, searched together."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence

from rag.config import EmbeddingConfig, RetrievalConfig
from rag.embedders import Embedder, build_embedder
from rag.keywords import KeywordIndex
from rag.records import Passage
from rag.store import StoredPage, VectorStore

logger = logging.getLogger(__name__)


class KnowledgeBase:
    """Embedders for the configured spaces, the store that holds their vectors, and the keyword index.

    Without a keyword index given, an in-memory one is built from the store's texts on first
    use (tests, throw-away stores); the runtime passes the persistent one from the data dir.
    """

    def __init__(
        self,
        embedding: EmbeddingConfig,
        store: VectorStore,
        embedders: Mapping[str, Embedder] | None = None,
        retrieval: RetrievalConfig | None = None,
        keywords: KeywordIndex | None = None,
    ):
        self.embedding = embedding
        self.store = store
        self.retrieval = retrieval or RetrievalConfig()
        self._embedders: dict[str, Embedder] = dict(embedders or {})
        self._keywords = keywords
        self._retriever = None

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

    @property
    def keywords(self) -> KeywordIndex:
        """The keyword index, in step with the store (see sync_keywords)."""
        if self._keywords is None:
            self._keywords = KeywordIndex(None, self.retrieval.keyword)
            self.sync_keywords()
        return self._keywords

    def sync_keywords(self, force: bool = False) -> int:
        """Re-index a space's stored texts when the keyword index disagrees with the store.

        A cheap count check per space; a full re-index only when counts differ (an older data
        dir, another process writing to a Chroma server, a crash between the two writes) or the
        tokenizer settings changed. Returns the number of chunks re-indexed.
        """
        index = self.keywords
        if force or not index.is_current():
            index.clear()
        redone = 0
        spaces = set(self.embedding.spaces) | set(self.store.spaces())
        for space in sorted(spaces):
            stored = self.store.count(space)
            if stored == index.count(space):
                continue
            logger.info("keyword index of space %s out of step (%d vs %d chunks): re-indexing", space, index.count(space), stored)
            index.drop(space)
            for ids, texts in self.store.texts(space):
                index.add(space, ids, texts)
                redone += len(ids)
        return redone

    # Every write goes through these, so the keyword index stays in step with the vectors.
    def write(self, space: str, chunks, vectors) -> None:
        """Store chunks and their vectors in a space (existing ids are replaced), and index their words.

        The vectors may come from anywhere (the embedder, the store, an export); they are taken
        as the configured model's, so callers check that first (`check_model`).
        """
        self.store.upsert(space, self.model_id(space), chunks, vectors)
        if self._keywords is not None:
            self._keywords.add(space, [c.id for c in chunks], [c.indexed_text for c in chunks])

    def restore(self, space: str, chunks, vectors) -> None:
        """Write chunks with vectors read from a store (an import): the store gives them back bit for bit."""
        self.store.upsert(space, self.model_id(space), chunks, vectors, as_read=True)
        if self._keywords is not None:
            self._keywords.add(space, [c.id for c in chunks], [c.indexed_text for c in chunks])

    def delete(self, space: str, ids) -> None:
        """Remove chunks from a space and from the keyword index."""
        ids = list(ids)
        self.store.delete(space, ids)
        if self._keywords is not None:
            self._keywords.delete(space, ids)

    def drop(self, space: str) -> None:
        """Remove a whole space (a rebuild)."""
        self.store.drop_space(space)
        if self._keywords is not None:
            self._keywords.drop(space)

    # Reads of what is stored, for export, the map and tools (the store stays behind this door).
    def stored_spaces(self) -> list[str]:
        """Spaces that have a collection in the store (configured or not)."""
        return self.store.spaces()

    def space_info(self, space: str) -> dict | None:
        """The model and dimension a space was built with, and its chunk count; None if absent."""
        return self.store.space_info(space)

    def count(self, space: str) -> int:
        """Chunks stored in a space."""
        return self.store.count(space)

    def pages(self, space: str, size: int = 1000, vectors: bool = True) -> Iterator[StoredPage]:
        """Every stored chunk of a space (ids, texts, metadata, vectors), `size` at a time (one page held at once)."""
        return self.store.pages(space, size=size, vectors=vectors)

    def existing_ids(self, space: str, ids: Sequence[str]) -> set[str]:
        """Which of the given chunk ids a space already holds."""
        return self.store.existing(space, ids)

    def check_model(self, space: str) -> None:
        """Refuse a space whose stored vectors were built by another model than the configured one."""
        self.store.check_model(space, self.model_id(space))

    @property
    def retriever(self):
        """The hybrid retriever over this knowledge base (rag.retrieval.Retriever)."""
        if self._retriever is None:
            from rag.retrieval import Retriever

            self._retriever = Retriever(self, self.retrieval)
        return self._retriever

    def retrieve(self, question: str, k: int = 5, where: dict | None = None) -> list[Passage]:
        """The k best passages above the relevance floor; empty when nothing relevant was found."""
        return self.retriever.retrieve(question, k=k, where=where)

    def search(self, query: str, k: int = 5, where: dict | None = None) -> list[Passage]:
        """Hybrid search of every space and the keyword index (same as retrieve).

        Each passage keeps its cosine similarity in its own space as its score.
        """
        return self.retrieve(query, k=k, where=where)

    def sentence_similarity(self, question: str, sentences: list[str], space: str) -> list[float]:
        """Cosine of each sentence with the question in space's model (extractive answers score by meaning)."""
        embedder = self.embedder(space)
        query = embedder.embed_query(question)
        vectors = embedder.embed_passages(sentences)
        return [float(v) for v in vectors @ query]

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
                    "languages": self.embedding.languages_of(space),
                }
            )
        return rows
