"""Chroma behind a small interface: one cosine collection per embedding space.

Each collection records the model that built it and its dimension; writing or querying a
space with another model is refused. Embedded mode is owned by one process through a file
lock (Chroma's local mode is not process-safe); server mode talks to `chroma run`.
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from rag.config import StoreConfig
from rag.errors import ModelMismatchError, RagError, StoreLockedError, StoreUnavailableError
from rag.records import Chunk, Locator, Passage, indexed_text

logger = logging.getLogger(__name__)

MODEL_KEY = "ragbot_model"
DIM_KEY = "ragbot_dim"


@dataclass(frozen=True)
class StoredPage:
    """A page of a space's stored chunks: ids, texts, metadata (locator fields flattened in) and vectors."""

    space: str
    ids: list[str]
    texts: list[str]
    metadatas: list[dict]
    vectors: np.ndarray | None  # float32, one row per id; None when not asked for

    def __len__(self) -> int:
        return len(self.ids)


_OTLP = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"


@contextmanager
def _light_chromadb():
    """Import chromadb and open a client without three costs nothing here uses (about 0.6 s of CPU).

    - httpx's command-line client (`httpx._main`: rich, pygments), which httpx imports only if it can;
    - the `overrides` package's signature checks (only chromadb uses it), which re-validate every
      @override of chromadb's classes at each import with dis and typing walks: stand-ins that
      return the method unchanged are used while chromadb loads its modules, then the name is released;
    - the OTLP/gRPC span exporter, loaded only when a Chroma OpenTelemetry endpoint is configured
      (ragbot turns telemetry off): a stand-in class imports it on first use.
    A module the process already imported is used as is.
    """
    import importlib
    import sys
    import types

    added: list[str] = []

    def stand_in(name: str, module) -> None:
        if name not in sys.modules:
            sys.modules[name] = module
            added.append(name)

    stand_in("httpx._main", None)  # httpx then defines a `main` that says its CLI extras are missing
    overrides = types.ModuleType("overrides")

    def override(method=None, **_options):
        return method if method is not None else (lambda m: m)

    overrides.override = overrides.overrides = override
    overrides.final = lambda method: method
    overrides.EnforceOverrides = type("EnforceOverrides", (), {})
    stand_in("overrides", overrides)

    class OTLPSpanExporter:
        def __new__(cls, *args, **kwargs):
            if sys.modules.get(_OTLP) is exporter:
                del sys.modules[_OTLP]
            return importlib.import_module(_OTLP).OTLPSpanExporter(*args, **kwargs)

    exporter = types.ModuleType(_OTLP)
    exporter.OTLPSpanExporter = OTLPSpanExporter
    stand_in(_OTLP, exporter)
    try:
        import chromadb

        yield chromadb
    finally:
        for name in added:
            if name == "overrides" and sys.modules.get(name) is overrides:
                del sys.modules[name]  # a later import gets the real package


def _client_settings():
    from chromadb.config import Settings

    # no telemetry: nothing leaves the machine, and offline it would only produce errors
    return Settings(anonymized_telemetry=False, allow_reset=False)


def _unbind_response(response) -> None:
    """httpx response hook: the body stream refers back to its response through a weak proxy."""
    stream = getattr(response, "stream", None)
    if getattr(stream, "_response", None) is response:
        stream._response = weakref.proxy(response)


def free_responses_when_read(client) -> bool:
    """Let every response of a chromadb HTTP client be freed as soon as chromadb has read it.

    httpx (0.28, 0.29) binds each response's body stream back to the response
    (`BoundSyncStream._response`, to set `elapsed` on close; encode/httpx#3733): a reference
    cycle, so each response, its body kept twice (bytes and decoded text: about 16 MB for a
    page of 1,000 384-d vectors), waits for a full garbage collection, and those come rarely
    while the heap grows. An export from `chroma run` grew by about 2.5 KB a chunk that way.
    A response hook makes the stream's reference weak (what the upstream fix does), so
    reference counting frees each response at once. Returns whether the hook was installed
    (False for a client without chromadb's httpx session: another chromadb, an embedded store).
    """
    session = getattr(getattr(client, "_server", None), "_session", None)
    hooks = getattr(session, "event_hooks", None)
    if not isinstance(hooks, dict):
        return False
    if _unbind_response not in hooks.get("response", []):
        session.event_hooks = {**hooks, "response": [*hooks.get("response", []), _unbind_response]}
    return True


def _is_connection_error(exc: BaseException) -> bool:
    """Whether exc (or what caused it) is the server going away: refused, reset, closed, timed out."""
    import httpx

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def server_errors(method):
    """A lost Chroma server becomes one StoreUnavailableError naming it and the fix.

    For any object with `_lost_server(exc) -> str | None`: the message, or None to let the
    error through (not server mode). The vector store and the shared keyword index use it.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except RagError:
            raise
        except Exception as exc:
            message = self._lost_server(exc) if _is_connection_error(exc) else None
            if message is None:
                raise
            raise StoreUnavailableError(message) from exc

    return wrapper



class VectorStore:
    """Chroma collections for the embedding spaces, with model checks and batched writes."""

    def __init__(self, client, config: StoreConfig, location: str, lock: FileLock | None = None):
        self._client = client
        self._config = config
        self.location = location
        self._lock = lock
        self._collections: dict[str, object] = {}
        self._holds: dict[str, tuple[bool, float]] = {}  # space -> (holds chunks, when asked, by clock)
        self.clock = time.monotonic

    def _lost_server(self, exc: BaseException) -> str | None:
        if self._config.mode != "server":
            return None
        cfg = self._config
        return (
            f"Lost the Chroma server at {self.location} ({type(exc).__name__}). Start it again "
            f"(`chroma run --host {cfg.host} --port {cfg.port} --path DIR`) and re-run the command; "
            "an interrupted ingest converges on the next run."
        )

    @property
    def shared(self) -> bool:
        """Whether other processes may write here (a server); an embedded folder has one process, by its lock."""
        return self._config.mode == "server"

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, config: StoreConfig, data_dir: Path) -> VectorStore:
        """Open the configured store: lock and open the embedded folder, or connect to a server."""
        with _light_chromadb() as chromadb:
            return cls._connect(chromadb, config, data_dir)

    @classmethod
    def _connect(cls, chromadb, config: StoreConfig, data_dir: Path) -> VectorStore:
        if config.mode == "server":
            token = config.secret_value("auth_token")
            headers = {"Authorization": f"Bearer {token}"} if token else None
            location = f"{'https' if config.ssl else 'http'}://{config.host}:{config.port}"
            try:
                client = chromadb.HttpClient(
                    host=config.host, port=config.port, ssl=config.ssl, headers=headers, settings=_client_settings()
                )
                client.heartbeat()
            except Exception as exc:
                raise RagError(
                    f"Cannot reach the Chroma server at {location} ({type(exc).__name__}). "
                    f"Start it with `chroma run --host {config.host} --port {config.port} --path DIR`, "
                    "or set store.mode: embedded."
                ) from exc
            if not free_responses_when_read(client):
                logger.debug("chromadb's HTTP session not found: its responses are freed by the garbage collector")
            return cls(client, config, location)

        path = Path(config.path).expanduser() if config.path else data_dir / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StoreLockedError(
                f"Another ragbot process is using the store at {path} (a bot or an ingest is running). "
                "Stop it, or run a Chroma server (`chroma run`) and set store.mode: server so several "
                "processes can share one store."
            ) from None
        try:
            client = chromadb.PersistentClient(path=str(path), settings=_client_settings())
        except Exception:
            lock.release()
            raise
        return cls(client, config, str(path), lock)

    def close(self) -> None:
        """Release the embedded store's lock."""
        self._collections.clear()
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- collections ---------------------------------------------------------------------
    def collection_name(self, space: str) -> str:
        """The Chroma collection of a space."""
        return f"{self._config.collection_prefix}_{space}"

    def _get(self, space: str):
        if space in self._collections:
            return self._collections[space]
        try:
            collection = self._client.get_collection(self.collection_name(space), embedding_function=None)
        except Exception as exc:  # chroma raises NotFoundError / ValueError depending on mode and version
            if _is_connection_error(exc):
                raise  # a lost server is not a missing collection
            return None
        self._collections[space] = collection
        return collection

    @server_errors
    def space_info(self, space: str) -> dict | None:
        """The model and dimension a space was built with, and its chunk count; None if absent."""
        collection = self._get(space)
        if collection is None:
            return None
        meta = collection.metadata or {}
        return {"model": meta.get(MODEL_KEY), "dim": meta.get(DIM_KEY), "chunks": collection.count()}

    def check_model(self, space: str, model_id: str) -> None:
        """Refuse to use a space whose collection was built by another model."""
        info = self.space_info(space)
        if info and info["model"] and info["model"] != model_id:
            raise ModelMismatchError(
                f"The '{space}' space was built with {info['model']} ({info['dim']}-d vectors), "
                f"but config.yaml now says {model_id}. Vectors of two models cannot be mixed: "
                "re-ingest with `ragbot ingest --rebuild PATH...` to rebuild it with the new model."
            )

    def _ensure(self, space: str, model_id: str, dim: int):
        self.check_model(space, model_id)
        collection = self._get(space)
        if collection is None:
            collection = self._client.get_or_create_collection(
                self.collection_name(space),
                metadata={MODEL_KEY: model_id, DIM_KEY: int(dim)},
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,  # never Chroma's default: it downloads a model
            )
            self._collections[space] = collection
        recorded = (collection.metadata or {}).get(DIM_KEY)
        if recorded and int(recorded) != int(dim):
            raise ModelMismatchError(
                f"The '{space}' space holds {recorded}-d vectors but the model gives {dim}-d ones; "
                "re-ingest with `ragbot ingest --rebuild PATH...`."
            )
        return collection

    @server_errors
    def drop_space(self, space: str) -> None:
        """Delete a space's collection (used by --rebuild)."""
        self._collections.pop(space, None)
        self._holds.pop(space, None)
        try:
            self._client.delete_collection(self.collection_name(space))
        except Exception:
            logger.debug("no collection to drop for space %s", space)

    @server_errors
    def spaces(self) -> list[str]:
        """Spaces that have a collection in this store."""
        prefix = self._config.collection_prefix + "_"
        names = [c if isinstance(c, str) else c.name for c in self._client.list_collections()]
        return sorted(n[len(prefix) :] for n in names if n.startswith(prefix))

    @server_errors
    def side_collection(self, name: str):
        """A collection beside the spaces' (`<prefix>-<name>`, never taken for a space), created when absent.

        Records in it carry a one-number placeholder vector: Chroma wants one per record.
        """
        return self._client.get_or_create_collection(f"{self._config.collection_prefix}-{name}", embedding_function=None)

    # -- writes --------------------------------------------------------------------------
    @property
    def max_batch_size(self) -> int:
        """How many records Chroma takes in one write."""
        try:
            return int(self._client.get_max_batch_size())
        except Exception:
            return 1000

    @server_errors
    def upsert(self, space: str, model_id: str, chunks: Sequence[Chunk], vectors: np.ndarray, as_read: bool = False) -> None:
        """Write chunks and their vectors, in batches Chroma accepts; existing ids are replaced.

        as_read: the vectors were read from a store (an export), and must read back bit for bit
        (see cosine_preimage; not the default: for fresh vectors the search costs ~10x more and
        finds an exact write for only ~90% of them).
        """
        if not chunks:
            return
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk expected")
        if as_read:
            vectors = cosine_preimage(vectors)
        self._holds.pop(space, None)
        collection = self._ensure(space, model_id, vectors.shape[1])
        unique: dict[str, int] = {}
        for i, chunk in enumerate(chunks):
            unique[chunk.id] = i  # duplicate ids in one batch: the last one wins
        order = list(unique.values())
        step = self.max_batch_size
        for start in range(0, len(order), step):
            part = order[start : start + step]
            collection.upsert(
                ids=[chunks[i].id for i in part],
                embeddings=vectors[part],
                documents=[chunks[i].text for i in part],
                metadatas=[chunk_metadata(chunks[i]) for i in part],
            )

    @server_errors
    def delete(self, space: str, ids: Iterable[str]) -> None:
        """Remove chunks by id (missing ids are ignored)."""
        collection = self._get(space)
        ids = list(ids)
        if collection is None or not ids:
            return
        self._holds.pop(space, None)
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            collection.delete(ids=ids[start : start + step])

    # -- reads ---------------------------------------------------------------------------
    @server_errors
    def count(self, space: str) -> int:
        """Chunks in a space (0 when it has no collection)."""
        collection = self._get(space)
        return collection.count() if collection is not None else 0

    HOLDS_RECHECK_S = 1.0

    def holds_chunks(self, space: str) -> bool:
        """Whether a space has any chunk, for skipping empty spaces on every question.

        Only an empty verdict is asked again, at most once a second per space (a count is a round
        trip to a server, and a missing collection one more): this process's own writes are seen at
        once, another process's first chunks within that second. A space found holding chunks is not
        asked again: if another process empties it, it is only searched for nothing.
        """
        known = self._holds.get(space)
        now = self.clock()
        if known is not None and (known[0] or now - known[1] < self.HOLDS_RECHECK_S):
            return known[0]
        holds = self.count(space) > 0
        self._holds[space] = (holds, now)
        return holds

    @server_errors
    def ids(self, space: str) -> set[str]:
        """Every chunk id in a space."""
        collection = self._get(space)
        if collection is None:
            return set()
        found: set[str] = set()
        step, offset = 10_000, 0
        while True:
            page = collection.get(include=[], limit=step, offset=offset)["ids"]
            found.update(page)
            if len(page) < step:
                return found
            offset += step

    @server_errors
    def vectors(self, space: str, ids: Sequence[str], to_rewrite: bool = False) -> dict[str, tuple[str, np.ndarray]]:
        """Stored indexed text (context line + text) and vector of the given ids that exist, for re-use.

        to_rewrite: give instead the vector to write so that the store keeps exactly the one it holds
        (a re-ingest re-using it: written back as read it would drift by an ulp; see cosine_preimage).
        """
        collection = self._get(space)
        if collection is None or not ids:
            return {}
        out: dict[str, tuple[str, np.ndarray]] = {}
        for got in self._by_ids(collection, ids, ["embeddings", "documents", "metadatas"]):
            for cid, doc, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
                out[cid] = (indexed_text(doc or "", meta), np.asarray(emb, dtype=np.float32))
        if to_rewrite and out:
            rewritten = cosine_preimage(np.stack([vec for _, vec in out.values()]))
            out = {cid: (text, rewritten[i]) for i, (cid, (text, _)) in enumerate(out.items())}
        return out

    @server_errors
    def embeddings(self, space: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of the given ids that exist (nothing else read: a third of the cost of vectors())."""
        collection = self._get(space)
        if collection is None or not ids:
            return {}
        return {
            cid: np.asarray(emb, dtype=np.float32)
            for got in self._by_ids(collection, ids, ["embeddings"])
            for cid, emb in zip(got["ids"], got["embeddings"])
        }

    @server_errors
    def passages(
        self, space: str, ids: Sequence[str], where: dict | None = None, vectors: bool = True
    ) -> dict[str, tuple[Passage, np.ndarray | None]]:
        """Stored chunks by id (those matching where), with their vectors unless vectors=False; score left at 0."""
        collection = self._get(space)
        if collection is None or not ids:
            return {}
        include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        got = collection.get(ids=list(ids), where=where, include=include)
        embeddings = got["embeddings"] if vectors else [None] * len(got["ids"])
        out: dict[str, tuple[Passage, np.ndarray | None]] = {}
        for cid, doc, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], embeddings):
            out[cid] = (_passage(space, cid, doc, meta, 0.0), None if emb is None else np.asarray(emb, dtype=np.float32))
        return out

    @server_errors
    def any_matching(self, space: str, where: dict) -> bool:
        """Whether any chunk of a space passes where (one id asked for)."""
        collection = self._get(space)
        return collection is not None and bool(collection.get(where=where, limit=1, include=[])["ids"])

    def existing(self, space: str, ids: Sequence[str]) -> set[str]:
        """Which of the given ids a space holds."""
        collection = self._get(space)
        if collection is None or not ids:
            return set()
        return {cid for got in self._by_ids(collection, ids, []) for cid in got["ids"]}

    def _by_ids(self, collection, ids: Sequence[str], include: list[str]) -> Iterator[dict]:
        """collection.get of the given ids, at most max_batch_size ids a call (Chroma refuses larger ones)."""
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            yield collection.get(ids=list(ids[start : start + step]), include=include)

    def pages(self, space: str, size: int = 1000, vectors: bool = True) -> Iterator[StoredPage]:
        """Every stored chunk of a space, `size` at a time, in the store's own order."""
        collection = self._get(space)
        if collection is None:
            return
        include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        offset = 0
        while True:
            got = collection.get(include=include, limit=size, offset=offset)
            n = len(got["ids"])
            if n:
                matrix = np.asarray(got["embeddings"], dtype=np.float32) if vectors else None
                yield StoredPage(
                    space, list(got["ids"]), [d or "" for d in got["documents"]], [dict(m or {}) for m in got["metadatas"]], matrix
                )
            if n < size:
                return
            offset += size

    def texts(self, space: str, ids: Sequence[str] | None = None) -> Iterable[tuple[list[str], list[str]]]:
        """Every stored (ids, indexed texts) of a space, or those of the given ids, page by page (to rebuild side indexes)."""
        collection = self._get(space)
        if collection is None:
            return
        if ids is not None:
            ids = list(ids)
            step = self.max_batch_size
            for start in range(0, len(ids), step):
                page = collection.get(ids=ids[start : start + step], include=["documents", "metadatas"])
                if page["ids"]:
                    yield list(page["ids"]), [indexed_text(d or "", m) for d, m in zip(page["documents"], page["metadatas"])]
            return
        step, offset = 5_000, 0
        while True:
            page = collection.get(include=["documents", "metadatas"], limit=step, offset=offset)
            if page["ids"]:
                yield list(page["ids"]), [indexed_text(d or "", m) for d, m in zip(page["documents"], page["metadatas"])]
            if len(page["ids"]) < step:
                return
            offset += step

    @server_errors
    def _query(self, space: str, vector: np.ndarray, k: int, where: dict | None, include: list[str]) -> dict | None:
        collection = self._get(space)
        if collection is None or k <= 0:
            return None
        # Chroma (1.5) gives back what it has when k exceeds the count, and nothing for an empty
        # collection: no count first (a second round trip to a server on every question).
        return collection.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=k, where=where, include=include)

    def nearest(self, space: str, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """The k nearest chunk ids of a space with their cosine similarity, best first (no texts fetched)."""
        result = self._query(space, vector, k, where, ["distances"])
        if result is None:
            return []
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0])]

    def query(self, space: str, vector: np.ndarray, k: int, where: dict | None = None) -> list[Passage]:
        """The k nearest chunks of a space, best first, score = cosine similarity."""
        result = self._query(space, vector, k, where, ["documents", "metadatas", "distances"])
        if result is None:
            return []
        rows = zip(result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0])
        return [_passage(space, cid, doc, meta, 1.0 - float(dist)) for cid, doc, meta, dist in rows]


# -- exact rewrites -------------------------------------------------------------------------
# A cosine collection keeps each vector as hnswlib normalizes it (x * 1/|x|, the norm summed in
# order in float32) with its norm, and gives back that times |x|: for about one vector in ten,
# one or more components come back 1 ulp off what was written. Written back as read (a re-ingest
# re-using stored vectors, an import), a vector would drift by that much at each copy, so every
# write sends instead a vector w that this arithmetic turns into exactly the one given: per
# component the nearest value a few ulps around it that reads back right under a norm N, for N
# around the target's norm and then N = |w| until it holds still (w's own norm must be N). For
# a vector read from a store one always exists (what was written) and, for unit vectors as every
# embedder here gives, is found for every row tried; a row with none found is written as it is.
_F32 = np.float32
_STEPS = (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6)


def _norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.cumsum(x * x, axis=1, dtype=_F32)[:, -1]).astype(_F32)


def _read_back(x: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """What a Chroma cosine collection returns for written float32 vectors x (chromadb 1.5)."""
    n = _norms(x) if norms is None else norms
    inv = (_F32(1) / (n + _F32(1e-30))).astype(_F32)
    return ((x * inv[:, None]).astype(_F32) * n[:, None]).astype(_F32)


def _ulps(x: np.ndarray, k: int) -> np.ndarray:
    toward = _F32(np.inf if k > 0 else -np.inf)
    for _ in range(abs(k)):
        x = np.nextafter(x, toward).astype(_F32)
    return x


def _solve(target: np.ndarray, candidates: list[np.ndarray], norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component, the nearest candidate that reads back as target under the given norms; and whether every one was found."""
    best = target.copy()
    found = np.zeros(target.shape, dtype=bool)
    for cand in candidates:
        hit = ~found & (_read_back(cand, norm) == target)
        best[hit] = cand[hit]
        found |= hit
    return best, found.all(axis=1)


def cosine_preimage(vectors: np.ndarray) -> np.ndarray:
    """Vectors that a cosine collection gives back as exactly `vectors` (rows with none found stay as they are)."""
    v = np.ascontiguousarray(vectors, dtype=_F32)
    if v.ndim != 2 or not v.size:
        return v
    out = v.copy()
    todo = np.flatnonzero(~(_read_back(v) == v).all(axis=1))
    if not len(todo):
        return out
    target = v[todo]
    candidates = [_ulps(target, k) for k in _STEPS]
    base = _norms(target)
    open_rows = np.ones(len(todo), dtype=bool)
    following = base.copy()  # per row, the norm of its last attempt: a fixed point of N -> |w(N)| is a solution

    def accept(best: np.ndarray, complete: np.ndarray) -> None:
        good = open_rows & complete
        good[good] = (_read_back(best[good]) == target[good]).all(axis=1)
        out[todo[good]] = best[good]
        open_rows[good] = False

    for j in _STEPS[:7]:  # norms a few ulps around the target's
        if not open_rows.any():
            return out
        best, complete = _solve(target, candidates, _ulps(base, j))
        accept(best, complete)
        following = np.where(complete, _norms(best), following)
    for _ in range(8):  # then follow each row's own norm until it holds still
        if not open_rows.any():
            break
        best, complete = _solve(target, candidates, following)
        accept(best, complete)
        following = np.where(complete, _norms(best), _ulps(following, -1))
    return out


def _passage(space: str, cid: str, doc: str | None, meta: dict | None, score: float) -> Passage:
    meta = dict(meta or {})
    return Passage(
        text=doc or "",
        source=str(meta.get("source", "")),
        locator=Locator.from_fields(meta),
        score=score,
        space=space,
        id=cid,
        metadata=meta,
    )


def chunk_metadata(chunk: Chunk) -> dict:
    """Chroma metadata for a chunk: scalars only, the locator fields flattened in."""
    meta = {k: v for k, v in chunk.metadata.items() if isinstance(v, str | int | float | bool)}
    meta.update(chunk.locator.fields())
    meta["source"] = chunk.source
    return meta


def stored_chunk(cid: str, text: str, meta: dict) -> Chunk:
    """The chunk whose `chunk_metadata` is meta (the inverse of it): a stored record as written."""
    locator = Locator.from_fields(meta)
    rest = {k: v for k, v in meta.items() if k != "source" and k not in locator.fields()}
    return Chunk(id=cid, text=text, source=str(meta.get("source", "")), locator=locator, metadata=rest)
