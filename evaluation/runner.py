"""`ragbot eval`: ingest a BEIR corpus into a throw-away store, run every query, score the rankings.

The corpus goes through the real pipeline (loader, chunking, language routing, the configured
embedding spaces, the keyword index) and the queries through the real retriever, so the figures
are those of the product, not of a side script. Scores are per document: a document ranks
where its best chunk ranks.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation.beir import Dataset
from evaluation.metrics import score_all
from ingest.config import IngestConfig, TableConfig
from ingest.manifest import Manifest
from ingest.pipeline import IngestReport, Ingestor
from rag.config import EmbeddingConfig, RetrievalConfig, StoreConfig
from rag.embedders import Embedder
from rag.keywords import LocalKeywordIndex
from rag.knowledge import KnowledgeBase
from rag.records import Passage
from rag.retrieval import Retriever
from rag.store import VectorStore

logger = logging.getLogger(__name__)

DEPTH = 100  # documents ranked per query (Recall@100 needs 100)
CHUNK_DEPTH = 300  # chunks fetched to fill DEPTH documents when documents have several chunks


@dataclass
class EvalResult:
    """Scores of one evaluation run and what it cost."""

    metrics: dict[str, float]
    queries: int
    seconds: float
    ingest: IngestReport
    query_seconds: float
    rankings: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict:
        """The `ragbot eval --json` contract."""
        return {**{k: round(v, 5) for k, v in self.metrics.items()}, "queries": self.queries, "seconds": round(self.seconds, 2)}


class _QueryTable(Embedder):
    """An embedder whose question vectors were computed in one batch beforehand."""

    def __init__(self, inner: Embedder, table: Mapping[str, np.ndarray]):
        super().__init__(inner.config)
        self.inner = inner
        self.table = table

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = [self.table[t] if t in self.table else self.inner.embed_queries([t])[0] for t in texts]
        return np.vstack(out)


def corpus_ingest_config(base: IngestConfig) -> IngestConfig:
    """The configured chunking, with the corpus rows read as BEIR defines them (_id, title, text)."""
    table = TableConfig(pattern="*", text_fields=["text"], title_field="title", id_field="_id", metadata_fields=[])
    return base.model_copy(update={"tables": [table]})


@contextmanager
def eval_knowledge_base(
    dataset: Dataset,
    embedding: EmbeddingConfig,
    retrieval: RetrievalConfig,
    ingest: IngestConfig,
    embedders: Mapping[str, Embedder] | None = None,
    progress: Callable[..., object] | None = None,
    workdir: Path | None = None,
):
    """A knowledge base holding the data set's corpus, in a temporary folder removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="ragbot-eval-", dir=workdir))
    store = VectorStore.open(StoreConfig(path=str(tmp / "chroma"), collection_prefix="eval"), tmp)
    keywords = LocalKeywordIndex(None, retrieval.keyword)
    manifest = Manifest(tmp / "manifest.sqlite")
    try:
        kb = KnowledgeBase(embedding, store, embedders=embedders, retrieval=retrieval, keywords=keywords)
        ingestor = Ingestor(kb, corpus_ingest_config(ingest), manifest, tmp / "ingest.lock", progress=progress)
        report = ingestor.run([dataset.corpus])
        if report.failed:
            logger.warning("corpus ingest failed for %s", report.failed[0].reason)
        yield kb, report
    finally:
        manifest.close()
        keywords.close()
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def document_ranking(passages: Sequence[Passage], depth: int = DEPTH) -> list[str]:
    """Document ids in the order of their best chunk."""
    seen: dict[str, None] = {}
    for p in passages:
        doc = p.metadata.get("row_id")
        if doc is None:
            continue
        seen.setdefault(str(doc), None)
        if len(seen) >= depth:
            break
    return list(seen)


def precompute_queries(kb: KnowledgeBase, questions: Sequence[str]) -> None:
    """Embed all questions per non-empty space in batches (as a batch job would), for the retriever to reuse."""
    for space in kb.embedding.spaces:
        if kb.count(space) == 0:
            continue
        embedder = kb.embedder(space)
        vectors = embedder.embed_queries(list(questions))
        kb.use_embedder(space, _QueryTable(embedder, dict(zip(questions, vectors))))


def rank_queries(
    retriever: Retriever, queries: Mapping[str, str], progress: Callable[..., object] | None = None
) -> dict[str, list[str]]:
    """Each query's document ranking (floor and collapse off: they cut lists, the metrics rank them)."""
    bar = progress(total=len(queries), desc="Queries", unit="q") if progress else None
    rankings: dict[str, list[str]] = {}
    for qid, text in queries.items():
        passages = retriever.ranked(text, CHUNK_DEPTH, floor=False, collapse=False)
        rankings[qid] = document_ranking(passages)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rankings


def run_eval(dataset: Dataset, *sections, **options) -> EvalResult:
    """Ingest the corpus, rank every query of the split, and score the rankings.

    sections and options are those of eval_knowledge_base (embedding, retrieval, ingest; embedders, progress).
    """
    started = time.perf_counter()
    with eval_knowledge_base(dataset, *sections, **options) as (kb, report):
        query_started = time.perf_counter()
        precompute_queries(kb, list(dataset.queries.values()))
        rankings = rank_queries(Retriever(kb, kb.retrieval), dataset.queries, options.get("progress"))
        query_seconds = time.perf_counter() - query_started
    metrics = score_all(rankings, dataset.qrels)
    return EvalResult(metrics, len(dataset.queries), time.perf_counter() - started, report, query_seconds, rankings)
