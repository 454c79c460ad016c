"""`ragbot serve`: wiring a chat front end to the knowledge base, the answerer and the state store.

One process (the default) opens everything itself. `--workers N` (Slack) starts a supervisor
that runs N worker processes of the same command:

- HTTP mode: the supervisor binds the port once and hands the listening socket to each worker
  (an inherited file descriptor), the way gunicorn shares its socket; each worker runs its
  own waitress server with the guard and read deadline of bot/slack_http.py, so a slow or
  oversized request costs one worker's thread, never the others'.
- Socket Mode: each worker opens its own Socket Mode connection; Slack spreads events over
  them (up to 10 per app).

Workers share what they remember through the state store (state.backend sqlite on one host,
redis across hosts): a retried event is answered once whichever worker gets it, a thread
continues on any worker, one admin re-ingest runs at a time. The vectors must be shared too:
embedded Chroma is single-process, so several workers need `chroma run` (store.mode: server).
A worker that dies is started again; Ctrl-C or SIGTERM stops them all.

Discord allows one gateway connection per bot token: `serve discord` is one process, and it
holds a lock in the state store while connected, so a second `serve discord` with the same token
(on this host with sqlite state, on any host with redis) is refused with the holder's host:pid.
It shares the state store with the Slack workers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import click

from rag.errors import ConfigError, RagError

logger = logging.getLogger(__name__)

LISTEN_FD_OPTION = "--listen-fd"
RESTART_WINDOW_S = 10.0  # a worker that dies sooner than this after starting counts as failing to start
MAX_QUICK_FAILURES = 3


def require_secret(config, name: str, why: str, section: str = "Slack") -> str:
    """A secret the config section resolved from the environment, or an error naming its variable."""
    value = config.secret_value(name)
    if not value:
        raise RagError(f"{config.secret_env(name)} is not set. {why} (see the README's {section} section).")
    return value


def check_several_workers(config, workers: int) -> None:
    """Refuse a multi-process setup that cannot work, saying what to change."""
    if workers <= 1:
        return
    if config.store.mode == "embedded":
        raise ConfigError(
            f"--workers {workers} needs a Chroma server: embedded Chroma is single-process. Start one with "
            "`chroma run --path DATA_DIR/chroma-server --port 8000` and set store.mode: server (README: Deployment)."
        )
    if config.state.backend == "memory":
        raise ConfigError(
            f"--workers {workers} needs a shared state store: state.backend is memory. Use sqlite (one host) or redis (README: Deployment)."
        )


def _slack_secrets(config, mode: str) -> tuple[str, str | None, str | None]:
    token = require_secret(config.slack, "bot_token", "Set it to the app's Bot User OAuth Token (xoxb-...)")
    app_token = secret = None
    if mode == "socket":
        app_token = require_secret(config.slack, "app_token", "Socket Mode needs an app-level token (xapp-...) with connections:write")
    else:
        secret = require_secret(config.slack, "signing_secret", "HTTP mode verifies Slack's requests with the app's Signing Secret")
    return token, app_token, secret


def serve_slack(config, mode: str, host: str, port: int, workers: int = 1, config_path=None, listen_fd: int | None = None,
                debug: bool = False) -> None:
    """Answer in Slack: one process, or a supervisor over `workers` worker processes."""
    _slack_secrets(config, mode)  # refuse before starting anything
    check_several_workers(config, workers)
    if workers > 1:
        supervise_slack(config, mode, host, port, workers, config_path, debug)
        return
    run_slack_worker(config, mode, host, port, listen_fd)


def run_slack_worker(config, mode: str, host: str, port: int, listen_fd: int | None = None) -> None:
    """One Slack process: the knowledge base, the answerer, the bot core over the state store, Bolt."""
    from bot.runtime import build_answerer, build_bot_core, open_bot_state, open_knowledge_base, prepare_for_serving
    from bot.slack_app import api_url, build_slack_app, build_web_client, run_socket_mode
    from bot.slack_http import serve_http

    token, app_token, secret = _slack_secrets(config, mode)
    base_url = api_url(config.slack)
    with open_bot_state(config) as state, open_knowledge_base(config) as kb:
        answerer = build_answerer(config, kb)
        core = build_bot_core(config, kb, answerer, state, admins=config.slack.admins, channel_sets=config.slack.channels)
        app = build_slack_app(core, config.slack, build_web_client(token, base_url), signing_secret=secret, socket_mode=mode == "socket")
        prepare_for_serving(kb, (config.llm.encoding, config.ingest.chunking.encoding))
        core.start_recovery()  # questions a stopped worker had accepted and not answered are taken over
        who = f"worker {os.getpid()}, " if listen_fd is not None or os.environ.get("RAGBOT_WORKER") else ""
        try:
            if mode == "socket":
                click.echo(f"ragbot on Slack (Socket Mode, {who}answers: {answerer.mode}, state: {config.state.backend}). Ctrl-C stops.", err=True)
                run_socket_mode(app, app_token, base_url)
                return
            sock = socket.socket(fileno=listen_fd) if listen_fd is not None else None
            server = serve_http(
                app, host, port, signing_secret=secret, max_body_bytes=config.slack.max_body_kb * 1024,
                read_timeout_s=config.slack.read_timeout_s, sock=sock,
            )
            bound = server.server_address
            click.echo(
                f"ragbot on Slack (HTTP, {who}answers: {answerer.mode}, state: {config.state.backend}) at "
                f"http://{bound[0]}:{bound[1]}/slack/events. Ctrl-C stops.",
                err=True,
            )
            _stop_on_sigterm(server.shutdown)
            try:
                server.serve_forever()
            finally:
                server.shutdown()
        finally:
            core.close()


def _stop_on_sigterm(stop) -> None:
    """SIGTERM (systemd, the supervisor) stops serving like Ctrl-C does."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        threading.Thread(target=stop, daemon=True).start()

    signal.signal(signal.SIGTERM, handler)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RagError(f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another --port or stop what uses it.") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def supervise_slack(config, mode: str, host: str, port: int, workers: int, config_path=None, debug: bool = False) -> None:
    """Run `workers` Slack worker processes (sharing one listening socket in HTTP mode); restart any that dies."""
    sock = _listen(host, port) if mode == "http" else None
    env = dict(os.environ, RAGBOT_WORKER="1")
    if config_path is not None:
        env["RAGBOT_CONFIG"] = str(config_path)
    command = [sys.executable, "-m", "bot", *(["--debug"] if debug else []), "serve", "slack", "--mode", mode]
    if sock is not None:
        command += [LISTEN_FD_OPTION, str(sock.fileno())]
        click.echo(f"ragbot supervisor: {workers} Slack HTTP workers on http://{host}:{sock.getsockname()[1]}/slack/events", err=True)
    else:
        click.echo(f"ragbot supervisor: {workers} Slack Socket Mode workers", err=True)
    pass_fds = (sock.fileno(),) if sock is not None else ()

    def start() -> tuple[subprocess.Popen, float]:
        return subprocess.Popen(command, env=env, pass_fds=pass_fds), time.monotonic()

    stopping = False

    def stop(signum=None, frame=None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    procs = [start() for _ in range(workers)]
    quick_failures = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                code = proc.poll()
                if code is None or stopping:
                    continue
                quick = time.monotonic() - started < RESTART_WINDOW_S
                quick_failures = quick_failures + 1 if quick else 0
                if quick_failures >= MAX_QUICK_FAILURES:
                    raise RagError(f"Slack workers keep exiting right after they start (last exit status {code}); see their errors above.")
                logger.warning("Slack worker %d exited with status %s; starting it again", proc.pid, code)
                click.echo(f"ragbot supervisor: worker {proc.pid} exited ({code}); starting another", err=True)
                procs[i] = start()
    except KeyboardInterrupt:
        pass
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc, _ in procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if sock is not None:
            sock.close()


def serve_discord(config) -> None:
    """Answer in Discord: one gateway connection (one process per bot token), sharing the state store."""
    from bot.discord_app import build_discord_client
    from bot.runtime import build_answerer, build_bot_core, open_bot_state, open_knowledge_base, prepare_for_serving
    from bot.state import exclusive

    token = require_secret(config.discord, "token", "Set it to the bot token (Developer Portal > your application > Bot > Reset Token)", "Discord")
    dc = config.discord
    gateway = "discord-gateway:" + hashlib.sha256(token.encode()).hexdigest()[:16]  # names the token without holding it
    with (
        open_bot_state(config) as state,
        exclusive(state, gateway, "The Discord gateway connection for this bot token"),
        open_knowledge_base(config) as kb,
    ):
        answerer = build_answerer(config, kb)
        core = build_bot_core(
            config, kb, answerer, state, admins=[str(a) for a in dc.admins], admin_roles=[str(r) for r in dc.admin_roles],
            channel_sets={str(k): v for k, v in dc.channels.items()},
        )
        client = build_discord_client(core, dc)
        prepare_for_serving(kb, (config.llm.encoding, config.ingest.chunking.encoding))
        click.echo(
            f"ragbot on Discord (answers: {answerer.mode}, message content: {dc.message_content}, state: {config.state.backend}). Ctrl-C stops.",
            err=True,
        )
        try:
            client.run(token, log_handler=None)  # logging is configured by the CLI
        finally:
            core.close()
