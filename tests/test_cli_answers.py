"""`ragbot ask`, `ragbot chat` and the Answers line of `ragbot status`, run as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import FAST_SPACES, SAMPLES
from tests.fakes import FakeOpenAIServer
from tests.test_cli import ragbot

# the hashing embedder's similarities are low; a floor that suits it
FAST_ANSWER = {
    "embedding": {
        "spaces": {name: {**space, "min_score": 0.12} for name, space in FAST_SPACES["embedding"]["spaces"].items()},
        "routing": FAST_SPACES["embedding"]["routing"],
    }
}
NO_KEY = {"OPENAI_API_KEY": ""}


@pytest.fixture
def ingested(tmp_path):
    """A folder with a fast config and the sample corpus ingested."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data_dir": "state", **FAST_SPACES, **FAST_ANSWER}), encoding="utf-8")
    shutil.copytree(SAMPLES, tmp_path / "samples")
    assert ragbot("ingest", "samples", cwd=tmp_path).returncode == 0
    return tmp_path


def with_llm(workdir: Path, base_url: str, timeout_s: float = 20) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["llm"] = {"base_url": base_url, "model": "local", "timeout_s": timeout_s}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def test_ask_json_contract_in_extractive_mode(ingested):
    out = ragbot("ask", "--json", "Who can run /ragbot-ingest?", cwd=ingested, env=NO_KEY)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"answer", "citations", "mode", "found"}
    assert data["mode"] == "extractive" and data["found"] is True and data["citations"]
    for c in data["citations"]:
        assert {"n", "source", "locator"} <= set(c) and f"[{c['n']}]" in data["answer"]


def test_ask_prints_answer_then_sources(ingested):
    out = ragbot("ask", "What happens when I delete a file and re-ingest?", cwd=ingested, env=NO_KEY)
    assert out.returncode == 0, out.stderr
    assert "From the documents" in out.stdout and "\nSources:\n" in out.stdout and "faq.md" in out.stdout


def test_not_found_with_a_high_floor_names_closest_sources(ingested):
    config = yaml.safe_load((ingested / "config.yaml").read_text())
    for space in config["embedding"]["spaces"].values():
        space["min_score"] = 0.99
    (ingested / "config.yaml").write_text(yaml.safe_dump(config))
    data = json.loads(ragbot("ask", "--json", "What is the parental leave policy?", cwd=ingested, env=NO_KEY).stdout)
    assert data["found"] is False and data["citations"] == []
    assert "do not cover" in data["answer"] and "closest sources" in data["answer"]


def test_ask_streams_from_an_openai_compatible_server_and_checks_citations(ingested):
    with FakeOpenAIServer(("ok", "Only admins can run it [1]. Also [42].")) as server:
        with_llm(ingested, server.base_url)
        out = ragbot("ask", "Who can run /ragbot-ingest?", cwd=ingested, env=NO_KEY)
        data = json.loads(ragbot("ask", "--json", "Who can run /ragbot-ingest?", cwd=ingested, env=NO_KEY).stdout)
    assert out.returncode == 0, out.stderr
    assert "Only admins can run it [1]." in out.stdout and "[42]" not in out.stdout and "Sources:" in out.stdout
    assert data["mode"] == "llm" and [c["n"] for c in data["citations"]] == [1]
    assert "<passages>" in server.requests[0]["messages"][1]["content"]


def test_ask_with_the_llm_down_exits_1_with_a_short_message(ingested):
    from tests.conftest import free_port

    with_llm(ingested, f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    out = ragbot("ask", "Who can run /ragbot-ingest?", cwd=ingested, env=NO_KEY)
    assert out.returncode == 1
    assert "temporarily unavailable" in out.stderr and "Traceback" not in out.stderr


def test_chat_with_piped_input_answers_follow_ups_and_survives_a_fault(ingested):
    with FakeOpenAIServer(
        ("ok", "Only admins [1]."),
        ("ok", "Who can run /ragbot-ingest on Discord?"),  # the rewrite
        ("status", 500), ("status", 500),  # the answer fails (one retry)
        ("ok", "Standalone again?"),
        ("ok", "Admins listed under slack.admins [1]."),
    ) as server:
        with_llm(ingested, server.base_url)
        full_env = {**os.environ, **NO_KEY}
        exe = [str(Path(sys.executable).parent / "ragbot")]
        out = subprocess.run(
            [*exe, "chat"], cwd=ingested, env=full_env, input="Who can run /ragbot-ingest?\nand on Discord?\nand again?\n/exit\n",
            capture_output=True, text=True, timeout=120,
        )
    assert out.returncode == 0, out.stderr
    assert "Only admins [1]." in out.stdout
    assert "temporarily unavailable" in out.stdout
    assert "Admins listed under slack.admins [1]." in out.stdout
    rewrite_prompt = server.requests[1]["messages"][1]["content"]
    assert "Who can run /ragbot-ingest?" in rewrite_prompt and "and on Discord?" in rewrite_prompt


def test_chat_extractive_follow_up(ingested):
    exe = [str(Path(sys.executable).parent / "ragbot")]
    out = subprocess.run(
        [*exe, "chat"], cwd=ingested, env={**os.environ, **NO_KEY},
        input="Who can run /ragbot-ingest?\nand on Discord?\n", capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Sources:") == 2


def test_status_says_which_answer_mode_and_why(ingested):
    out = ragbot("status", cwd=ingested, env=NO_KEY)
    assert "Answers:   extractive (no OPENAI_API_KEY and no llm.base_url" in out.stdout
    with_llm(ingested, "http://127.0.0.1:9/v1")
    out = ragbot("status", cwd=ingested, env=NO_KEY)
    assert "Answers:   llm, local at http://127.0.0.1:9/v1 (llm.base_url is set" in out.stdout
    data = json.loads(ragbot("status", "--json", cwd=ingested, env={"OPENAI_API_KEY": "sk-test"}).stdout)
    assert data["answers"]["mode"] == "llm" and "sk-test" not in json.dumps(data)
