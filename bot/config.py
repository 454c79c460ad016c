"""The whole config.yaml: each package's section assembled, loaded and checked."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest.config import IngestConfig
from rag.config import EmbeddingConfig, RetrievalConfig, StoreConfig
from rag.errors import ConfigError

CONFIG_ENV = "RAGBOT_CONFIG"
DATA_DIR_ENV = "RAGBOT_DATA_DIR"
DEFAULT_CONFIG = "config.yaml"

# secrets come from the environment only; `ragbot config` shows whether each is set, never its value
SECRET_ENV = ("OPENAI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN", "CHROMA_AUTH_TOKEN")


class AppConfig(BaseModel):
    """Everything in config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: str = Field(".ragbot", description="Where the store and bookkeeping live; RAGBOT_DATA_DIR overrides.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)

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
        raise ConfigError(f"{path} must be a mapping of sections (data_dir, embedding, store, ingest, retrieval).")
    try:
        return AppConfig.model_validate(data), path
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, str(path))) from None


def secrets_status() -> dict[str, str]:
    """Which secrets are set in the environment, masked."""
    return {name: ("set (hidden)" if os.environ.get(name) else "not set") for name in SECRET_ENV}
