"""Shared fixtures: offline environment, fast configs with the hashing embedder, a chroma server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# no model hub, no telemetry: every test runs as on an offline machine
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"

FAST_SPACES = {
    "embedding": {
        "spaces": {
            "en": {"provider": "hashing", "model": "hash-en"},
            "ja": {"provider": "hashing", "model": "hash-ja"},
        },
        "routing": {"ja": "ja", "*": "en"},
    }
}


def fast_config(data_dir: Path, **sections):
    """An AppConfig with model-free embedders and its data in data_dir."""
    from bot.config import AppConfig

    data = {"data_dir": str(data_dir), **FAST_SPACES, **sections}
    return AppConfig.model_validate(data)


@pytest.fixture
def app_config(tmp_path):
    """A fast config whose data directory is private to the test."""
    return fast_config(tmp_path / "data")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` on 127.0.0.1 and a free port; stopped at the end of the test."""
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if exe is None:
        pytest.fail("the `chroma` command (from chromadb) is not installed")
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("chroma run did not start: " + (tmp_path / "chroma.log").read_text(errors="replace")[-2000:])
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
