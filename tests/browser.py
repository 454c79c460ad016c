"""Headless Chromium for the map's browser tests and benchmark, with the network blocked.

Every host name resolves to nothing and every request goes to a proxy on 127.0.0.1 that
records what it is asked for and answers nothing, so a page that tries to reach out is seen.
The page reports on itself: with `#selftest=QUERY` or `#bench=N` it writes JSON into
<pre id="selftest">, which `--dump-dom` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The headless browser on PATH (Debian's `chromium` package), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class RecordingProxy:
    """A TCP listener on 127.0.0.1 that records the first line of each request and closes it."""

    def __init__(self):
        self.requests: list[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    line = "(no request line)"
                self.requests.append(line)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


def run_page(
    chromium: str,
    page: Path,
    fragment: str,
    *,
    screenshot: Path | None = None,
    size: tuple[int, int] = (1200, 800),
    timeout: float = 180,
) -> tuple[dict, list[str]]:
    """Open page#fragment headless with the network blocked: (the page's JSON report, proxied requests)."""
    with RecordingProxy() as proxy, tempfile.TemporaryDirectory() as profile:
        args = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-default-apps",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--proxy-bypass-list=<-loopback>",  # even 127.0.0.1 goes through the recorder
            f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=20000",
        ]
        url = page.resolve().as_uri() + "#" + quote(fragment)
        if screenshot is not None:
            args.append(f"--screenshot={screenshot}")
        else:
            args.append("--dump-dom")
        proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
        requests = list(proxy.requests)
    if screenshot is not None:
        return {}, requests
    found = re.search(r'<pre id="selftest">(.*?)</pre>', proc.stdout, re.S)
    if not found or not found.group(1).strip():
        raise RuntimeError("the page wrote no self-test result; stderr:\n" + proc.stderr[-2000:])
    return json.loads(html.unescape(found.group(1))), requests
