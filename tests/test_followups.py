"""Follow-ups without an LLM: the README's own chat demo, and the rewrite's rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from rag.conversation import Conversation, rewrite_without_llm
from tests.conftest import REPO, SAMPLES


def _rewrite(first: str, follow: str) -> str:
    conversation = Conversation()
    conversation.add(first, first, "an answer")
    return rewrite_without_llm(conversation, follow)


@pytest.mark.parametrize(
    "first, follow, carried, dropped",
    [
        # a new condition replaces the old one: the old condition must not steer retrieval back
        ("What happens when I delete a file and re-ingest?", "and if the file is broken?", ["happens"], ["delete"]),
        # a pronoun points back into the old condition: its nouns come along
        ("What happens if a file is broken?", "and if I delete it?", ["file", "broken"], []),
        ("How are transcripts cited?", "and SRT files?", ["transcripts", "cited"], []),
        ("How do I switch to OpenAI embeddings?", "do I have to rebuild the index after that?", ["openai"], []),
    ],
)
def test_rewrite_carries_the_topic_not_the_old_condition(first, follow, carried, dropped):
    rewritten = _rewrite(first, follow)
    assert rewritten.startswith(follow)
    assert all(word in rewritten for word in carried), rewritten
    assert not any(word in rewritten for word in dropped), rewritten


def test_a_standalone_question_is_left_alone():
    question = "Which file types can ragbot read from a folder of meeting notes?"
    assert _rewrite("Who can run /ragbot-ingest?", question) == question


@pytest.mark.integration
def test_readme_chat_demo_answers_the_follow_up_not_the_previous_question(tmp_path):
    # README: ragbot chat, "What happens when I delete a file and re-ingest?", then "and if the file is broken?"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert 'ragbot ask "What happens when I delete a file and re-ingest?"' in readme
    assert 'follow up: "and if the file is broken?"' in readme
    shutil.copytree(SAMPLES, tmp_path / "samples")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data_dir": "state", "llm": {"provider": "extractive"}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *a, **kw: subprocess.run([sys.executable, "-m", "bot", *a], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, **kw)
    assert run("ingest", "samples").returncode == 0
    chat = run("chat", input="What happens when I delete a file and re-ingest?\nand if the file is broken?\n")
    assert chat.returncode == 0, chat.stderr[-2000:]
    first, second = chat.stdout.split("> and if the file is broken?")
    assert "removed" in first  # the delete answer: its chunks are removed
    assert "keeps its old chunks" in second and "What happens if a file is broken?" in second
    assert "Its chunks are removed from the index" not in second
