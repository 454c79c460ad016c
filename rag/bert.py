"""A BERT sentence encoder in plain numpy, for embedding questions without PyTorch.

Why write one: `ragbot search` and `ask` embed one short question, yet loading
sentence-transformers imports PyTorch and transformers first, 3 to 16 s on two shared cores
(docs/BENCHMARKS.md, quick commands) against a few milliseconds for the question itself. A
6-layer MiniLM is small enough to run as a handful of numpy matrix products from the very
`model.safetensors` file sentence-transformers reads, with the same tokenizer
(`tokenizer.json`, Rust `tokenizers`), so the question vector matches the one PyTorch gives
(cosine > 0.9999, tested). Passages are still embedded by sentence-transformers: batches of
hundreds gain from PyTorch's threads, and ingest loads it anyway.

Only the plain shape is taken on: a BERT encoder, mean pooling, then normalisation, with
absolute positions. Anything else (`load` returns None) goes through sentence-transformers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from rag.threads import one_thread

logger = logging.getLogger(__name__)

_PLAIN_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 (Abramowitz & Stegun 7.1.26 with a refinement-free form), without scipy."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    # Numerical Recipes' erfc approximation: fractional error below 1.2e-7 everywhere
    poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    return sign * (1.0 - t * np.exp(poly))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class _Weights:
    """A layer's weights for activations of a dtype: the float64 copy where one was made, else the float32 one."""

    __slots__ = ("_w", "_w64", "_wide")

    def __init__(self, w: dict, w64: dict, dtype):
        self._w, self._w64, self._wide = w, w64, dtype == np.float64

    def __getitem__(self, key: str) -> np.ndarray:
        if self._wide:
            wide = self._w64.get(key)
            if wide is not None:
                return wide
        return self._w[key]


class NumpyBertEncoder:
    """Mean-pooled, normalised BERT sentence vectors computed with numpy from a sentence-transformers folder."""

    def __init__(self, weights: dict[str, np.ndarray], config: dict, tokenizer, max_length: int):
        self._w = weights
        # From the first attention on, the activations are float64 (the softmax is scaled by a
        # float64 scalar, and numpy keeps the wider type). A float32 weight met by a float64 activation
        # is cast to float64 at each product: 80% of a question's time. Cast them once here: the same
        # products of the same numbers, so the same vectors bit for bit (tested), for ~40 MB.
        self._w64 = {
            k: v.astype(np.float64) for k, v in weights.items()
            if k.startswith("encoder.layer.") and v.ndim == 2 and not k.startswith("encoder.layer.0.attention.self.")
        }
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self._tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(cls, folder: str | Path) -> NumpyBertEncoder | None:
        """The encoder for a local sentence-transformers folder, or None when its shape is not the plain one."""
        folder = Path(folder)
        try:
            modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
            config = json.loads((folder / "config.json").read_text())
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
            st_config = json.loads((folder / "sentence_bert_config.json").read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        plain = (
            modules == _PLAIN_MODULES
            and config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and pooling.get("pooling_mode_mean_tokens")
            and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"))
            and not st_config.get("do_lower_case")  # the tokenizer lower-cases by itself where the model wants it
            and (folder / "model.safetensors").is_file()
            and (folder / "tokenizer.json").is_file()
        )
        if not plain:
            return None
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError:
            return None
        raw = load_file(str(folder / "model.safetensors"))
        weights = {k.removeprefix("bert."): v.astype(np.float32) for k, v in raw.items()}
        if "embeddings.word_embeddings.weight" not in weights:
            return None
        for key in list(weights):  # torch keeps Linear weights as [out, in]: transpose once
            if key.endswith(".weight") and weights[key].ndim == 2 and "embeddings" not in key:
                weights[key] = np.ascontiguousarray(weights[key].T)
        max_length = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.no_padding()
        return cls(weights, config, tokenizer, max_length)

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        w, n = self._w, len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps)
        dim = x.shape[1]
        head = dim // self._heads
        for i in range(self._layers):
            p = f"encoder.layer.{i}."
            w = _Weights(self._w, self._w64, x.dtype)
            q = (x @ w[p + "attention.self.query.weight"] + w[p + "attention.self.query.bias"]).reshape(n, self._heads, head)
            k = (x @ w[p + "attention.self.key.weight"] + w[p + "attention.self.key.bias"]).reshape(n, self._heads, head)
            v = (x @ w[p + "attention.self.value.weight"] + w[p + "attention.self.value.bias"]).reshape(n, self._heads, head)
            scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(head)
            scores -= scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            context = np.einsum("hqk,khd->qhd", probs, v).reshape(n, dim)
            w = _Weights(self._w, self._w64, context.dtype)
            attended = context @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = _layer_norm(x + attended, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self._eps)
            hidden = _gelu(x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            out = hidden @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self._eps)
        return x

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors, one row per text (each text on its own: no padding)."""
        rows = []
        with one_thread("blas"):  # numpy is loaded: its BLAS is the one found
            for encoding in self._tokenizer.encode_batch(list(texts)):
                ids = np.asarray(encoding.ids, dtype=np.int64)
                pooled = self._forward(ids).mean(0)
                rows.append(pooled / max(float(np.linalg.norm(pooled)), 1e-12))
        return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 0), dtype=np.float32)
