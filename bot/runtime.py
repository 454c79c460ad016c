"""Assembles the pieces named in the config: store, knowledge base, manifest, ingestor."""

from __future__ import annotations

import gc
import logging
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from bot.config import AppConfig
from ingest.manifest import Manifest
from rag.cache import ChunkCache
from rag.keywords import KeywordIndex, LocalKeywordIndex, SharedKeywordIndex
from rag.knowledge import KnowledgeBase
from rag.store import VectorStore


logger = logging.getLogger(__name__)


SWITCH_INTERVAL_S = 0.001  # serving: how long a thread may hold the GIL while another waits (Python's default: 5 ms)


def tune_for_serving() -> None:
    """Process settings for a bot: the event loop must get the GIL back quickly from answer threads.

    A worker running pure-Python code keeps the GIL until the interpreter's switch interval
    forces a hand-over; with 4 busy workers and the 5 ms default the event loop waited up to
    0.2 s for its turn, 40 ms at 1 ms (benchmarks/bench_discord.py, worst case). Then
    `gc.freeze()` moves everything alive (models, indexes) to the permanent generation: a full
    garbage collection walks every tracked object with the GIL held, which over the loaded
    models took up to 0.29 s; later collections walk only what answers create.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    logger.info("%d long-lived objects frozen out of garbage collection", gc.get_freeze_count())


def prepare_for_serving(kb: KnowledgeBase, encodings: tuple[str, ...] = ()) -> None:
    """Load what the first question would load (models, BM25 matrix, tiktoken encodings), then tune_for_serving().

    Loading lazily inside the first answers held the GIL on a worker thread while the event
    loop waited (a tiktoken encoding alone took about 0.1 s).
    """
    from rag.tokens import get_encoding

    for name in encodings:
        get_encoding(name)
    try:
        kb.retrieve("warm up", k=1)  # loads each non-empty space's model and builds the BM25 matrix
    except Exception as exc:  # an empty or broken store still serves (and says so per question)
        logger.warning("warm-up search failed: %s", exc)
    tune_for_serving()


def manifest_path(config: AppConfig) -> Path:
    """The ingest bookkeeping file for the configured store (one per store it describes)."""
    store = config.store
    if store.mode == "embedded":
        name = "manifest.sqlite" if store.collection_prefix == "ragbot" else f"manifest-{store.collection_prefix}.sqlite"
    else:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"manifest-{store.host}-{store.port}-{store.collection_prefix}.sqlite")
    return config.data_path() / name


def keywords_path(config: AppConfig) -> Path:
    """The keyword index file of an embedded store, beside the manifest of the store it mirrors."""
    return manifest_path(config).with_name(manifest_path(config).name.replace("manifest", "keywords", 1))


def open_keyword_index(config: AppConfig, store: VectorStore) -> KeywordIndex:
    """The keyword index: a file in the data dir beside an embedded store; in the Chroma server beside a served one.

    In server mode every process (bot workers on any host, an ingest) reads and writes the one
    kept in the server, so each follows the others' writes within a second and a new worker
    needs nothing in its data dir.
    """
    if config.store.mode == "server":
        return SharedKeywordIndex(store.side_collection("keywords"), config.retrieval.keyword, location=store.location)
    return LocalKeywordIndex(keywords_path(config), config.retrieval.keyword)


@contextmanager
def open_knowledge_base(config: AppConfig, embedders=None):
    """The knowledge base over the configured store and keyword index, closed (lock released) on exit."""
    data_dir = config.data_path()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = VectorStore.open(config.store, data_dir)
    keywords = None
    try:
        keywords = open_keyword_index(config, store)
        cache = ChunkCache(config.store.cache_chunks) if config.store.cache_chunks else None
        kb = KnowledgeBase(config.embedding, store, embedders=embedders, retrieval=config.retrieval, keywords=keywords, cache=cache)
        kb.sync_keywords()
        yield kb
    finally:
        if keywords is not None:
            keywords.close()
        store.close()


@contextmanager
def open_ingestor(config: AppConfig, kb: KnowledgeBase, progress=None):
    """An ingestor writing through kb, with its manifest and run lock in the data directory."""
    from ingest.pipeline import Ingestor  # here, not at the top: loaders (bs4, pypdf) are slow to import

    manifest = Manifest(manifest_path(config))
    try:
        yield Ingestor(kb, config.ingest, manifest, config.data_path() / "ingest.lock", progress=progress)
    finally:
        manifest.close()


def build_answerer(config: AppConfig, kb: KnowledgeBase, model=None):
    """The answerer over kb: the configured chat model (or extractive) behind the one relevance decision."""
    from rag.answer import Answerer
    from rag.floor import FloorRetriever
    from rag.llm import build_chat_model

    retriever = FloorRetriever(kb)
    if model is None:
        model = build_chat_model(config.llm)
    return Answerer(
        retriever.retrieve, config.answer, config.llm, model=model, closest=retriever.closest,
        similarity=kb.sentence_similarity,
    )


@contextmanager
def open_bot_state(config: AppConfig):
    """The configured state store (state.backend), closed on exit."""
    from bot.state import open_state

    state = open_state(config.state, config.data_path(), capacity=config.bot.threads_remembered)
    try:
        yield state
    finally:
        state.close()


def build_bot_core(config: AppConfig, kb: KnowledgeBase, answerer, state, admins=(), channel_sets=None, admin_roles=()):
    """The platform-neutral bot over kb: limits, threads, buttons and feedback in state, admin re-ingest and status."""
    from bot.core import BotCore

    def run_ingest(paths: list[str], roots: list[str] | None = None, progress=None):
        with open_ingestor(config, kb, progress=progress) as ingestor:
            confine = [Path(r) for r in roots] if roots is not None else None
            return ingestor.run([Path(p).expanduser() for p in paths], confine_to=confine)

    def status() -> dict:
        spaces = kb.status()
        manifest = Manifest(manifest_path(config))
        try:
            records = manifest.sources()
        finally:
            manifest.close()
        # a chunk embedded in two spaces (English with the bilingual default) counts once
        chunks = sum(r.chunks for r in records.values()) if records else sum(s["chunks"] for s in spaces)
        return {"sources": len(records), "chunks": chunks, "spaces": spaces}

    return BotCore(
        answerer, config.bot, state, channel_sets=channel_sets, admins=admins, admin_roles=admin_roles,
        run_ingest=run_ingest, status=status, history_turns=config.answer.history_turns,
        max_question_chars=config.answer.max_question_chars, answer_ttl_s=config.state.answer_ttl_s,
    )
