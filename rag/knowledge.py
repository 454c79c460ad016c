"""The knowledge base: embedding spaces over one store, searched together.

It is the only door to what is stored: ingest, import/export, evaluation, the bots and the CLI
read and write through it, never through the store or the keyword index behind it, so every
write reaches both and every process serving a Chroma server sees the same chunks in both
channels (the keyword index follows the store, see rag.keywords).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from rag.cache import ChunkCache, SentenceVectors, complement
from rag.config import EmbeddingConfig, RetrievalConfig
from rag.embedders import Embedder, build_embedder
from rag.keywords import KeywordIndex, LocalKeywordIndex
from rag.records import Passage
from rag.retrieval import Retriever
from rag.store import StoredPage, VectorStore

logger = logging.getLogger(__name__)


class KnowledgeBase:
    """Embedders for the configured spaces, the store that holds their vectors, and the keyword index.

    Without a keyword index given, an in-memory one is built from the store's texts on first
    use (tests, throw-away stores); the runtime passes the persistent one from the data dir
    (embedded store) or the one shared through the Chroma server (server mode). With a cache
    given, the chunks questions read are kept for the next ones (rag.cache says why that is safe).
    """

    def __init__(
        self,
        embedding: EmbeddingConfig,
        store: VectorStore,
        embedders: Mapping[str, Embedder] | None = None,
        retrieval: RetrievalConfig | None = None,
        keywords: KeywordIndex | None = None,
        cache: ChunkCache | None = None,
    ):
        self.embedding = embedding
        self.store = store
        self.retrieval = retrieval or RetrievalConfig()
        self._embedders: dict[str, Embedder] = dict(embedders or {})
        self._keywords = keywords
        self._retriever: Retriever | None = None
        self.cache = cache
        self._sentences = SentenceVectors()
        if cache is not None and keywords is not None:
            keywords.watch(cache.forget)  # other processes' writes, as the keyword channel's feed reports them

    def embedder(self, space: str) -> Embedder:
        """The embedder of a space, built (not yet loaded) on first use."""
        if space not in self._embedders:
            self._embedders[space] = build_embedder(self.embedding.spaces[space])
        return self._embedders[space]

    def use_embedder(self, space: str, embedder: Embedder) -> None:
        """Embed a space's questions with this embedder from now on (same model: e.g. a table of precomputed queries)."""
        if embedder.model_id != self.model_id(space):
            raise ValueError(f"{embedder.model_id} is not the model of space {space} ({self.model_id(space)})")
        self._embedders[space] = embedder

    def model_id(self, space: str) -> str:
        """The configured model id of a space, without building its embedder."""
        if space in self._embedders:
            return self._embedders[space].model_id
        return self.embedding.spaces[space].model_id()

    @property
    def keywords(self) -> KeywordIndex:
        """The keyword index, in step with the store (see sync_keywords), having taken in other processes' writes."""
        if self._keywords is None:
            self._keywords = LocalKeywordIndex(None, self.retrieval.keyword)
            self.sync_keywords()
        self._keywords.refresh()  # rate-limited; a no-op for a local index
        return self._keywords

    def sync_keywords(self, force: bool = False) -> int:
        """Index the stored chunks the keyword index lacks, and forget those the store lost.

        A cheap count check per space; ids are compared only when counts differ (an older data
        dir, a crash between the two writes, a server-mode data dir from before the shared
        index), and only the missing chunks are analysed. When the tokenizer settings changed,
        everything is re-indexed. Returns the number of chunks (re-)indexed.
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
            logger.info("keyword index of space %s out of step (%d vs %d chunks): catching up", space, index.count(space), stored)
            held, present = index.ids(space), self.store.ids(space)
            index.delete(space, held - present)
            for ids, texts in self.store.texts(space, sorted(present - held)):
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
        self._forget(space, [c.id for c in chunks])
        if self._keywords is not None:
            self._keywords.add(space, [c.id for c in chunks], [c.indexed_text for c in chunks])

    def restore(self, space: str, chunks, vectors) -> None:
        """Write chunks with vectors read from a store (an import): the store gives them back bit for bit."""
        self.store.upsert(space, self.model_id(space), chunks, vectors, as_read=True)
        self._forget(space, [c.id for c in chunks])
        if self._keywords is not None:
            self._keywords.add(space, [c.id for c in chunks], [c.indexed_text for c in chunks])

    def delete(self, space: str, ids) -> None:
        """Remove chunks from a space and from the keyword index."""
        ids = list(ids)
        self.store.delete(space, ids)
        self._forget(space, ids)
        if self._keywords is not None:
            self._keywords.delete(space, ids)

    def drop(self, space: str) -> None:
        """Remove a whole space (a rebuild)."""
        self.store.drop_space(space)
        if self.cache is not None:
            self.cache.forget_space(space)
        if self._keywords is not None:
            self._keywords.drop(space)

    def _forget(self, space: str, ids: Sequence[str]) -> None:
        if self.cache is not None:
            self.cache.forget([(space, cid) for cid in ids])

    def _cached(self) -> ChunkCache | None:
        """The chunk cache, when every write that could change what it holds reaches this process.

        An embedded store has one process (its lock), whose writes all pass through here. Against a
        server, other processes' writes arrive through the keyword channel's feed, checked here too
        (rate-limited: one small request at most every 0.5 s), and only once that feed is followed.
        """
        cache = self.cache
        if cache is None or cache.size <= 0:
            return None
        if not self.store.shared:
            return cache
        index = self._keywords
        if index is None:
            return None
        index.refresh()
        return cache if index.reports_others() else None

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

    def holds_chunks(self, space: str) -> bool:
        """Whether a space has any chunk (cheap enough for every question: see VectorStore.holds_chunks)."""
        return self.store.holds_chunks(space)

    def pages(self, space: str, size: int = 1000, vectors: bool = True) -> Iterator[StoredPage]:
        """Every stored chunk of a space (ids, texts, metadata, vectors), `size` at a time (one page held at once)."""
        return self.store.pages(space, size=size, vectors=vectors)

    def ids(self, space: str) -> set[str]:
        """Every chunk id stored in a space."""
        return self.store.ids(space)

    @property
    def location(self) -> str:
        """Where the vectors live: the embedded folder or the server's URL."""
        return self.store.location

    def nearest(self, space: str, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """The k nearest chunk ids of a space with their cosine, best first (no texts fetched)."""
        return self.store.nearest(space, vector, k, where=where)

    def passages(self, space: str, ids: Sequence[str], where: dict | None = None, vectors: bool = True):
        """Stored chunks by id (those matching where) as passages, with their vectors unless vectors=False.

        Chunks in the cache are not read again (the filter is checked on their metadata, see
        rag.cache.matches); what is read is kept.
        """
        cache = self._cached()
        if cache is None:
            return self.store.passages(space, ids, where=where, vectors=vectors)
        version = cache.version
        out, ids = cache.passages(space, ids, vectors, where)
        if ids:
            read = self.store.passages(space, ids, where=where, vectors=vectors)
            # without a filter, an id not given back is not in the space (with one it may just not pass)
            cache.put(space, read, version, absent=[cid for cid in ids if cid not in read] if where is None else ())
            out.update(read)
        return out

    def filter_needed(self, space: str, where: dict | None) -> bool:
        """Whether searching a space needs where: not when every chunk it holds passes it.

        A channel allowed every knowledge set the store holds filters nothing, yet a filtered
        nearest-neighbour search costs Chroma a pass over the metadata on every question (in the
        scale-out benchmark, 1.5 ms of the server's CPU a search, growing with the corpus). So the
        store is asked once whether any chunk fails the filter (its complement, limit 1), and the
        answer kept until a write anywhere (this process's, or another's as the keyword feed
        reports it; the chunk cache's version). Without the cache that knows of those writes, the
        filter is always sent. A chunk another process writes meanwhile outside the filter can
        reach the unfiltered ranking for that moment; the retriever reads each passage it keeps
        through the filter (`passages(..., where)`), so it never gets further.
        """
        if where is None:
            return False
        cache = self._cached()
        outside = complement(where)
        if cache is None or outside is None:
            return True
        key = (space, json.dumps(where, sort_keys=True, default=str))
        needed = cache.verdict(key)
        if needed is None:
            version = cache.version
            needed = self.store.any_matching(space, outside)
            cache.keep_verdict(key, needed, version)
        return needed

    def stored_vectors(self, space: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors of the given ids that a space holds (nothing else read; cached ones not read again)."""
        cache = self._cached()
        if cache is None:
            return self.store.embeddings(space, ids)
        version = cache.version
        out, missing = cache.vectors(space, ids)
        if missing:
            read = self.store.embeddings(space, missing)
            cache.put(space, {cid: (None, vec) for cid, vec in read.items()}, version, absent=[c for c in missing if c not in read])
            out.update(read)
        return out

    def reusable_vectors(self, space: str, ids: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
        """Like stored_vectors, for re-use instead of embedding again: each vector is the one to write
        back so that the store keeps exactly the vector it holds (written back as read, it would
        drift by an ulp: see rag.store.cosine_preimage)."""
        return self.store.vectors(space, ids, to_rewrite=True)

    def texts(self, space: str, ids: Iterable[str] | None = None):
        """Stored (ids, indexed texts) of a space, page by page: every chunk, or those of the given ids."""
        return self.store.texts(space, None if ids is None else list(ids))

    def existing_ids(self, space: str, ids: Sequence[str]) -> set[str]:
        """Which of the given chunk ids a space already holds."""
        return self.store.existing(space, ids)

    def check_model(self, space: str) -> None:
        """Refuse a space whose stored vectors were built by another model than the configured one."""
        self.store.check_model(space, self.model_id(space))

    @property
    def retriever(self) -> Retriever:
        """The hybrid retriever over this knowledge base."""
        if self._retriever is None:
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
        """Cosine of each sentence with the question in space's model (extractive answers score by meaning).

        Sentences embedded for an earlier question are not embedded again (rag.cache.SentenceVectors).
        """
        embedder = self.embedder(space)
        query = embedder.embed_query(question)
        vectors = self._sentences.embed(embedder.model_id, sentences, embedder.embed_passages)
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
