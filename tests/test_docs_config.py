"""Documentation cannot teach a config that fails: every YAML snippet and every dotted key in
README.md and samples/ is checked against the config model."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from bot.config import AppConfig, describe_errors
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "samples").rglob("*.md"))]
FENCE = re.compile(r"^([ \t]*)```([A-Za-z]*)[ \t]*\n(.*?)^\1```", re.S | re.M)
SECTIONS = set(AppConfig.model_fields)
# a dotted key written in backticks, such as `slack.admins` or `embedding.spaces.<name>.min_score`
DOTTED = re.compile(r"`((?:%s)(?:\.[A-Za-z_<>*]+)+)`" % "|".join(sorted(SECTIONS)))


def _config_snippets() -> list[tuple[str, str]]:
    """(where, text) of every fenced block that is YAML or reads as a config mapping."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            indent, lang, body = match.groups()
            body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in body.splitlines())
            line_no = text[: match.start()].count("\n") + 1
            where = f"{path.relative_to(REPO)}:{line_no}"
            if lang in ("yaml", "yml"):
                found.append((where, body))
                continue
            try:
                data = yaml.safe_load(body)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and data and set(data) <= SECTIONS:
                found.append((where, body))
    return found


SNIPPETS = _config_snippets()


def test_the_docs_have_config_snippets_to_check():
    where = {w.split(":")[0] for w, _ in SNIPPETS}
    assert {"README.md", "samples/docs/en/faq.md", "samples/docs/ja/unyou.md", "samples/docs/en/setup.md"} <= where


@pytest.mark.parametrize("where, body", SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_every_yaml_snippet_in_the_docs_is_a_valid_config(where, body):
    data = yaml.safe_load(body)
    assert isinstance(data, dict), f"{where}: a config snippet must be a mapping of sections"
    try:
        AppConfig.model_validate(data)
    except ValidationError as exc:
        pytest.fail(describe_errors(exc, where))


def _resolves(parts: list[str]) -> bool:
    model: typing.Any = AppConfig
    i = 0
    while i < len(parts):
        fields = getattr(model, "model_fields", None)
        if fields is None or parts[i] not in fields:
            return False
        annotation = fields[parts[i]].annotation
        i += 1
        while typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        if typing.get_origin(annotation) is dict:
            if i < len(parts):
                i += 1  # a user-chosen key such as a space name
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is None and i < len(parts):
            return False
    return True


def _dotted_keys() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for key in DOTTED.findall(line):
                if key.endswith((".py", ".html", ".yaml", ".jsonl")):
                    continue  # a file name such as `answer.py`
                found.append((f"{path.relative_to(REPO)}:{line_no}", key))
    return found


def test_every_config_key_the_docs_name_exists():
    keys = _dotted_keys()
    assert any(key == "slack.admins" for _, key in keys)
    wrong = [f"{where}: `{key}`" for where, key in keys if not _resolves(key.split("."))]
    assert not wrong, "the docs name config keys that do not exist:\n" + "\n".join(wrong)


def test_the_key_check_catches_a_wrong_key():
    assert not _resolves(["bot", "admins"])
    assert not _resolves(["bot", "limits"])
    assert _resolves(["embedding", "spaces", "<name>", "min_score"])
    assert _resolves(["retrieval", "keyword", "japanese"])
