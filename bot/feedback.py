"""Feedback on answers (helpful / not helpful): one vote per user and answer, kept in the state store.

Earlier versions appended votes to <data_dir>/feedback.jsonl; `bot.state.open_state` imports
that file into the configured store once (`read_feedback_file`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
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


def read_feedback_file(path: Path) -> list[Feedback]:
    """The votes of an old feedback.jsonl, oldest first (a damaged line is skipped)."""
    votes = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            votes.append(Feedback(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return votes
