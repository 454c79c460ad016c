"""Reading a BEIR-layout data set: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError


@dataclass
class Dataset:
    """A BEIR data set: where its corpus is, the queries of a split and their judgments."""

    root: Path
    corpus: Path
    queries: dict[str, str]  # query id -> text, only queries judged in the split
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    split: str


def load_dataset(root: Path, split: str = "test") -> Dataset:
    """Load a BEIR folder; errors name the missing file and the splits that exist."""
    root = Path(root)
    corpus = root / "corpus.jsonl"
    queries_path = root / "queries.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    for path in (corpus, queries_path):
        if not path.is_file():
            raise RagError(f"{root} is not a BEIR data set: {path.name} is missing (need corpus.jsonl, queries.jsonl, qrels/<split>.tsv).")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        raise RagError(f"No qrels for split {split!r} in {root / 'qrels'}; available: {', '.join(splits) or 'none'} (use --split).")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if len(row) < 3 or row[0] == "query-id":
                continue
            try:
                score = int(float(row[2]))
            except ValueError:
                continue
            qrels.setdefault(row[0], {})[row[1]] = score
    queries: dict[str, str] = {}
    with queries_path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                item = json.loads(line)
                qid = str(item["_id"])
                if qid in qrels:
                    queries[qid] = item["text"]
    missing = set(qrels) - set(queries)
    for qid in missing:
        qrels.pop(qid)
    if not queries:
        raise RagError(f"No query of {qrels_path} is in {queries_path}.")
    return Dataset(root, corpus, queries, qrels, split)
