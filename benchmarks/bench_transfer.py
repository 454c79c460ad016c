"""`ragbot export` and `ragbot import` at scale: seconds, peak RSS, file sizes, and a raw Chroma add.

For each size (default 10,000 and 100,000 chunks) a source data dir is filled with synthetic
chunks (as bench_latency.py: 60 Zipf-distributed words, random 384-d unit vectors, ten chunks
per source file, recorded in the ingest manifest as an ingest would). Then, each in its own
child process (so its peak RSS is its own):

- `chroma floor`: chromadb alone opening the source store and counting it (its first read
  loads the collection's HNSW segment into the process: the memory an embedded store costs
  any reader, ragbot or not);
- `ragbot export` to Parquet and to JSONL from the embedded store;
- `ragbot import` of each export into an empty embedded store;
- a raw `collection.add` of the same ids, vectors, texts and metadata into an empty embedded
  Chroma collection (no ragbot: the floor an import cannot beat);
- `ragbot import` of the Parquet export into an empty `chroma run` server, then (server
  restarted) `ragbot export` to Parquet from that server: the ragbot process's peak RSS and,
  separately, the server's (its VmHWM read from /proc after the step);
- the same with JSONL (`import_server_jsonl`: the JSONL export into another empty server;
  `export_server_jsonl`: a JSONL export from the Parquet-filled server, restarted again).

Peak RSS "flat" means the largest size is within 20% of the smallest.
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
        elif kind == "floor":
            code, extra = chroma_floor(*args[1:])
        else:
            raise SystemExit(f"unknown worker {kind}")
    if code:
        raise SystemExit(f"{kind} exited {code}")
    wall = time.perf_counter() - started  # imports of ragbot's modules and opening the store included
    seconds = json.loads(printed.getvalue())["seconds"] if kind not in ("raw", "floor") else extra.pop("seconds")
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
    table = pq.ParquetFile(str(Path(export_dir) / "en.parquet"), pre_buffer=False)  # as import reads it: one row group at a time
    for batch in table.iter_batches(batch_size=step, columns=["id", "text", "vector", "source", "heading", "metadata"]):
        data = batch.to_pydict()
        vectors = batch.column("vector").flatten().to_numpy().reshape(len(batch), -1).astype(np.float32)
        metas = [{**json.loads(m), "source": s, "heading": h} for m, s, h in zip(data["metadata"], data["source"], data["heading"])]
        collection.add(ids=data["id"], embeddings=vectors, documents=data["text"], metadatas=metas)
    return 0, {"count": collection.count(), "seconds": time.perf_counter() - started}


def chroma_floor(chroma_dir: str) -> tuple[int, dict]:
    """chromadb alone: open an embedded store and count each collection (the first read loads its segments)."""
    import chromadb
    from chromadb.config import Settings

    started = time.perf_counter()
    client = chromadb.PersistentClient(path=chroma_dir, settings=Settings(anonymized_telemetry=False))
    count = sum(client.get_collection(c.name).count() for c in client.list_collections())
    return 0, {"count": count, "seconds": time.perf_counter() - started}


def server_peak_mib(proc: subprocess.Popen) -> float:
    """A `chroma run` server's peak RSS so far (VmHWM of its process and any children)."""
    total = 0
    pids = [proc.pid]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_server(path: Path) -> tuple[subprocess.Popen, int]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    proc = subprocess.Popen([exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(900):  # up to 3 minutes: a loaded machine starts it slowly
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2)
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("chroma run did not start")


STEPS = (
    "chroma_floor", "export_parquet", "export_jsonl", "import_embedded", "import_jsonl", "raw_add",
    "import_server", "export_server", "import_server_jsonl", "export_server_jsonl",
)


def bench(n: int, work: Path, steps: set[str], together: bool) -> dict:
    """One size: the steps asked for; with together, the imports and the raw add run at the same time (each its own process)."""
    from concurrent.futures import ThreadPoolExecutor

    src = write_config(work / "source.yaml", work / "source")
    row: dict = {"n": n, "fill_s": fill(src, n)}
    if "chroma_floor" in steps:
        row["chroma_floor"] = child("floor", str(work / "source" / "chroma"))
    row["export_parquet"] = child("export", str(src), str(work / "export-parquet"), "parquet")  # every import reads it
    if {"export_jsonl", "import_jsonl", "import_server_jsonl"} & steps:
        row["export_jsonl"] = child("export", str(src), str(work / "export-jsonl"), "jsonl")

    def embedded(key: str, export: str) -> dict:
        result = child("import", str(write_config(work / f"{key}.yaml", work / key)), str(work / export))
        shutil.rmtree(work / key, ignore_errors=True)  # disk: several 100,000-chunk stores at once are too many
        return result

    def raw() -> dict:
        result = child("raw", str(work / "export-parquet"), str(work / "raw-chroma"))
        assert result["count"] == n
        shutil.rmtree(work / "raw-chroma", ignore_errors=True)
        return result

    def server_import(fmt: str = "parquet") -> dict:
        tag = "" if fmt == "parquet" else f"-{fmt}"
        server, port = start_server(work / f"server-chroma{tag}")
        try:
            result = child("import", str(write_config(work / f"server{tag}.yaml", work / f"server{tag}", port)), str(work / f"export-{fmt}"))
            result["server_rss_mib"] = server_peak_mib(server)
            return result
        finally:
            stop_server(server)

    jobs = {
        "import_embedded": lambda: embedded("import_embedded", "export-parquet"),
        "import_jsonl": lambda: embedded("import_jsonl", "export-jsonl"),
        "raw_add": raw,
        "import_server": server_import,
        "import_server_jsonl": lambda: server_import("jsonl"),
    }
    jobs = {k: f for k, f in jobs.items() if k in steps}
    with ThreadPoolExecutor(max_workers=len(jobs) if together else 1) as pool:
        futures = {k: pool.submit(f) for k, f in jobs.items()}
        row.update({k: f.result() for k, f in futures.items()})
    for key, fmt in (("export_server", "parquet"), ("export_server_jsonl", "jsonl")):
        if key not in steps or "import_server" not in steps:
            continue
        server, port = start_server(work / "server-chroma")  # a fresh server process: its peak is the export's own
        try:
            config = write_config(work / "server.yaml", work / "server", port)
            row[key] = child("export", str(config), str(work / f"export-server-{fmt}"), fmt)
            row[key]["server_rss_mib"] = server_peak_mib(server)
        finally:
            stop_server(server)
    row["together"] = together and len(jobs) > 1
    return row


def overhead(rows: list[dict]) -> str:
    extra = [r[k]["wall"] - r[k]["seconds"] for r in rows for k in r if isinstance(r[k], dict)]
    return f"{min(extra):.0f}-{max(extra):.0f} s a command"


def table(rows: list[dict]) -> str:
    def cell(r: dict, key: str) -> str:
        if key not in r:
            return "-"
        text = f"{r[key]['seconds']:.1f} s / {r[key]['rss_mib']:.0f} MiB"
        return text + (f" (server {r[key]['server_rss_mib']:.0f} MiB)" if "server_rss_mib" in r[key] else "")

    columns = [
        ("chroma_floor", "Chroma alone: open + count"),
        ("export_parquet", "export Parquet"),
        ("export_jsonl", "export JSONL"),
        ("import_embedded", "import Parquet"),
        ("import_jsonl", "import JSONL"),
        ("raw_add", "raw Chroma `add`"),
        ("import_server", "import Parquet, `chroma run`"),
        ("export_server", "export Parquet, `chroma run`"),
        ("import_server_jsonl", "import JSONL, `chroma run`"),
        ("export_server_jsonl", "export JSONL, `chroma run`"),
    ]
    lines = [
        "| chunks | " + " | ".join(label for _, label in columns) + " | Parquet size | JSONL size |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,}{' *' if r.get('together') else ''} | " + " | ".join(cell(r, key) for key, _ in columns) + " | "
            f"{r['export_parquet']['bytes'] / 1e6:.0f} MB | " + (f"{r['export_jsonl']['bytes'] / 1e6:.0f} MB |" if "export_jsonl" in r else "- |")
        )
    return "\n".join(lines)


def flatness(rows: list[dict]) -> str:
    small, large = rows[0], rows[-1]

    def ratio(a: float, b: float) -> str:
        r = b / a
        return f"{r:.2f}x ({'flat' if r <= 1.2 else 'not flat'})"

    parts = []
    for key, label in (
        ("chroma_floor", "Chroma alone"),
        ("export_parquet", "export Parquet"),
        ("export_jsonl", "export JSONL"),
        ("import_embedded", "import Parquet"),
        ("import_jsonl", "import JSONL"),
        ("raw_add", "raw add"),
        ("import_server", "import into `chroma run`, ragbot process"),
        ("export_server", "export from `chroma run`, ragbot process"),
        ("import_server_jsonl", "import JSONL into `chroma run`, ragbot process"),
        ("export_server_jsonl", "export JSONL from `chroma run`, ragbot process"),
    ):
        if key in small and key in large:
            parts.append(f"{label} {ratio(small[key]['rss_mib'], large[key]['rss_mib'])}")
    for key, label in (
        ("import_server", "the server during the import"),
        ("export_server", "the server during the export"),
        ("import_server_jsonl", "the server during the JSONL import"),
        ("export_server_jsonl", "the server during the JSONL export"),
    ):
        if key in small and key in large:
            parts.append(f"{label} {ratio(small[key]['server_rss_mib'], large[key]['server_rss_mib'])}")
    text = f"Peak RSS at {large['n']:,} against {small['n']:,}: " + ", ".join(parts) + "."
    if "chroma_floor" in small and "chroma_floor" in large:
        own = [
            f"{label} {ratio(small[key]['rss_mib'] - small['chroma_floor']['rss_mib'], large[key]['rss_mib'] - large['chroma_floor']['rss_mib'])}"
            for key, label in (("export_parquet", "export Parquet"), ("export_jsonl", "export JSONL"))
            if key in small and key in large
        ]
        text += " Embedded export less what Chroma alone holds (ragbot's own part): " + ", ".join(own) + "."
    return text


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"Comma-separated, of: {', '.join(STEPS)} (the exports always run).")
    parser.add_argument("--together", action="store_true", help="Run the imports and the raw add at the same time (each in its own process).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/BENCHMARKS.md alone.")
    parser.add_argument("--previous", type=Path, help="JSON lines of rows printed by an earlier run, put in the table first.")
    args = parser.parse_args()
    from report import measured_on, write_section

    rows = [json.loads(line) for line in args.previous.read_text().splitlines() if line.startswith("{")] if args.previous else []
    earlier = ", ".join(f"{r['n']:,}" for r in rows)
    sizes = [int(s) for s in args.sizes.split(",") if s]  # none: only write the --previous rows
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-transfer-{n}-"))
        try:
            rows.append(bench(n, work, set(args.steps.split(",")), args.together))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    text = "\n\n".join(
        [
            f"{START}\n{measured_on()}, by `python benchmarks/bench_transfer.py {' '.join(a for a in sys.argv[1:] if not a.startswith('--previous') and not a.endswith('.jsonl'))}`"
            + (f" (the {earlier} row from an earlier run of it with `--sizes {earlier.replace(',', '')}`, same day)" if earlier else "")
            + ". "
            "Synthetic chunks (60 Zipf-distributed words, random 384-d unit vectors, 10 chunks per source), one space. "
            "Each cell: seconds of the work (the `seconds` of `--json`: store open, imports and Python start excluded; "
            f"those added {overhead(rows)}) / the peak RSS of its process (each step runs in its own). "
            "Import includes the checksum check, the keyword index (words of every chunk) and the ingest bookkeeping; "
            "the raw add is chromadb alone adding the same ids, vectors, texts and metadata read from the Parquet file. "
            "`chroma run` cells: the ragbot process's peak RSS, and the server process's in brackets (import into an "
            "empty server; export from that server, restarted; the JSONL import into a second empty server, the JSONL export "
            "from the first, restarted again). A dash: step not run at that size."
            + (" The imports and the raw add of a row marked * ran at the same time (one process each): their seconds are "
               "under that contention too, the raw add's as much as the imports'." if any(r.get("together") for r in rows) else ""),
            table(rows),
            flatness(rows) if len(rows) > 1 else "",
        ]
    ).rstrip() + f"\n{END}"
    print(text)
    if not args.no_write:
        write_section(text, START, END, "Export and import")


if __name__ == "__main__":
    main()
