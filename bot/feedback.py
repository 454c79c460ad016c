"""Feedback on answers (helpful / not helpful), one JSON line per vote in the data directory."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

FEEDBACK_FILE = "feedback.jsonl"


@dataclass(frozen=True)
class Feedback:
    """One vote: who rated which answer, and what the answer said and cited."""

    helpful: bool
    user: str
    platform: str
    channel: str
    question: str
    answer: str
    sources: list[dict] = field(default_factory=list)
    answer_id: str = ""
    at: float = field(default_factory=time.time)


class FeedbackStore:
    """Appends votes to <data_dir>/feedback.jsonl (append-only, safe across threads)."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / FEEDBACK_FILE
        self._lock = threading.Lock()

    def record(self, feedback: Feedback) -> None:
        """Store one vote."""
        line = json.dumps(asdict(feedback), ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def read(self) -> list[Feedback]:
        """Every stored vote, oldest first (a damaged line is skipped)."""
        if not self.path.exists():
            return []
        votes = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                votes.append(Feedback(**json.loads(line)))
            except (ValueError, TypeError):
                continue
        return votes
