"""Assembles the pieces named in the config: store, knowledge base, manifest, ingestor."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

from bot.config import AppConfig
from ingest.manifest import Manifest
from ingest.pipeline import Ingestor
from rag.keywords import KeywordIndex
from rag.knowledge import KnowledgeBase
from rag.store import VectorStore


def manifest_path(config: AppConfig) -> Path:
    """The ingest bookkeeping file for the configured store (one per store it describes)."""
    store = config.store
    if store.mode == "embedded":
        name = "manifest.sqlite" if store.collection_prefix == "ragbot" else f"manifest-{store.collection_prefix}.sqlite"
    else:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"manifest-{store.host}-{store.port}-{store.collection_prefix}.sqlite")
    return config.data_path() / name


def keywords_path(config: AppConfig) -> Path:
    """The keyword index file, beside the manifest of the store it mirrors."""
    return manifest_path(config).with_name(manifest_path(config).name.replace("manifest", "keywords", 1))


@contextmanager
def open_knowledge_base(config: AppConfig, embedders=None):
    """The knowledge base over the configured store and keyword index, closed (lock released) on exit."""
    data_dir = config.data_path()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = VectorStore.open(config.store, data_dir)
    keywords = None
    try:
        keywords = KeywordIndex(keywords_path(config), config.retrieval.keyword)
        kb = KnowledgeBase(config.embedding, store, embedders=embedders, retrieval=config.retrieval, keywords=keywords)
        kb.sync_keywords()
        yield kb
    finally:
        if keywords is not None:
            keywords.close()
        store.close()


@contextmanager
def open_ingestor(config: AppConfig, kb: KnowledgeBase, progress=None):
    """An ingestor writing through kb, with its manifest and run lock in the data directory."""
    manifest = Manifest(manifest_path(config))
    try:
        yield Ingestor(kb, config.ingest, manifest, config.data_path() / "ingest.lock", progress=progress)
    finally:
        manifest.close()
