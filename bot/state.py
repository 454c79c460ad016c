"""What a running bot remembers, behind one interface: shared by every worker, kept across restarts.

A bot process used to hold all of this in its own memory, so a restart forgot every thread and
two workers each answered a retried event. The `StateStore` interface holds:

- delivered event ids (set-if-absent with an expiry): a retried Slack event is answered once,
  whichever worker gets the retry;
- per-user rate windows (sliding window, counted atomically);
- thread turns (the conversation a follow-up continues), the most recent `capacity` threads;
- answer records behind the Share and feedback buttons, with an expiry;
- feedback votes (`ragbot feedback` reads them; a `feedback.jsonl` of earlier versions is
  imported once);
- named locks with an expiry and an info record: the admin re-ingest lock (one at a time
  across all workers; its info carries who started it and the progress `/ragbot-status`
  shows) and the per-thread lock that keeps one thread's turns in order.

Backends (`state.backend`):

- `sqlite` (default): one file, `state.path` or `<data_dir>/state.sqlite`. Survives restarts;
  safe for several processes on one host (WAL, a busy timeout, each read-modify-write in one
  `BEGIN IMMEDIATE` transaction or a single `INSERT ... ON CONFLICT` statement).
- `redis`: several hosts. `state.url` names the server; its password comes from the variable
  named by `state.password_env` (never from the URL, never in a log line or an error).
  Set-if-absent is `SET NX PX`; rate windows and lock hand-overs are Lua scripts (atomic).
- `memory`: one process, nothing kept (tests, `ragbot chat`).

Times are wall-clock seconds (`time.time`; Redis rate windows use the server's clock), so
expiries mean the same in every process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from bot.feedback import FEEDBACK_FILE, Feedback, read_feedback_file
from rag.conversation import Turn
from rag.errors import RagError

if TYPE_CHECKING:
    from bot.config import StateConfig

logger = logging.getLogger(__name__)

STATE_FILE = "state.sqlite"
INGEST_LOCK = "ingest"
Clock = Callable[[], float]


class StateError(RagError):
    """The state store cannot be opened or reached (the message never holds a password)."""


@runtime_checkable
class StateStore(Protocol):
    """What the bot core and the chat adapters keep between questions, processes and restarts."""

    def first_delivery(self, event_id: str, ttl_s: float) -> bool:
        """True the first time an id is seen within ttl_s (in any process), False for a repeat."""
        ...

    def rate_check(self, key: str, limit: int, window_s: float) -> float:
        """0 when key may go ahead (and counts it), else the seconds to wait (at most limit per window_s)."""
        ...

    def thread_turns(self, key: str) -> list[Turn] | None:
        """The remembered turns of a thread, oldest first; None when the thread is unknown."""
        ...

    def add_turn(self, key: str, turn: Turn, keep: int) -> None:
        """Append a finished turn to a thread, keeping its last `keep` turns."""
        ...

    def knows_thread(self, key: str) -> bool:
        """Whether a thread has remembered turns."""
        ...

    def put_answer(self, answer_id: str, record: dict, ttl_s: float) -> None:
        """Keep an answer (JSON-able) for its buttons, for ttl_s."""
        ...

    def get_answer(self, answer_id: str) -> dict | None:
        """An answer kept by put_answer, or None when unknown or expired."""
        ...

    def add_feedback(self, vote: Feedback) -> None:
        """Store a vote; the same user voting again on the same answer replaces the earlier vote."""
        ...

    def read_feedback(self) -> list[Feedback]:
        """Every vote, oldest first."""
        ...

    def import_once(self, name: str, load: Callable[[], list[Feedback]]) -> int:
        """Add the votes load() returns the first time any process opens this store with name; how many."""
        ...

    def try_lock(self, name: str, info: dict, ttl_s: float) -> str | None:
        """Take a named lock for ttl_s unless someone holds it: a token to release it with, else None."""
        ...

    def refresh_lock(self, name: str, token: str, info: dict, ttl_s: float) -> bool:
        """Extend a held lock and replace its info; False when the lock is no longer ours."""
        ...

    def release_lock(self, name: str, token: str) -> None:
        """Release a lock if the token still holds it."""
        ...

    def lock_info(self, name: str) -> dict | None:
        """The info of a held lock (None when free or expired)."""
        ...

    def add_job(self, job_id: str, holder: str, record: dict, ttl_s: float) -> None:
        """Note a question holder accepted and has not answered yet (JSON-able; forgotten after ttl_s)."""
        ...

    def finish_job(self, job_id: str) -> None:
        """Forget a job: answered (or given up)."""
        ...

    def jobs(self) -> list[tuple[str, str, dict]]:
        """Every unfinished, unexpired job: (id, holder, record)."""
        ...

    def take_job(self, job_id: str, holder: str, new_holder: str) -> bool:
        """Move a job from holder to new_holder; False when it is gone or someone else moved it first."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@contextmanager
def held(state: StateStore, name: str, ttl_s: float = 120.0, wait_s: float = 60.0, poll_s: float = 0.05,
         info: dict | None = None, abandoned: Callable[[dict], bool] | None = None) -> Iterator[bool]:
    """Hold a named lock while the block runs (waiting up to wait_s for it); yields whether it was taken.

    After wait_s the block runs anyway (a stuck holder must not stop the bot) and yields False;
    so it does at once when abandoned(the holder's info) says the holder is gone (checked every
    half second while waiting).
    """
    deadline = time.monotonic() + wait_s
    token = state.try_lock(name, info or {}, ttl_s)
    next_check = time.monotonic() + 0.5
    while token is None and time.monotonic() < deadline:
        time.sleep(poll_s)
        token = state.try_lock(name, info or {}, ttl_s)
        if token is None and abandoned is not None and time.monotonic() >= next_check:
            next_check = time.monotonic() + 0.5
            holder = state.lock_info(name)
            if holder is not None and abandoned(holder):
                logger.warning("lock %s is held by a process that stopped; going ahead without it", name)
                break
    else:
        if token is None:
            logger.warning("lock %s still held after %g s; going ahead without it", name, wait_s)
    try:
        yield token is not None
    finally:
        if token is not None:
            state.release_lock(name, token)


class HeldElsewhereError(RagError):
    """A named lock another process holds (and keeps refreshing)."""


@contextmanager
def exclusive(state: StateStore, name: str, what: str, ttl_s: float = 60.0, refresh_s: float | None = None) -> Iterator[None]:
    """Hold a named lock for as long as the block runs, refreshed every refresh_s (ttl_s / 3); refuse if held.

    For work that must run in one process only across everything sharing the state store (one
    Discord gateway connection per bot token). A holder that dies without releasing it frees it
    after ttl_s. Raises HeldElsewhereError naming the holder (host:pid) and the fix.
    """
    info = {"holder": holder_name(), "since": time.time()}
    token = state.try_lock(name, info, ttl_s)
    if token is None:
        other = state.lock_info(name) or {}
        since = other.get("since")
        held_for = f", for {time.time() - since:.0f} s" if isinstance(since, (int, float)) else ""
        raise HeldElsewhereError(
            f"{what} is already held by {other.get('holder', 'another process')}{held_for}. Stop that process first "
            f"(if it died without stopping, its hold lapses within {ttl_s:g} s)."
        )
    stop = threading.Event()

    def keep() -> None:
        nonlocal token
        while not stop.wait(ttl_s / 3 if refresh_s is None else refresh_s):
            try:
                if state.refresh_lock(name, token, info, ttl_s):
                    continue
                retaken = state.try_lock(name, info, ttl_s)  # lapsed while this process was stalled
            except RagError as exc:
                logger.warning("could not refresh the hold on %s: %s", what, exc)
                continue
            if retaken is None:
                logger.error("lost the hold on %s to %s", what, (state.lock_info(name) or {}).get("holder", "another process"))
            else:
                token = retaken

    keeper = threading.Thread(target=keep, name=f"hold-{name}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=5)
        try:
            state.release_lock(name, token)
        except RagError as exc:
            logger.warning("could not release the hold on %s: %s", what, exc)


def holder_name() -> str:
    """host:pid of this process, for lock info."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _vote_key(vote: Feedback, fallback: str = "") -> str:
    return f"{vote.answer_id}:{vote.platform}:{vote.user}" if vote.answer_id else f"legacy:{fallback or uuid.uuid4().hex}"


def _vote_json(vote: Feedback) -> str:
    return json.dumps(asdict(vote), ensure_ascii=False)


def _vote_from(text: str) -> Feedback | None:
    try:
        return Feedback(**json.loads(text))
    except (ValueError, TypeError):
        return None


def _turns_json(turns) -> str:
    return json.dumps([[t.question, t.standalone, t.answer] for t in turns], ensure_ascii=False)


def _turns_from(text: str) -> list[Turn]:
    return [Turn(*item) for item in json.loads(text)]


# -- memory ------------------------------------------------------------------------------------


class MemoryState:
    """Everything in this process's memory: fast, forgotten on exit, not shared (tests, the CLI)."""

    def __init__(self, capacity: int = 1000, clock: Clock = time.time, max_events: int = 100_000):
        self.capacity = capacity
        self.clock = clock
        self.max_events = max_events
        self._lock = threading.Lock()
        self._events: OrderedDict[str, float] = OrderedDict()  # id -> expiry
        self._rates: dict[str, deque[float]] = {}
        self._threads: OrderedDict[str, list[Turn]] = OrderedDict()
        self._answers: dict[str, tuple[float, dict]] = {}
        self._votes: dict[str, Feedback] = {}
        self._locks: dict[str, tuple[str, float, dict]] = {}
        self._imported: set[str] = set()
        self._jobs: dict[str, tuple[str, float, dict]] = {}  # id -> (holder, expiry, record)

    def first_delivery(self, event_id: str, ttl_s: float) -> bool:
        now = self.clock()
        with self._lock:
            while self._events and (next(iter(self._events.values())) <= now or len(self._events) > self.max_events):
                self._events.popitem(last=False)
            expiry = self._events.get(event_id)
            if expiry is not None and expiry > now:
                return False
            self._events[event_id] = now + ttl_s
            return True

    def rate_check(self, key: str, limit: int, window_s: float) -> float:
        now = self.clock()
        with self._lock:
            events = self._rates.setdefault(key, deque())
            while events and now - events[0] >= window_s:
                events.popleft()
            if len(events) >= limit:
                return max(window_s - (now - events[0]), 0.1)
            events.append(now)
            return 0.0

    def thread_turns(self, key: str) -> list[Turn] | None:
        with self._lock:
            turns = self._threads.get(key)
            if turns is None:
                return None
            self._threads.move_to_end(key)
            return list(turns)

    def add_turn(self, key: str, turn: Turn, keep: int) -> None:
        with self._lock:
            turns = self._threads.pop(key, [])
            self._threads[key] = (turns + [turn])[-max(keep, 1):]
            while len(self._threads) > self.capacity:
                self._threads.popitem(last=False)

    def knows_thread(self, key: str) -> bool:
        with self._lock:
            return key in self._threads

    def put_answer(self, answer_id: str, record: dict, ttl_s: float) -> None:
        now = self.clock()
        with self._lock:
            if len(self._answers) > 10_000:
                self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
            self._answers[answer_id] = (now + ttl_s, json.loads(json.dumps(record)))

    def get_answer(self, answer_id: str) -> dict | None:
        with self._lock:
            item = self._answers.get(answer_id)
        return item[1] if item and item[0] > self.clock() else None

    def add_feedback(self, vote: Feedback) -> None:
        with self._lock:
            self._votes.pop(_vote_key(vote), None)
            self._votes[_vote_key(vote)] = vote

    def read_feedback(self) -> list[Feedback]:
        with self._lock:
            return sorted(self._votes.values(), key=lambda v: v.at)

    def try_lock(self, name: str, info: dict, ttl_s: float) -> str | None:
        now = self.clock()
        with self._lock:
            held_by = self._locks.get(name)
            if held_by is not None and held_by[1] > now:
                return None
            token = uuid.uuid4().hex
            self._locks[name] = (token, now + ttl_s, dict(info))
            return token

    def refresh_lock(self, name: str, token: str, info: dict, ttl_s: float) -> bool:
        now = self.clock()
        with self._lock:
            held_by = self._locks.get(name)
            if held_by is None or held_by[0] != token or held_by[1] <= now:
                return False
            self._locks[name] = (token, now + ttl_s, dict(info))
            return True

    def release_lock(self, name: str, token: str) -> None:
        with self._lock:
            if name in self._locks and self._locks[name][0] == token:
                del self._locks[name]

    def lock_info(self, name: str) -> dict | None:
        with self._lock:
            held_by = self._locks.get(name)
        return dict(held_by[2]) if held_by is not None and held_by[1] > self.clock() else None

    def import_once(self, name: str, load: Callable[[], list[Feedback]]) -> int:
        """Import votes from an old file once per store."""
        with self._lock:
            if name in self._imported:
                return 0
            self._imported.add(name)
        votes = load()
        with self._lock:
            for i, vote in enumerate(votes):
                self._votes[f"import:{name}:{i}"] = vote
        return len(votes)

    def add_job(self, job_id: str, holder: str, record: dict, ttl_s: float) -> None:
        with self._lock:
            self._jobs[job_id] = (holder, self.clock() + ttl_s, dict(record))

    def finish_job(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def jobs(self) -> list[tuple[str, str, dict]]:
        now = self.clock()
        with self._lock:
            for job_id in [j for j, (_, expiry, _) in self._jobs.items() if expiry <= now]:
                del self._jobs[job_id]
            return [(j, holder, dict(record)) for j, (holder, _, record) in self._jobs.items()]

    def take_job(self, job_id: str, holder: str, new_holder: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job[0] != holder or job[1] <= self.clock():
                return False
            self._jobs[job_id] = (new_holder, job[1], job[2])
            return True

    def close(self) -> None:
        pass


# -- sqlite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rates (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rates_key ON rates (key, at);
CREATE TABLE IF NOT EXISTS threads (key TEXT PRIMARY KEY, turns TEXT NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS threads_updated ON threads (updated);
CREATE TABLE IF NOT EXISTS answers (id TEXT PRIMARY KEY, record TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (key TEXT PRIMARY KEY, at REAL NOT NULL, vote TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL NOT NULL, record TEXT NOT NULL);
"""


class SQLiteState:
    """One SQLite file shared by the processes of one host (WAL; a connection per thread)."""

    PURGE_EVERY_S = 60.0

    def __init__(self, path: Path, capacity: int = 1000, thread_ttl_s: float = 30 * 86400, clock: Clock = time.time,
                 busy_timeout_s: float = 10.0):
        self.path = Path(path)
        self.capacity = capacity
        self.thread_ttl_s = thread_ttl_s
        self.clock = clock
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._last_purge = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self._db()
            db.execute("PRAGMA journal_mode=WAL")
            with self._write(db):
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
        except sqlite3.Error as exc:
            raise StateError(f"Cannot open the bot state file {self.path}: {exc}. Check that the folder is writable "
                             "(state.path, or data_dir) and the disk is not full.") from None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    @contextmanager
    def _write(self, db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One read-modify-write transaction, holding the write lock from its start."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        if now - self._last_purge < self.PURGE_EVERY_S:
            return
        self._last_purge = now
        with self._write(db):
            db.execute("DELETE FROM events WHERE expires <= ?", (now,))
            db.execute("DELETE FROM answers WHERE expires <= ?", (now,))
            db.execute("DELETE FROM rates WHERE at < ?", (now - 86400,))
            db.execute("DELETE FROM threads WHERE updated < ?", (now - self.thread_ttl_s,))
            db.execute(
                "DELETE FROM threads WHERE key IN (SELECT key FROM threads ORDER BY updated DESC LIMIT -1 OFFSET ?)",
                (self.capacity,),
            )

    def first_delivery(self, event_id: str, ttl_s: float) -> bool:
        now = self.clock()
        db = self._db()
        self._purge(db, now)
        cursor = db.execute(
            "INSERT INTO events (id, expires) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET expires = excluded.expires "
            "WHERE events.expires <= ?",
            (event_id, now + ttl_s, now),
        )
        return cursor.rowcount == 1

    def rate_check(self, key: str, limit: int, window_s: float) -> float:
        now = self.clock()
        db = self._db()
        with self._write(db):
            db.execute("DELETE FROM rates WHERE key = ? AND at <= ?", (key, now - window_s))
            count, oldest = db.execute("SELECT COUNT(*), MIN(at) FROM rates WHERE key = ?", (key,)).fetchone()
            if count >= limit:
                return max(window_s - (now - oldest), 0.1)
            db.execute("INSERT INTO rates (key, at) VALUES (?, ?)", (key, now))
            return 0.0

    def thread_turns(self, key: str) -> list[Turn] | None:
        row = self._db().execute(
            "SELECT turns FROM threads WHERE key = ? AND updated > ?", (key, self.clock() - self.thread_ttl_s)
        ).fetchone()
        return _turns_from(row[0]) if row else None

    def add_turn(self, key: str, turn: Turn, keep: int) -> None:
        db = self._db()
        now = self.clock()
        self._purge(db, now)
        with self._write(db):
            row = db.execute("SELECT turns FROM threads WHERE key = ?", (key,)).fetchone()
            turns = (_turns_from(row[0]) if row else []) + [turn]
            db.execute(
                "INSERT INTO threads (key, turns, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET turns = excluded.turns, updated = excluded.updated",
                (key, _turns_json(turns[-max(keep, 1):]), now),
            )

    def knows_thread(self, key: str) -> bool:
        return self.thread_turns(key) is not None

    def put_answer(self, answer_id: str, record: dict, ttl_s: float) -> None:
        self._purge(self._db(), self.clock())
        self._db().execute(
            "INSERT OR REPLACE INTO answers (id, record, expires) VALUES (?, ?, ?)",
            (answer_id, json.dumps(record, ensure_ascii=False), self.clock() + ttl_s),
        )

    def get_answer(self, answer_id: str) -> dict | None:
        row = self._db().execute(
            "SELECT record FROM answers WHERE id = ? AND expires > ?", (answer_id, self.clock())
        ).fetchone()
        return json.loads(row[0]) if row else None

    def add_feedback(self, vote: Feedback) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO feedback (key, at, vote) VALUES (?, ?, ?)", (_vote_key(vote), vote.at, _vote_json(vote))
        )

    def read_feedback(self) -> list[Feedback]:
        rows = self._db().execute("SELECT vote FROM feedback ORDER BY at, rowid").fetchall()
        return [vote for vote in (_vote_from(r[0]) for r in rows) if vote is not None]

    def import_once(self, name: str, load: Callable[[], list[Feedback]]) -> int:
        """Import votes from an old file the first time any process opens this store; how many."""
        db = self._db()
        with self._write(db):
            if db.execute("SELECT 1 FROM meta WHERE key = ?", (f"imported:{name}",)).fetchone():
                return 0
            votes = load()
            for i, vote in enumerate(votes):
                db.execute(
                    "INSERT OR IGNORE INTO feedback (key, at, vote) VALUES (?, ?, ?)",
                    (f"import:{name}:{i}", vote.at, _vote_json(vote)),
                )
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"imported:{name}", str(self.clock())))
            return len(votes)

    def try_lock(self, name: str, info: dict, ttl_s: float) -> str | None:
        now = self.clock()
        token = uuid.uuid4().hex
        cursor = self._db().execute(
            "INSERT INTO locks (name, token, expires, info) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "token = excluded.token, expires = excluded.expires, info = excluded.info WHERE locks.expires <= ?",
            (name, token, now + ttl_s, json.dumps(info, ensure_ascii=False), now),
        )
        return token if cursor.rowcount == 1 else None

    def refresh_lock(self, name: str, token: str, info: dict, ttl_s: float) -> bool:
        now = self.clock()
        cursor = self._db().execute(
            "UPDATE locks SET expires = ?, info = ? WHERE name = ? AND token = ? AND expires > ?",
            (now + ttl_s, json.dumps(info, ensure_ascii=False), name, token, now),
        )
        return cursor.rowcount == 1

    def release_lock(self, name: str, token: str) -> None:
        self._db().execute("DELETE FROM locks WHERE name = ? AND token = ?", (name, token))

    def lock_info(self, name: str) -> dict | None:
        row = self._db().execute("SELECT info FROM locks WHERE name = ? AND expires > ?", (name, self.clock())).fetchone()
        return json.loads(row[0]) if row else None

    def add_job(self, job_id: str, holder: str, record: dict, ttl_s: float) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO jobs (id, holder, expires, record) VALUES (?, ?, ?, ?)",
            (job_id, holder, self.clock() + ttl_s, json.dumps(record, ensure_ascii=False)),
        )

    def finish_job(self, job_id: str) -> None:
        self._db().execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def jobs(self) -> list[tuple[str, str, dict]]:
        db = self._db()
        db.execute("DELETE FROM jobs WHERE expires <= ?", (self.clock(),))
        return [(j, holder, json.loads(record)) for j, holder, record in db.execute("SELECT id, holder, record FROM jobs ORDER BY rowid")]

    def take_job(self, job_id: str, holder: str, new_holder: str) -> bool:
        cursor = self._db().execute(
            "UPDATE jobs SET holder = ? WHERE id = ? AND holder = ? AND expires > ?", (new_holder, job_id, holder, self.clock())
        )
        return cursor.rowcount == 1

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()


# -- redis -------------------------------------------------------------------------------------

# a sliding window counted on the server's clock: KEYS[1] the window's sorted set; ARGV limit, window ms
_RATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return window - (now - tonumber(oldest[2]))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""
# KEYS[1] the lock; ARGV token, ttl ms, new value: extend only while the token holds it
_REFRESH_LUA = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if cjson.decode(v)['token'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
return 1
"""
# KEYS[1] the job holders' hash; ARGV job id, holder, new holder: move the job only while holder has it
_TAKE_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
_RELEASE_LUA = """
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redacted_url(url: str) -> str:
    """A URL without any password in it (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class RedisState:
    """A Redis server shared by every worker on every host."""

    def __init__(self, url: str, password: str | None = None, prefix: str = "ragbot", capacity: int = 1000,
                 thread_ttl_s: float = 30 * 86400, clock: Clock = time.time):
        import redis

        self._redis_errors = (redis.RedisError,)
        self.url = redacted_url(url)
        self.prefix = prefix.rstrip(":") + ":"
        self.capacity = capacity
        self.thread_ttl_ms = int(thread_ttl_s * 1000)
        self.clock = clock
        try:
            self.r = redis.Redis.from_url(url, password=password, decode_responses=True, socket_timeout=10,
                                          socket_connect_timeout=5, health_check_interval=30)
            self.r.ping()
        except redis.AuthenticationError:
            raise StateError(
                f"The Redis server at {self.url} refused the password. Set the variable named by state.password_env "
                "to the server's requirepass (or the ACL user's password)."
            ) from None
        except redis.RedisError as exc:
            raise StateError(f"Cannot reach the Redis server at {self.url} ({type(exc).__name__}: "
                             f"{self._clean(str(exc), password)}). Start it (redis-server) or fix state.url.") from None
        self._rate = self.r.register_script(_RATE_LUA)
        self._refresh = self.r.register_script(_REFRESH_LUA)
        self._release = self.r.register_script(_RELEASE_LUA)
        self._take = self.r.register_script(_TAKE_LUA)

    @staticmethod
    def _clean(text: str, password: str | None) -> str:
        return text.replace(password, "***") if password else text

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def first_delivery(self, event_id: str, ttl_s: float) -> bool:
        return bool(self.r.set(self._k("event", event_id), "1", nx=True, px=max(int(ttl_s * 1000), 1)))

    def rate_check(self, key: str, limit: int, window_s: float) -> float:
        wait_ms = self._rate(keys=[self._k("rate", key)], args=[limit, int(window_s * 1000), uuid.uuid4().hex])
        return max(int(wait_ms) / 1000, 0.1) if int(wait_ms) > 0 else 0.0

    def thread_turns(self, key: str) -> list[Turn] | None:
        items = self.r.lrange(self._k("thread", key), 0, -1)
        return [Turn(*json.loads(item)) for item in items] if items else None

    def add_turn(self, key: str, turn: Turn, keep: int) -> None:
        name = self._k("thread", key)
        index = self._k("threads")
        pipe = self.r.pipeline(transaction=True)
        pipe.rpush(name, json.dumps([turn.question, turn.standalone, turn.answer], ensure_ascii=False))
        pipe.ltrim(name, -max(keep, 1), -1)
        pipe.pexpire(name, self.thread_ttl_ms)
        pipe.zadd(index, {key: self.clock()})
        pipe.zcard(index)
        size = pipe.execute()[-1]
        if size > self.capacity:  # the least recently used threads beyond capacity are forgotten
            for old, _ in self.r.zpopmin(index, size - self.capacity):
                self.r.delete(self._k("thread", old))

    def knows_thread(self, key: str) -> bool:
        return bool(self.r.exists(self._k("thread", key)))

    def put_answer(self, answer_id: str, record: dict, ttl_s: float) -> None:
        self.r.set(self._k("answer", answer_id), json.dumps(record, ensure_ascii=False), px=max(int(ttl_s * 1000), 1))

    def get_answer(self, answer_id: str) -> dict | None:
        text = self.r.get(self._k("answer", answer_id))
        return json.loads(text) if text else None

    def add_feedback(self, vote: Feedback) -> None:
        self.r.hset(self._k("feedback"), _vote_key(vote), _vote_json(vote))

    def read_feedback(self) -> list[Feedback]:
        votes = [_vote_from(v) for v in self.r.hgetall(self._k("feedback")).values()]
        return sorted((v for v in votes if v is not None), key=lambda v: v.at)

    def import_once(self, name: str, load: Callable[[], list[Feedback]]) -> int:
        """Import votes from an old file the first time any process opens this store (idempotent keys)."""
        flag = self._k("imported", name)
        if self.r.exists(flag):
            return 0
        votes = load()
        if votes:
            pipe = self.r.pipeline(transaction=True)  # HSETNX: a vote already there is kept
            for i, vote in enumerate(votes):
                pipe.hsetnx(self._k("feedback"), f"import:{name}:{i}", _vote_json(vote))
            pipe.execute()
        return len(votes) if self.r.set(flag, str(self.clock()), nx=True) else 0

    def try_lock(self, name: str, info: dict, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        value = json.dumps({"token": token, "info": info}, ensure_ascii=False)
        return token if self.r.set(self._k("lock", name), value, nx=True, px=max(int(ttl_s * 1000), 1)) else None

    def refresh_lock(self, name: str, token: str, info: dict, ttl_s: float) -> bool:
        value = json.dumps({"token": token, "info": info}, ensure_ascii=False)
        return bool(self._refresh(keys=[self._k("lock", name)], args=[token, max(int(ttl_s * 1000), 1), value]))

    def release_lock(self, name: str, token: str) -> None:
        self._release(keys=[self._k("lock", name)], args=[token])

    def lock_info(self, name: str) -> dict | None:
        text = self.r.get(self._k("lock", name))
        return json.loads(text)["info"] if text else None

    def add_job(self, job_id: str, holder: str, record: dict, ttl_s: float) -> None:
        pipe = self.r.pipeline(transaction=True)  # the holder apart: taking a job over rewrites only it
        pipe.hset(self._k("jobs"), job_id, json.dumps({"expires": self.clock() + ttl_s, "record": record}, ensure_ascii=False))
        pipe.hset(self._k("job-holders"), job_id, holder)
        pipe.execute()

    def finish_job(self, job_id: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self._k("jobs"), job_id)
        pipe.hdel(self._k("job-holders"), job_id)
        pipe.execute()

    def jobs(self) -> list[tuple[str, str, dict]]:
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(self._k("jobs"))
        pipe.hgetall(self._k("job-holders"))
        records, holders = pipe.execute()
        now, found, expired = self.clock(), [], []
        for job_id, text in records.items():
            job = json.loads(text)
            if job["expires"] <= now or job_id not in holders:
                expired.append(job_id)
            else:
                found.append((job_id, holders[job_id], job["record"]))
        for job_id in expired:
            self.finish_job(job_id)
        return found

    def take_job(self, job_id: str, holder: str, new_holder: str) -> bool:
        return bool(self._take(keys=[self._k("job-holders")], args=[job_id, holder, new_holder]))

    def close(self) -> None:
        self.r.close()


# -- opening the configured store --------------------------------------------------------------

def state_path(config: StateConfig, data_dir: Path) -> Path:
    """The SQLite state file: state.path, else <data_dir>/state.sqlite."""
    return Path(config.path).expanduser() if config.path else Path(data_dir) / STATE_FILE


def open_state(config: StateConfig, data_dir: Path, capacity: int = 1000) -> StateStore:
    """The configured state store; an old <data_dir>/feedback.jsonl is imported into it once."""
    if config.backend == "memory":
        store: StateStore = MemoryState(capacity)
    elif config.backend == "redis":
        store = RedisState(config.url, config.secret_value("password"), config.key_prefix, capacity, config.thread_ttl_s)
    else:
        store = SQLiteState(state_path(config, data_dir), capacity, config.thread_ttl_s)
    legacy = Path(data_dir) / FEEDBACK_FILE
    if legacy.exists():
        try:
            count = store.import_once(FEEDBACK_FILE, lambda: read_feedback_file(legacy))
        except BaseException:
            store.close()
            raise
        if count:
            logger.warning("imported %d vote(s) from %s into the %s state store (once; the file may be removed)",
                           count, legacy, config.backend)
    return store
