"""The `ragbot` console script, run as a user runs it (a subprocess), with fast embedders."""

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

RAGBOT = Path(sys.executable).parent / "ragbot"


def ragbot(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    exe = [str(RAGBOT)] if RAGBOT.exists() else [sys.executable, "-m", "bot"]
    return subprocess.run([*exe, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def workdir(tmp_path):
    """A folder with a fast config.yaml and a copy of the sample corpus."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data_dir": "state", **FAST_SPACES}), encoding="utf-8")
    shutil.copytree(SAMPLES, tmp_path / "samples")
    return tmp_path


def test_help_teaches_the_commands(tmp_path):
    out = ragbot("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("ingest", "search", "status", "config"):
        assert command in out.stdout
    assert "ragbot ingest samples/" in out.stdout
    assert "--rebuild" in ragbot("ingest", "--help", cwd=tmp_path).stdout


def test_ingest_json_contract_and_failed_files_do_not_fail_the_run(workdir):
    (workdir / "samples" / "broken.md").write_bytes(b"\x00\x01\x02PNG" * 100)
    out = ragbot("ingest", "samples", "--json", cwd=workdir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {"added", "updated", "unchanged", "deleted", "embedded", "chunks", "seconds", "failed"} <= set(report)
    assert report["added"] >= 7 and report["embedded"] == report["chunks"] > 0
    assert [f["source"].rsplit("/", 1)[-1] for f in report["failed"]] == ["broken.md"]
    assert "binary" in report["failed"][0]["reason"]

    again = json.loads(ragbot("ingest", "samples", "--json", cwd=workdir).stdout)
    assert again["embedded"] == 0 and again["unchanged"] == report["added"]


def test_human_summary_and_search_show_where_hits_come_from(workdir):
    out = ragbot("ingest", "samples", cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert "added" in out.stdout and "chunks total" in out.stdout

    out = ragbot("search", "Kenji Mina timestamps", "-k", "3", cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert "1. [" in out.stdout and "samples/" in out.stdout


def test_search_json_carries_structured_locators(workdir):
    ragbot("ingest", "samples", cwd=workdir)
    out = ragbot("search", "Mina Kenji citations timestamps talk", "-k", "20", "--json", cwd=workdir)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert len(hits) == 20
    for hit in hits:
        assert {"text", "source", "locator", "score", "space"} <= set(hit)
    transcript = [h for h in hits if h["source"].endswith(".vtt")]
    assert transcript, "the talk transcript is among the hits"
    assert {"start_s", "end_s", "speaker"} <= set(transcript[0])
    assert transcript[0]["start_s"] <= transcript[0]["end_s"]
    markdown = [h for h in hits if h["source"].endswith(".md")]
    assert markdown and all("heading" in h for h in markdown)


def test_status_reports_spaces_and_counts(workdir):
    ragbot("ingest", "samples", cwd=workdir)
    data = json.loads(ragbot("status", "--json", cwd=workdir).stdout)
    spaces = {s["space"]: s for s in data["spaces"]}
    assert spaces["en"]["chunks"] > 0 and spaces["ja"]["chunks"] > 0
    assert data["sources"] >= 7 and data["chunks"] == spaces["en"]["chunks"] + spaces["ja"]["chunks"]
    assert data["store"]["mode"] == "embedded"
    human = ragbot("status", cwd=workdir).stdout
    assert "hash-en" in human and "Indexed:" in human


def test_config_masks_secrets_even_in_debug_mode(workdir):
    secret = "sk-test-" + "x" * 40
    out = ragbot("--debug", "config", cwd=workdir, env={"OPENAI_API_KEY": secret, "SLACK_BOT_TOKEN": "xoxb-123-secret"})
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr and "xoxb-123-secret" not in out.stdout + out.stderr
    assert "OPENAI_API_KEY: set (hidden)" in out.stdout
    assert "DISCORD_TOKEN: not set" in out.stdout


def test_errors_and_exit_codes(workdir):
    out = ragbot("search", "anything", cwd=workdir)
    assert out.returncode == 1 and "Nothing is ingested yet" in out.stderr

    out = ragbot("ingest", "no-such-folder", cwd=workdir)
    assert out.returncode == 1 and "no such file" in out.stderr

    out = ragbot("search", cwd=workdir)
    assert out.returncode == 2 and "QUERY" in out.stderr

    (workdir / "bad.yaml").write_text("ingest:\n  chunking:\n    max_tokns: 5\n", encoding="utf-8")
    out = ragbot("--config", "bad.yaml", "status", cwd=workdir)
    assert out.returncode == 1 and "ingest.chunking.max_tokns: unknown key" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_second_process_on_the_embedded_store_is_refused(workdir):
    from bot.config import load_config
    from bot.runtime import open_knowledge_base

    config, _ = load_config(str(workdir / "config.yaml"))
    config = config.model_copy(update={"data_dir": str(workdir / "state")})
    with open_knowledge_base(config):
        out = ragbot("ingest", "samples", cwd=workdir)
    assert out.returncode == 1 and "Another ragbot process is using the store" in out.stderr
