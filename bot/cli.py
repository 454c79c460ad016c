"""The `ragbot` command line: ingest, search, eval, status and config.

The one place that turns exceptions into exit codes: 1 for errors, 2 for bad usage
(click's own). `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from functools import partial
from pathlib import Path

import click

from rag.errors import RagError

logger = logging.getLogger(__name__)


class _Context:
    def __init__(self, config_option: str | None, debug: bool):
        self.config_option = config_option
        self.debug = debug
        self._config = None

    @property
    def config(self):
        from bot.config import load_config

        if self._config is None:
            self._config = load_config(self.config_option)
        return self._config


def _display_source(source: str) -> str:
    """A source path relative to the working directory when it is under it."""
    try:
        return Path(source).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return source


def _echo_json(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    envvar="RAGBOT_CONFIG",
    help="Config file (env RAGBOT_CONFIG; default ./config.yaml, else built-in defaults).",
)
@click.option("--debug", is_flag=True, help="Log debug details and show tracebacks.")
@click.version_option(package_name="ragbot")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, debug: bool) -> None:
    """Answers from your documents and transcripts, with citations.

    \b
    Quick start (offline, with the bundled sample corpus):
      ragbot ingest samples/
      ragbot search "How do I switch to OpenAI embeddings?"
      ragbot status

    The data directory (vectors and bookkeeping) is `data_dir` in config.yaml, or
    RAGBOT_DATA_DIR. Secrets (OPENAI_API_KEY, ...) come from the environment only.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "chromadb", "urllib3", "sentence_transformers", "filelock", "pypdf"):
        logging.getLogger(noisy).setLevel(logging.INFO if debug else logging.WARNING)
    ctx.obj = _Context(config_option, debug)


def _progress_factory():
    from tqdm import tqdm

    # disable=None: bars only when stderr is a terminal, so logs and pipes stay clean
    return partial(tqdm, file=sys.stderr, disable=None, dynamic_ncols=True, leave=False)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Drop every embedding space first and embed PATHS anew (after a model change).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def ingest(obj: _Context, paths: tuple[Path, ...], rebuild: bool, as_json: bool) -> None:
    """Ingest files and folders (Markdown, text, HTML, PDF, CSV/JSONL, VTT, SRT, JSON transcripts).

    \b
    Re-running is cheap and safe: unchanged files are skipped, edited ones replaced,
    files gone from PATHS removed, and a file that fails to parse keeps its old chunks.
    Exit status 0 when the run completed (even if some files failed), 1 when it could not run.

    \b
    Examples:
      ragbot ingest docs/ talks/
      ragbot ingest --json handbook.pdf | jq .failed
    """
    from bot.runtime import open_ingestor, open_knowledge_base

    config, _ = obj.config
    with open_knowledge_base(config) as kb, open_ingestor(config, kb, progress=_progress_factory()) as ingestor:
        report = ingestor.run(list(paths), rebuild=rebuild)
    if as_json:
        _echo_json(report.as_json())
        return
    total = report.added + report.updated + report.unchanged
    click.echo(f"Ingested {total} source(s) in {report.seconds:.1f} s")
    for label, value in (
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("deleted", report.deleted),
        ("failed", len(report.failed)),
        ("chunks embedded", report.embedded),
        ("chunks total", report.chunks),
    ):
        click.echo(f"  {label:<16}{value:>8}")
    if report.failed:
        click.echo("Failed (kept any earlier version):")
        for failure in report.failed:
            click.echo(f"  {_display_source(failure.source)}: {failure.reason}")
    if report.warnings:
        click.echo(f"Warnings ({len(report.warnings)}):")
        for warning in report.warnings[:20]:
            click.echo(f"  {_display_source(warning.source)}: {warning.reason}")
        if len(report.warnings) > 20:
            click.echo(f"  ... and {len(report.warnings) - 20} more (see --json)")


@cli.command()
@click.argument("query")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100), help="How many passages.")
@click.option("--json", "as_json", is_flag=True, help="Print the passages as JSON.")
@click.pass_obj
def search(obj: _Context, query: str, k: int, as_json: bool) -> None:
    """Show the passages that best match QUERY, with where each came from.

    \b
    Example:
      ragbot search "What happens when I delete a file and re-ingest?" -k 3
    """
    from bot.runtime import open_knowledge_base

    if not query.strip():
        raise click.UsageError("QUERY is empty.")
    config, _ = obj.config
    with open_knowledge_base(config) as kb:
        if not any(kb.store.count(space) for space in config.embedding.spaces):
            raise RagError("Nothing is ingested yet. Run `ragbot ingest PATH...` first (try: ragbot ingest samples/).")
        passages = kb.search(query, k=k)
    if as_json:
        _echo_json(
            [
                {
                    "text": p.text,
                    "source": p.source,
                    "locator": p.locator.label(),
                    "score": round(p.score, 4),
                    "space": p.space,
                    **p.locator.fields(),
                    **({"url": p.metadata["url"]} if p.metadata.get("url") else {}),
                }
                for p in passages
            ]
        )
        return
    for rank, p in enumerate(passages, 1):
        where = _display_source(p.source)
        if p.locator.label():
            where += f" | {p.locator.label()}"
        click.echo(click.style(f"{rank}. [{p.score:.3f} {p.space}] ", bold=True) + where)
        excerpt = " ".join(p.text.split())
        if len(excerpt) > 320:
            excerpt = excerpt[:317] + "..."
        click.echo(textwrap.indent(textwrap.fill(excerpt, width=96), "   "))
        click.echo()


@cli.command(name="eval")
@click.argument("dataset_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to score.")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.pass_obj
def evaluate(obj: _Context, dataset_dir: Path, split: str, as_json: bool) -> None:
    """Score retrieval on a BEIR-layout data set (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).

    \b
    The corpus is ingested into a throw-away store with the configured embedding spaces,
    chunking and retrieval settings; your own store is not touched. Scores are per document
    (a document ranks where its best chunk ranks): nDCG@10, Recall@10, Recall@100, MRR@10.

    \b
    Example:
      ragbot eval ../shared/evaldata/beir-scifact --split test --json
    """
    from evaluation.beir import load_dataset
    from evaluation.runner import run_eval

    config, _ = obj.config
    dataset = load_dataset(dataset_dir, split)
    result = run_eval(dataset, config.embedding, config.retrieval, config.ingest, progress=_progress_factory())
    if as_json:
        _echo_json(result.as_json())
        return
    m = result.metrics
    click.echo(f"{dataset_dir} ({split}): {result.queries} queries, {result.ingest.chunks} chunks, {result.seconds:.1f} s")
    for name in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
        click.echo(f"  {name:<12}{m[name]:.4f}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(obj: _Context, as_json: bool) -> None:
    """Show the embedding spaces, their models and what is indexed."""
    from bot.runtime import manifest_path, open_knowledge_base
    from ingest.manifest import Manifest

    config, path = obj.config
    with open_knowledge_base(config) as kb:
        spaces = kb.status()
        location = kb.store.location
    mpath = manifest_path(config)
    sources = 0
    if mpath.exists():
        manifest = Manifest(mpath)
        sources = len(manifest.sources())
        manifest.close()
    data = {
        "config": str(path) if path else None,
        "data_dir": str(config.data_path()),
        "store": {"mode": config.store.mode, "location": location},
        "sources": sources,
        "chunks": sum(s["chunks"] for s in spaces),
        "spaces": spaces,
    }
    if as_json:
        _echo_json(data)
        return
    click.echo(f"Config:    {data['config'] or 'built-in defaults (no config.yaml)'}")
    click.echo(f"Data dir:  {data['data_dir']}")
    click.echo(f"Store:     {config.store.mode} ({location})")
    click.echo(f"Indexed:   {sources} source(s), {data['chunks']} chunk(s)")
    click.echo("Spaces:")
    for s in spaces:
        note = ""
        if s["stored_model"] and s["stored_model"] != s["model"]:
            note = f"  (built with {s['stored_model']}: run `ragbot ingest --rebuild PATH...`)"
        langs = ", ".join("other" if lang == "*" else lang for lang in s["languages"]) or "-"
        click.echo(f"  {s['space']:<8} {s['chunks']:>7} chunks  {s['model']:<48} languages: {langs}{note}")


@cli.command(name="config")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON instead of YAML.")
@click.pass_obj
def show_config(obj: _Context, as_json: bool) -> None:
    """Print the resolved configuration (defaults filled in; secrets shown only as set or not)."""
    import yaml

    from bot.config import secrets_status

    config, path = obj.config
    data = config.model_dump(mode="json")
    data["data_dir"] = str(config.data_path())
    data["secrets (from the environment)"] = secrets_status()
    if as_json:
        _echo_json(data)
        return
    click.echo(f"# resolved from {path or 'built-in defaults'}")
    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI and map errors to exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="ragbot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except RagError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
