"""Every citation tells its passages apart: plain text by line range, speaker-per-line text and
timeless JSON transcripts by speaker turns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ingest.chunking import chunk_document
from ingest.config import ChunkingConfig
from ingest.loaders.text import load_text
from ingest.loaders.transcripts import load_json_transcript
from rag.records import Locator
from tests.conftest import FAST_SPACES, REPO

MEETING = """Project Manager: Okay, let's get started. Today we decide the remote control's buttons.
Marketing: Mm-hmm.
User Interface: I think the power button should be red and bigger than the others.
Project Manager: Right. And what about the cost of the case?
Marketing: The whole remote must stay under twelve euros and fifty cents,
so the case has to be plastic, not titanium.
Industrial Designer: A rubber case would be cheaper than plastic and nicer to hold.
Project Manager: Then rubber it is. Next meeting we look at the battery.
"""


def _text_of(lines: int) -> str:
    return "\n".join(f"Line {i} says that the store keeps chunk number {i} of the handbook safe." for i in range(1, lines + 1))


@pytest.mark.parametrize(
    "locator, label",
    [
        (Locator(line=120, end_line=135), "lines 120-135"),
        (Locator(line=7, end_line=7), "line 7"),
        (Locator(speaker="Alice, Bob", turn=3, end_turn=7), "turns 3-7 (Alice, Bob)"),
        (Locator(speaker="Speaker A", turn=2, end_turn=2), "turn 2 (Speaker A)"),
    ],
)
def test_locator_labels(locator, label):
    assert locator.label() == label
    assert Locator.from_fields(locator.fields()) == locator


def test_plain_text_chunks_carry_the_lines_they_span():
    text = "\n\n" + _text_of(200) + "\n"
    chunks = chunk_document(load_text(text, "/docs/handbook.txt").documents[0], ChunkingConfig())
    assert len(chunks) > 3
    labels = [c.locator.label() for c in chunks]
    assert len(set(labels)) == len(labels)  # three passages of one file no longer look alike
    lines = text.split("\n")
    for chunk in chunks:
        first, last = chunk.locator.line, chunk.locator.end_line
        assert lines[first - 1].strip() and chunk.text.startswith(lines[first - 1].strip()[:20])
        assert chunk.text.endswith(lines[last - 1].strip()[-20:])
    assert chunks[0].locator.line == 3


def test_speaker_per_line_text_is_read_as_a_transcript_with_turns():
    doc = load_text(MEETING, "/meetings/kickoff.txt").documents[0]
    assert doc.kind == "transcript"
    assert [s.locator.speaker for s in doc.sections][:3] == ["Project Manager", "Marketing", "User Interface"]
    assert doc.sections[4].text.endswith("not titanium.")  # a line without a label continues the turn
    assert [s.locator.turn for s in doc.sections] == list(range(1, 8))
    chunks = chunk_document(doc, ChunkingConfig(transcript_max_tokens=60, overlap_tokens=0))
    assert len(chunks) >= 2
    assert chunks[0].locator.label().startswith("turns 1-")
    assert "Project Manager" in chunks[0].locator.label()
    assert "Marketing: Mm-hmm." in chunks[0].text


@pytest.mark.parametrize(
    "text",
    [
        "Note: this is a file.\nIt has prose.\nTip: labels are not speakers.\nMore prose here.\n",
        "Alice: one line only and then prose.\nThe rest of this file is prose.\nMore prose.\nAnd more prose.\n",
        "Alice: hi\nAlice: again\nAlice: and again\nAlice: still me\n",  # one voice: a list, not a meeting
    ],
)
def test_prose_with_colons_stays_plain_text(text):
    assert load_text(text, "/docs/notes.txt").documents[0].kind == "text"


def test_json_transcript_without_times_is_accepted_with_turns():
    data = {"utterances": [
        {"speaker": "A", "text": "Welcome to the budget review."},
        {"speaker": "B", "text": "Thanks. The cloud bill doubled in March."},
        {"speaker": "A", "text": "Then we move the batch jobs to spot instances."},
    ]}
    result = load_json_transcript(json.dumps(data), "/talks/review.json")
    assert not result.warnings
    chunks = chunk_document(result.documents[0], ChunkingConfig())
    assert chunks[0].locator.label() == "turns 1-3 (Speaker A, Speaker B)"
    assert chunks[0].locator.start_s is None


def test_json_transcript_with_some_bad_times_still_reports_them():
    data = {"segments": [{"start": 0, "end": 2, "text": "Hello."}, {"start": "x", "end": 3, "text": "Broken."}]}
    result = load_json_transcript(json.dumps(data), "/talks/w.json")
    assert len(result.documents[0].sections) == 1 and result.warnings


def test_search_shows_a_distinct_locator_for_each_passage_of_one_text_file(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data_dir": "state", **FAST_SPACES}), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "handbook.txt").write_text(_text_of(300), encoding="utf-8")
    (tmp_path / "docs" / "kickoff.txt").write_text(MEETING, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "bot", *a], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run("ingest", "docs").returncode == 0
    hits = json.loads(run("search", "--json", "-k", "10", "store keeps chunk number handbook").stdout)
    handbook = [h for h in hits if h["source"].endswith("handbook.txt")]
    assert len(handbook) >= 2
    assert all(h["locator"].startswith("lines ") and "line" in h and "end_line" in h for h in handbook)
    assert len({h["locator"] for h in handbook}) == len(handbook)
    meeting = json.loads(run("search", "--json", "rubber case cheaper than plastic").stdout)
    turn = next(h for h in meeting if h["source"].endswith("kickoff.txt"))
    assert turn["locator"].startswith("turn") and "Industrial Designer" in turn["locator"] and turn["turn"] >= 1
