"""Vectors cached on disk per model and text, so benchmark re-runs do not re-encode (not used by ragbot)."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.embedders import Embedder

CACHE_DIR = Path(os.environ.get("RAGBOT_EVALCACHE", "/tmp/ragbot-evalcache"))  # one writer per folder


class CachedEmbedder(Embedder):
    """Wraps an embedder; passage and query vectors are looked up by (model, kind, text) first."""

    def __init__(self, inner: Embedder, cache_dir: Path = CACHE_DIR):
        super().__init__(inner.config)
        self.inner = inner
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", inner.model_id) + ".pkl")
        self.table: dict[str, np.ndarray] = pickle.loads(self.path.read_bytes()) if self.path.exists() else {}
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def model(self):
        return self.inner.model

    def _get(self, kind: str, texts: Sequence[str], fn) -> np.ndarray:
        keys = [hashlib.sha1(f"{kind}\0{t}".encode()).hexdigest() for t in texts]
        todo = [i for i, key in enumerate(keys) if key not in self.table]
        if todo:
            vectors = fn([texts[i] for i in todo])
            for i, vec in zip(todo, vectors):
                self.table[keys[i]] = np.asarray(vec, dtype=np.float32)
            self.misses += len(todo)
            self.save()
        return np.vstack([self.table[key] for key in keys]) if keys else np.zeros((0, 1), dtype=np.float32)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(self.table))
        tmp.replace(self.path)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._get("p", texts, self.inner.embed_passages)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._get("q", texts, self.inner.embed_queries)
