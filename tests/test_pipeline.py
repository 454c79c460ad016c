"""Incremental, idempotent ingest against a real embedded Chroma (hashing embedder: no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filelock import FileLock

from bot.runtime import open_ingestor, open_knowledge_base
from ingest.errors import IngestBusyError
from rag.errors import ModelMismatchError
from tests.conftest import fast_config

DOCS = {
    "guide.md": "# Guide\n\nRagbot answers questions from your documents.\n\n## Install\n\nRun pip install ragbot to get started.\n",
    "faq.md": "# FAQ\n\n## Who can ingest?\n\nOnly admins listed in the config may run the ingest command.\n",
    "notes.txt": "Meeting rooms must be cancelled thirty minutes ahead.\n",
    "ja.md": "# 概要\n\n会議室のキャンセルは三十分前までに連絡してください。\n",
}


def write_corpus(root: Path, files: dict[str, str] = DOCS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def run(config, *paths: Path, rebuild: bool = False):
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        return ingestor.run(list(paths), rebuild=rebuild)


def snapshot(config) -> dict[str, set[str]]:
    """Chunk ids per space, as the store holds them."""
    with open_knowledge_base(config) as kb:
        return {space: kb.store.ids(space) for space in config.embedding.spaces}


def store_texts(config) -> list[str]:
    with open_knowledge_base(config) as kb:
        texts = []
        for space in config.embedding.spaces:
            collection = kb.store._get(space)
            if collection is not None:
                texts += collection.get(include=["documents"])["documents"]
        return texts


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "docs")


def test_first_run_adds_every_source_and_routes_japanese(app_config, corpus):
    report = run(app_config, corpus)
    assert (report.added, report.updated, report.unchanged, report.deleted) == (4, 0, 0, 0)
    assert report.embedded == report.chunks > 0
    ids = snapshot(app_config)
    assert ids["ja"] and ids["en"], "Japanese chunks go to the ja space, the rest to en"
    with open_knowledge_base(app_config) as kb:
        hits = kb.search("会議室のキャンセル", k=1)
    assert hits[0].space == "ja" and "三十分前" in hits[0].text


def test_rerun_without_changes_embeds_nothing(app_config, corpus):
    first = run(app_config, corpus)
    before = snapshot(app_config)
    again = run(app_config, corpus)
    assert (again.added, again.updated, again.unchanged, again.deleted, again.embedded) == (0, 0, 4, 0, 0)
    assert again.chunks == first.chunks
    assert snapshot(app_config) == before


def test_editing_one_file_replaces_only_its_chunks(app_config, corpus):
    run(app_config, corpus)
    before = snapshot(app_config)
    (corpus / "notes.txt").write_text("Meeting rooms must now be cancelled a full hour ahead.\n", encoding="utf-8")
    report = run(app_config, corpus)
    assert (report.updated, report.unchanged, report.added, report.deleted) == (1, 3, 0, 0)
    assert report.embedded == 1
    after = snapshot(app_config)
    assert len(after["en"] - before["en"]) == 1 and len(before["en"] - after["en"]) == 1
    texts = store_texts(app_config)
    assert any("full hour" in t for t in texts) and not any("thirty minutes" in t for t in texts)


def test_appending_a_section_reuses_the_vectors_of_unchanged_chunks(app_config, corpus):
    run(app_config, corpus)
    with (corpus / "guide.md").open("a", encoding="utf-8") as handle:
        handle.write("\n## Upgrade\n\nRun pip install --upgrade ragbot.\n")
    report = run(app_config, corpus)
    assert report.updated == 1
    assert report.embedded == 1, "only the new section is embedded; the others keep their vectors"


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_deleted_or_emptied_file_loses_its_chunks(app_config, corpus, how):
    run(app_config, corpus)
    target = corpus / "faq.md"
    if how == "deleted":
        target.unlink()
    else:
        target.write_bytes(b"")
    report = run(app_config, corpus)
    assert report.deleted == 1 and report.failed == []
    assert not any("Only admins" in t for t in store_texts(app_config))


def test_file_that_fails_to_parse_keeps_its_old_chunks(app_config, corpus):
    run(app_config, corpus)
    (corpus / "faq.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    report = run(app_config, corpus)
    assert [f.source.rsplit("/", 1)[-1] for f in report.failed] == ["faq.md"]
    assert "binary" in report.failed[0].reason
    assert report.deleted == 0
    assert any("Only admins" in t for t in store_texts(app_config))


def test_crash_between_vector_write_and_bookkeeping_converges(app_config, corpus, tmp_path, monkeypatch):
    from ingest.manifest import Manifest

    clean_config = fast_config(tmp_path / "clean")
    run(clean_config, corpus)
    expected = snapshot(clean_config)

    original = Manifest.replace_source
    calls = {"n": 0}

    def crash_on_second(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("power cut")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Manifest, "replace_source", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run(app_config, corpus)
    monkeypatch.setattr(Manifest, "replace_source", original)

    report = run(app_config, corpus)
    assert report.failed == []
    assert snapshot(app_config) == expected, "same chunks as a clean run, no duplicates"
    again = run(app_config, corpus)
    assert again.embedded == 0 and again.unchanged == 4


def test_orphans_of_an_interrupted_run_are_removed_when_their_file_is_gone(app_config, corpus, monkeypatch):
    from ingest.manifest import Manifest

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(Manifest, "replace_source", crash)
    with pytest.raises(KeyboardInterrupt):
        run(app_config, corpus)
    monkeypatch.undo()
    (corpus / "notes.txt").unlink()
    run(app_config, corpus)
    assert not any("thirty minutes" in t for t in store_texts(app_config))


def test_wiped_store_with_leftover_bookkeeping_is_detected(app_config, corpus):
    first = run(app_config, corpus)
    with open_knowledge_base(app_config) as kb:
        for space in app_config.embedding.spaces:
            kb.store.drop_space(space)
    report = run(app_config, corpus)
    assert report.unchanged == 0 and report.updated == 4
    assert report.embedded == first.embedded
    assert sum(len(v) for v in snapshot(app_config).values()) == first.chunks


def test_second_ingest_at_once_is_refused(app_config, corpus):
    lock = FileLock(str(app_config.data_path() / "ingest.lock"))
    app_config.data_path().mkdir(parents=True)
    with lock:
        with pytest.raises(IngestBusyError, match="already running"):
            run(app_config, corpus)


def test_ingesting_another_folder_keeps_the_first(app_config, tmp_path, corpus):
    other = write_corpus(tmp_path / "other", {"extra.md": "# Extra\n\nSomething else entirely.\n"})
    run(app_config, corpus)
    report = run(app_config, other)
    assert report.added == 1 and report.deleted == 0
    assert any("Only admins" in t for t in store_texts(app_config))


def test_a_model_change_is_refused_until_rebuild(app_config, tmp_path, corpus):
    run(app_config, corpus)
    changed = fast_config(
        app_config.data_path(),
        embedding={
            "spaces": {"en": {"provider": "hashing", "model": "hash-v2"}, "ja": {"provider": "hashing", "model": "hash-ja"}},
            "routing": {"ja": "ja", "*": "en"},
        },
    )
    with pytest.raises(ModelMismatchError, match="--rebuild"):
        run(changed, corpus)
    with open_knowledge_base(changed) as kb, pytest.raises(ModelMismatchError, match="hash-en"):
        kb.search("admins")
    report = run(changed, corpus, rebuild=True)
    assert report.added == 4
    with open_knowledge_base(changed) as kb:
        assert kb.search("admins ingest", k=1)


def test_six_thousand_chunks_in_one_ingest(app_config, tmp_path):
    rows = tmp_path / "rows"
    rows.mkdir()
    with (rows / "big.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(6000):
            handle.write(json.dumps({"_id": f"r{i}", "text": f"Row number {i} talks about topic {i % 97}."}) + "\n")
    report = run(app_config, rows)
    assert report.chunks == 6000 and report.failed == []
    assert len(snapshot(app_config)["en"]) == 6000
    # a fresh process view of the store (as after a restart) still answers queries
    with open_knowledge_base(app_config) as kb:
        hits = kb.search("Row number 4321 talks about topic", k=3)
    assert len(hits) == 3 and any("4321" in h.text for h in hits)


def test_missing_path_is_an_error(app_config, tmp_path):
    from ingest.errors import IngestError

    with pytest.raises(IngestError, match="no such file"):
        run(app_config, tmp_path / "nope")


@pytest.mark.integration
def test_server_mode_against_chroma_run(tmp_path, corpus, chroma_server):
    config = fast_config(tmp_path / "data", store={"mode": "server", "host": "127.0.0.1", "port": chroma_server})
    first = run(config, corpus)
    assert first.added == 4
    again = run(config, corpus)
    assert again.embedded == 0 and again.unchanged == 4
    with open_knowledge_base(config) as kb:
        hits = kb.search("Only admins may run the ingest command", k=2)
        assert "admins" in hits[0].text
        assert kb.store.location == f"http://127.0.0.1:{chroma_server}"


def test_english_chunks_also_embedded_in_the_multilingual_space_and_switched_off_again(app_config, corpus):
    run(app_config, corpus)  # the fast config routes English to `en` only
    before = snapshot(app_config)
    assert before["en"] and not before["en"] & before["ja"]
    both = fast_config(app_config.data_path(), embedding={**app_config.embedding.model_dump(), "routing": {"ja": "ja", "*": ["en", "ja"]}})
    report = run(both, corpus)
    after = snapshot(both)
    assert after["en"] == before["en"] and after["ja"] == before["ja"] | before["en"]  # English chunks now in both
    assert report.embedded == len(before["en"])  # only the new e5 copies were embedded; the MiniLM vectors were re-used
    assert report.chunks == len(before["en"]) + len(before["ja"])  # a chunk in two spaces is still one chunk
    again = run(both, corpus)
    assert again.embedded == 0 and again.unchanged == 4 and again.chunks == report.chunks
    off = run(app_config, corpus)  # back to English-only routing: the copies go, nothing is embedded
    assert off.embedded == 0 and snapshot(app_config) == before
    with open_knowledge_base(app_config) as kb:
        assert kb.keywords.spaces_of(sorted(before["en"]))[sorted(before["en"])[0]] == {"en"}
