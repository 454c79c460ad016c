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


def eventually(check, timeout: float = 10.0) -> bool:
    """Whether check() comes true within timeout (polled): for work another thread or process finishes."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, log_path: Path, what: str, log=None, timeout: float = 60) -> None:
    """Poll url until it answers; fail the test with the server's log if it exits or times out."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                if log is not None:
                    log.flush()
                pytest.fail(f"{what} did not start: " + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)


def stop_process(proc: subprocess.Popen, log=None, timeout: float = 15) -> None:
    """Terminate a server started by a fixture (kill it if it lingers) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
    if log is not None:
        log.close()


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
        wait_until_serving(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, tmp_path / "chroma.log", "chroma run", log)
        yield port
    finally:
        stop_process(proc, log)


def _in_ci() -> bool:
    return bool(os.environ.get("RAGBOT_CI") or os.environ.get("CI"))


def start_redis(workdir: Path, password: str | None = None) -> tuple[int, subprocess.Popen, object]:
    """A real `redis-server` on 127.0.0.1 and a free port (nothing saved to disk); (port, process, log)."""
    exe = shutil.which("redis-server")
    if exe is None:
        if _in_ci():
            pytest.fail("redis-server is not installed; .ci/run installs Debian's redis-server package")
        pytest.skip("redis-server is not installed here (Debian: apt-get install redis-server); CI installs and runs it")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(workdir / "redis.log", "wb")
    args = [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    if password:
        args += ["--requirepass", password]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("redis-server did not start: " + (workdir / "redis.log").read_text(errors="replace")[-2000:])
            time.sleep(0.05)
    return port, proc, log


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """redis://127.0.0.1:PORT/0 of a real redis-server for this test module; stopped at its end."""
    port, proc, log = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc, log)
