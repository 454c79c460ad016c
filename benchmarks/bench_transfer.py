"""`ragbot export` and `ragbot import` at scale: seconds, peak RSS, file sizes, and a raw Chroma add.

For each size (default 10,000 and 100,000 chunks) a source data dir is filled with synthetic
chunks (as bench_latency.py: 60 Zipf-distributed words, random 384-d unit vectors, ten chunks
per source file, recorded in the ingest manifest as an ingest would). Then, each in its own
child process (so its peak RSS is its own): `ragbot export` to Parquet and to JSONL, `ragbot
import` of the Parquet export into an empty embedded store and into an empty `chroma run`
server, and a raw `collection.add` of the same ids, vectors, texts and metadata into an empty
embedded Chroma collection (no ragbot: the floor an import cannot beat). Peak RSS "flat" means
the largest size is within 20% of the smallest.

Results go to stdout and into docs/BENCHMARKS.md between the transfer markers.

    python benchmarks/bench_transfer.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

START, END = "<!-- transfer:start -->", "<!-- transfer:end -->"
SPACES = {"embedding": {"spaces": {"en": {"provider": "hashing", "model": "synthetic-384", "dimensions": 384}}, "routing": {"*": "en"}}}


def write_config(path: Path, data_dir: Path, port: int | None = None) -> Path:
    import yaml

    data = {"data_dir": str(data_dir), **SPACES}
    if port:
        data["store"] = {"mode": "server", "host": "127.0.0.1", "port": port}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def fill(config_path: Path, n: int) -> float:
    """Write n synthetic chunks into the configured store, with their ingest bookkeeping; seconds."""
    from bench_latency import synthetic

    from bot.config import load_config
    from bot.runtime import manifest_path, open_knowledge_base
    from ingest.manifest import Manifest
    from rag.records import Chunk, Locator

    config, _ = load_config(str(config_path))
    texts, vectors = synthetic(n, 384)
    started = time.perf_counter()
    manifest = Manifest(manifest_path(config))
    with open_knowledge_base(config) as kb:
        step = 5000
        for i in range(0, n, step):
            chunks = [
                Chunk(f"c{j:07d}", texts[j], f"/synthetic/{j // 10}.md", Locator(heading=f"Part {j % 10}"), {"ordinal": j % 10, "lang": "en", "set": "default", "kind": "markdown"})
                for j in range(i, min(i + step, n))
            ]
            kb.write("en", chunks, vectors[i : i + step])
            for s in range(i // 10, (min(i + step, n) + 9) // 10):
                manifest.replace_source(f"/synthetic/{s}.md", f"fp{s}", [(f"c{j:07d}", "en") for j in range(s * 10, min(s * 10 + 10, n))])
    manifest.close()
    return time.perf_counter() - started


def child(*args: str) -> dict:
    """Run this script's worker in a child process; its JSON result, with its peak RSS in MiB."""
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {args[0]} {args[-1]}: {result}", file=sys.stderr, flush=True)
    return result


def worker(args: list[str]) -> None:
    """In a child: one measured step; prints {"seconds", "rss_mib", ...}."""
    import contextlib
    import io

    from bot.cli import main

    kind = args[0]
    started = time.perf_counter()
    extra: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        if kind == "export":
            config, out, fmt = args[1:]
            code = main(["--config", config, "export", "--out", out, "--format", fmt, "--json"])
            extra["bytes"] = sum(p.stat().st_size for p in Path(out).iterdir())
        elif kind == "import":
            config, path = args[1:]
            code = main(["--config", config, "import", path, "--json"])
        elif kind == "raw":
            code, extra = raw_add(*args[1:])
        else:
            raise SystemExit(f"unknown worker {kind}")
    if code:
        raise SystemExit(f"{kind} exited {code}")
    wall = time.perf_counter() - started  # imports of ragbot's modules and opening the store included
    seconds = json.loads(printed.getvalue())["seconds"] if kind != "raw" else extra.pop("seconds")
    print(json.dumps({"seconds": seconds, "wall": wall, "rss_mib": peak_rss_mib(), **extra}))


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM): unlike ru_maxrss, it does not start at the forking parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_add(export_dir: str, chroma_dir: str) -> tuple[int, dict]:
    """chromadb alone: add the export's ids, vectors, texts and metadata to an empty cosine collection."""
    import chromadb
    import numpy as np
    import pyarrow.parquet as pq
    from chromadb.config import Settings

    started = time.perf_counter()
    client = chromadb.PersistentClient(path=chroma_dir, settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection("raw_add", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    step = min(client.get_max_batch_size(), 5000)
    table = pq.ParquetFile(str(Path(export_dir) / "en.parquet"))
    for batch in table.iter_batches(batch_size=step, columns=["id", "text", "vector", "source", "heading", "metadata"]):
        data = batch.to_pydict()
        vectors = batch.column("vector").flatten().to_numpy().reshape(len(batch), -1).astype(np.float32)
        metas = [{**json.loads(m), "source": s, "heading": h} for m, s, h in zip(data["metadata"], data["source"], data["heading"])]
        collection.add(ids=data["id"], embeddings=vectors, documents=data["text"], metadatas=metas)
    return 0, {"count": collection.count(), "seconds": time.perf_counter() - started}


def start_server(path: Path) -> tuple[subprocess.Popen, int]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2)
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("chroma run did not start")


def bench(n: int, work: Path, all_steps: bool) -> dict:
    src = write_config(work / "source.yaml", work / "source")
    row: dict = {"n": n, "fill_s": fill(src, n)}
    row["export_parquet"] = child("export", str(src), str(work / "export-parquet"), "parquet")
    row["import_embedded"] = child("import", str(write_config(work / "embedded.yaml", work / "embedded")), str(work / "export-parquet"))
    row["raw_add"] = child("raw", str(work / "export-parquet"), str(work / "raw-chroma"))
    assert row["raw_add"]["count"] == n
    row["export_jsonl"] = child("export", str(src), str(work / "export-jsonl"), "jsonl")
    if all_steps:  # the other two imports: at the smallest size only (a shared machine's time is short)
        row["import_jsonl"] = child("import", str(write_config(work / "embedded-jsonl.yaml", work / "embedded-jsonl")), str(work / "export-jsonl"))
        server, port = start_server(work / "server-chroma")
        try:
            row["import_server"] = child("import", str(write_config(work / "server.yaml", work / "server", port)), str(work / "export-parquet"))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return row


def overhead(rows: list[dict]) -> str:
    extra = [r[k]["wall"] - r[k]["seconds"] for r in rows for k in r if isinstance(r[k], dict)]
    return f"{min(extra):.0f}-{max(extra):.0f} s a command"


def table(rows: list[dict]) -> str:
    def cell(r: dict, key: str) -> str:
        return f"{r[key]['seconds']:.1f} s / {r[key]['rss_mib']:.0f} MiB" if key in r else "-"

    lines = [
        "| chunks | export Parquet | export JSONL | import Parquet, embedded | import JSONL, embedded | import Parquet, `chroma run` (ragbot process) | raw Chroma `add`, embedded | Parquet size | JSONL size |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {cell(r, 'export_parquet')} | {cell(r, 'export_jsonl')} | {cell(r, 'import_embedded')} | "
            f"{cell(r, 'import_jsonl')} | {cell(r, 'import_server')} | {cell(r, 'raw_add')} | "
            f"{r['export_parquet']['bytes'] / 1e6:.0f} MB | {r['export_jsonl']['bytes'] / 1e6:.0f} MB |"
        )
    return "\n".join(lines)


def flatness(rows: list[dict]) -> str:
    small, large = rows[0], rows[-1]
    parts = []
    for key, label in (("export_parquet", "export Parquet"), ("export_jsonl", "export JSONL"), ("import_embedded", "import, embedded"), ("import_server", "import, server"), ("raw_add", "raw add, embedded")):
        if key not in small or key not in large:
            continue
        ratio = large[key]["rss_mib"] / small[key]["rss_mib"]
        parts.append(f"{label} {ratio:.2f}x ({'flat' if ratio <= 1.2 else 'not flat'})")
    return f"Peak RSS at {large['n']:,} against {small['n']:,}: " + ", ".join(parts) + "."


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/BENCHMARKS.md alone.")
    parser.add_argument("--previous", type=Path, help="JSON lines of rows printed by an earlier run, put in the table first.")
    args = parser.parse_args()
    from report import measured_on, write_section

    rows = [json.loads(line) for line in args.previous.read_text().splitlines() if line.startswith("{")] if args.previous else []
    earlier = ", ".join(f"{r['n']:,}" for r in rows)
    sizes = [int(s) for s in args.sizes.split(",")]
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-transfer-{n}-"))
        try:
            rows.append(bench(n, work, all_steps=n == min(sizes) and not earlier))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    text = "\n\n".join(
        [
            f"{START}\n{measured_on()}, by `python benchmarks/bench_transfer.py --sizes {args.sizes}`"
            + (f" (the {earlier} row from an earlier run of it with `--sizes {earlier.replace(',', '')}`, same day)" if earlier else "")
            + ". "
            "Synthetic chunks (60 Zipf-distributed words, random 384-d unit vectors, 10 chunks per source), one space. "
            "Each cell: seconds of the work (the `seconds` of `--json`: store open, imports and Python start excluded; "
            f"those added {overhead(rows)}) / the peak RSS of its process (each step runs in its own). "
            "Import includes the checksum check, the keyword index (words of every chunk) and the ingest bookkeeping; "
            "the raw add is chromadb alone adding the same ids, vectors, texts and metadata read from the Parquet file.",
            table(rows),
            flatness(rows) if len(rows) > 1 else "",
        ]
    ).rstrip() + f"\n{END}"
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Export and import")


if __name__ == "__main__":
    main()
