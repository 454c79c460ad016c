"""The whole config.yaml: each package's section assembled, loaded and checked."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ingest.config import IngestConfig
from rag.atlas.config import MapConfig
from rag.config import AnswerConfig, EmbeddingConfig, LLMConfig, RetrievalConfig, StoreConfig
from rag.errors import ConfigError
from rag.secrets import SecretsFromEnv

CONFIG_ENV = "RAGBOT_CONFIG"
DATA_DIR_ENV = "RAGBOT_DATA_DIR"
DEFAULT_CONFIG = "config.yaml"



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotConfig(_Strict):
    """The platform-neutral chat bot: limits, thread memory, knowledge sets, admin re-ingest."""

    default_sets: list[str] = Field(
        default_factory=lambda: ["default"],
        description="Knowledge sets searched in channels that have no entry of their own (e.g. slack.channels).",
    )
    workers: int = Field(4, ge=1, le=64, description="Questions answered at the same time.")
    queue_size: int = Field(16, ge=0, description="Questions waiting for a worker; beyond it users are told to retry.")
    job_liveness_s: float = Field(
        30.0, gt=0,
        description="A serving process renews a liveness mark in the state store; when it lapses for this long (the process "
        "died), another takes over the questions it had accepted and not answered (chat platforms do not send them again).",
    )
    job_check_s: float = Field(5.0, gt=0, description="How often a serving process renews its liveness mark and looks for such questions.")
    job_ttl_s: float = Field(900.0, gt=0, description="An accepted question older than this is not answered any more by another process.")

    @model_validator(mode="after")
    def _liveness_outlasts_renewals(self):
        if self.job_liveness_s < 2 * self.job_check_s:
            raise ValueError(
                f"job_liveness_s ({self.job_liveness_s:g}) must be at least twice job_check_s ({self.job_check_s:g}): a mark "
                "renewed that rarely would lapse while its worker is alive, and another would answer its questions again"
            )
        return self
    rate_limit: int = Field(6, ge=1, description="Questions one user may ask per rate_window_s.")
    rate_window_s: float = Field(60.0, gt=0, description="The window of the per-user rate limit, in seconds.")
    threads_remembered: int = Field(1000, ge=1, description="Chat threads whose conversation is kept for follow-ups (least recent dropped).")
    status_for: Literal["admins", "everyone"] = Field(
        "admins",
        description="Who may run /ragbot-status (counts, models, knowledge sets): admins only, or everyone. Same on every platform.",
    )
    ingest_paths: list[str] = Field(
        default_factory=list,
        description="The folders chat commands may re-ingest: what /ragbot-ingest reads when no PATH is given, and the only "
        "places a PATH named in chat may resolve into (after ~, .. and symlinks; relative entries are relative to the bot's "
        "working directory). Empty: chat commands cannot ingest explicit paths. The local `ragbot ingest` is not limited.",
    )


class StateConfig(_Strict, SecretsFromEnv):
    """Where the bot keeps what it remembers (threads, answers behind buttons, feedback, dedupe, locks).

    sqlite (default): a file in data_dir, kept across restarts, shared by the processes of one host.
    redis: shared by several hosts. memory: this process only, lost on exit (tests).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # a refused url may hold a password

    SECRETS = {"password": "password_env"}
    backend: Literal["sqlite", "redis", "memory"] = Field(
        "sqlite", description="sqlite (one host, any number of processes), redis (several hosts) or memory (one process, nothing kept)."
    )
    path: str | None = Field(None, description="sqlite: the state file; null: <data_dir>/state.sqlite.")
    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis: the server (redis:// or rediss://, with an optional ACL user); the password comes from password_env, never from the URL.",
    )
    password_env: str = Field("RAGBOT_STATE_PASSWORD", description="redis: the environment variable with the server's password (unset: none).")
    key_prefix: str = Field("ragbot", min_length=1, description="redis: prefix of every key (several bots can share one server).")
    answer_ttl_s: float = Field(
        30 * 86400.0, gt=0, description="How long an answer's Share and feedback buttons keep working, in seconds."
    )
    thread_ttl_s: float = Field(
        30 * 86400.0, gt=0, description="A thread's conversation is forgotten after this many seconds without a question."
    )

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            raise ValueError("url is not a valid URL (expected e.g. redis://127.0.0.1:6379/0)") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("url must start with redis://, rediss:// or unix://")
        if password is not None:
            raise ValueError(
                "url must not hold a password: remove it from the URL and set it in the variable named by "
                "state.password_env (RAGBOT_STATE_PASSWORD by default)"
            )
        return value


class SlackConfig(_Strict, SecretsFromEnv):
    """The Slack app: admins, channel -> knowledge sets, how it connects. Tokens come from the env."""

    SECRETS = {"bot_token": "bot_token_env", "app_token": "app_token_env", "signing_secret": "signing_secret_env"}
    bot_token_env: str = Field("SLACK_BOT_TOKEN", description="The environment variable with the Bot User OAuth Token (xoxb-...).")
    app_token_env: str = Field("SLACK_APP_TOKEN", description="socket mode: the variable with the app-level token (xapp-...).")
    signing_secret_env: str = Field("SLACK_SIGNING_SECRET", description="http mode: the variable with the app's Signing Secret.")

    admins: list[str] = Field(default_factory=list, description="Slack user ids (U...) allowed to run /ragbot-ingest.")
    channels: dict[str, list[str]] = Field(
        default_factory=dict, description="Channel id (C..., G..., D...) -> knowledge sets it searches."
    )
    mode: str = Field("socket", description="socket (SLACK_APP_TOKEN, no public URL) or http (SLACK_SIGNING_SECRET).")
    host: str = Field(
        "127.0.0.1", description="http mode: interface to listen on (loopback: put an HTTPS reverse proxy in front; --host overrides)."
    )
    port: int = Field(3000, ge=1, le=65535, description="http mode: port; Slack posts to /slack/events.")
    max_body_kb: int = Field(
        1024, ge=16, le=65536, description="http mode: largest request body accepted; larger ones get 413 unread (Slack's are a few KB)."
    )
    read_timeout_s: float = Field(
        10.0, gt=0, le=300, description="http mode: a request not fully received in this time (a slow client) is disconnected."
    )
    stream_interval_s: float = Field(
        1.5, ge=0, description="Least seconds between edits of the placeholder while an answer streams (0: no streaming)."
    )
    native_streaming: bool = Field(
        True,
        description="Use Slack's AI app features where the workspace allows them (chat.startStream, thread status, "
        "feedback buttons); false: always the placeholder edited with chat.update.",
    )
    native_stream_interval_s: float = Field(
        0.5, ge=0, description="Least seconds between chat.appendStream calls while an answer streams natively."
    )
    suggested_prompts: list[str] = Field(
        default_factory=list, max_length=4,
        description="Prompts offered when a user opens ragbot in the assistant side panel (at most 4); empty: three defaults.",
    )
    dedupe_ttl_s: float = Field(3600.0, gt=0, description="How long a delivered event id is remembered to drop Slack's retries.")
    api_url: str | None = Field(None, description="Slack Web API base URL (env SLACK_API_URL overrides); null: https://slack.com/api/.")

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in ("socket", "http"):
            raise ValueError("mode must be 'socket' or 'http'")
        return value


class DiscordConfig(_Strict, SecretsFromEnv):
    """The Discord bot: admins (users or roles), channel -> knowledge sets, intents. The token comes from DISCORD_TOKEN."""

    SECRETS = {"token": "token_env"}
    token_env: str = Field("DISCORD_TOKEN", description="The environment variable with the bot token.")

    admins: list[int] = Field(default_factory=list, description="Discord user ids allowed to run /ragbot-ingest.")
    admin_roles: list[int] = Field(default_factory=list, description="Discord role ids whose members may run /ragbot-ingest.")
    channels: dict[int, list[str]] = Field(
        default_factory=dict, description="Channel id -> knowledge sets it searches (threads use their parent channel's)."
    )
    message_content: bool = Field(
        False, description="Ask for the privileged message-content intent (enable it in the Developer Portal too)."
    )
    answer_channels: list[int] = Field(
        default_factory=list, description="With message_content: channels where every message is answered, not only mentions."
    )
    guild_id: int | None = Field(None, description="Sync app commands to this server only (instant); null: globally.")
    thread_archive_minutes: int = Field(1440, description="Auto-archive of answer threads: 60, 1440, 4320 or 10080 minutes.")
    stream_answers: bool = Field(
        True, description="Stream LLM answers (the /ask reply, a mention's thread, a DM) by editing them as the text grows."
    )
    stream_interval_s: float = Field(
        1.0, ge=1.0, description="Least seconds between requests of a streaming answer (Discord's rate limits: at least 1)."
    )
    max_ratelimit_timeout: float = Field(
        10.0, ge=1.0, description="Longest 429 wait (s) before a send gives up and the user is told the bot is busy."
    )

    @field_validator("thread_archive_minutes")
    @classmethod
    def _known_archive(cls, value: int) -> int:
        if value not in (60, 1440, 4320, 10080):
            raise ValueError("thread_archive_minutes must be 60, 1440, 4320 or 10080")
        return value


class AppConfig(BaseModel):
    """Everything in config.yaml."""

    # str() of a validation error never echoes a value (state.url may hold a password); describe_errors shows safe ones
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    data_dir: str = Field(".ragbot", description="Where the store and bookkeeping live; RAGBOT_DATA_DIR overrides.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    map: MapConfig = Field(default_factory=MapConfig)
    bot: BotConfig = Field(default_factory=BotConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    state: StateConfig = Field(default_factory=StateConfig)

    def data_path(self) -> Path:
        """The data directory, with RAGBOT_DATA_DIR taking precedence."""
        return Path(os.environ.get(DATA_DIR_ENV) or self.data_dir).expanduser()


def _unwrap(annotation: Any) -> Any:
    """The model inside Optional[...], list[...] or dict[str, ...]."""
    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(args):
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return None


def _model_for_loc(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return None
        if part in fields:
            model = _unwrap(fields[part].annotation) or fields[part].annotation
        # else: a dict key such as a space name; stay on the dict's value model
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def describe_errors(exc: ValidationError, origin: str) -> str:
    """Turn pydantic's errors into lines that name the key's path and what is allowed."""
    lines = [f"{origin} is not valid:"]
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            model = _model_for_loc(AppConfig, loc)
            allowed = list(model.model_fields) if model else []
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            line = f"  {path}: unknown key; allowed here: {', '.join(allowed)}"
            if hint:
                line += f" (did you mean '{hint[0]}'?)"
        else:
            message = error["msg"].removeprefix("Value error, ")
            line = f"  {path}: {message}"
            if error["type"] not in ("missing", "value_error") and "input" in error:
                line += f" (got {error['input']!r})"
        lines.append(line)
    return "\n".join(lines)


def config_path(explicit: str | None) -> Path | None:
    """The config file to read: --config, else RAGBOT_CONFIG, else ./config.yaml if present."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"Config file {path} not found (from {'--config' if explicit else CONFIG_ENV}).")
        return path
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


def load_config(explicit: str | None = None) -> tuple[AppConfig, Path | None]:
    """Read and validate the config; built-in defaults when there is no file."""
    path = config_path(explicit)
    if path is None:
        return AppConfig(), None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of sections (data_dir, embedding, store, ingest, retrieval, llm, answer, bot, slack, discord, map, state).")
    try:
        return AppConfig.model_validate(data), path
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, str(path))) from None


def _secret_sections(config: AppConfig) -> list[tuple[str, SecretsFromEnv]]:
    """The config sections whose secrets this config uses, with their key paths."""
    sections: list[tuple[str, SecretsFromEnv]] = [("llm", config.llm)]
    sections += [(f"embedding.spaces.{name}", space) for name, space in config.embedding.spaces.items() if space.provider == "openai"]
    if config.store.mode == "server":
        sections.append(("store", config.store))
    sections += [("slack", config.slack), ("discord", config.discord)]
    if config.state.backend == "redis":
        sections.append(("state", config.state))
    return sections


def secrets_status(config: AppConfig) -> dict[str, str]:
    """Each environment variable the config reads a secret from: set (hidden) or not set, and which keys name it."""
    users: dict[str, list[str]] = {}
    present: dict[str, bool] = {}
    for path, section in _secret_sections(config):
        for name, env_field in section.SECRETS.items():
            env = section.secret_env(name)
            users.setdefault(env, []).append(f"{path}.{env_field}")
            present[env] = present.get(env, False) or section.secret(name) is not None
    return {env: f"{'set (hidden)' if present[env] else 'not set'} (named by {', '.join(keys)})" for env, keys in users.items()}
