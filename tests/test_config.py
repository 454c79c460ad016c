"""Config loading: defaults, unknown keys with their path, env overrides, secrets masked."""

from __future__ import annotations

import pytest

from bot.config import AppConfig, load_config
from rag.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_shipped_config_yaml_is_valid_and_equals_the_defaults():
    from tests.conftest import REPO

    config, _ = load_config(str(REPO / "config.yaml"))
    assert config == AppConfig()


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("ingest:\n  chunking:\n    max_tokns: 100\n", ["ingest.chunking.max_tokns: unknown key", "did you mean 'max_tokens'"]),
        ("stor:\n  mode: server\n", ["stor: unknown key", "allowed here: data_dir, embedding, store, ingest"]),
        ("embedding:\n  spaces:\n    en:\n      provider: sentence-transformers\n      model: x\n      prefix: 'q'\n", ["embedding.spaces.en.prefix: unknown key", "query_prefix"]),
        ("store:\n  mode: cloud\n", ["store.mode", "'embedded' or 'server'"]),
        ("ingest:\n  chunking:\n    max_tokens: 100\n    overlap_tokens: 100\n", ["overlap_tokens must be smaller than max_tokens"]),
        ("embedding:\n  routing:\n    ja: jp\n    '*': en\n", ["routing.ja points at space 'jp'"]),
        ("ingest:\n  tables:\n    - pattern: '*.csv'\n      text_field: body\n", ["ingest.tables.0.text_field: unknown key", "text_fields"]),
        ("- just\n- a list\n", ["must be a mapping"]),
        ("ingest: [unclosed\n", ["not valid YAML"]),
    ],
)
def test_bad_config_names_the_key_and_what_is_allowed(tmp_path, yaml_text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, yaml_text))
    for fragment in expected:
        assert fragment in str(info.value)


def test_config_file_from_env_and_data_dir_override(tmp_path, monkeypatch):
    path = write(tmp_path, "data_dir: from-file\n")
    monkeypatch.setenv("RAGBOT_CONFIG", path)
    config, used = load_config(None)
    assert str(used) == path and config.data_path().name == "from-file"
    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path / "elsewhere"))
    assert config.data_path() == tmp_path / "elsewhere"


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_no_config_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAGBOT_CONFIG", raising=False)
    config, used = load_config(None)
    assert used is None and config.embedding.routing == {"ja": "ja", "*": ["en", "ja"]}
