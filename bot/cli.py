"""The `ragbot` command line: ingest, search, eval, ask, chat, status, map, export, import and config.

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

from rag.errors import LLMError, QuestionError, RagError

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
    """A source path relative to the working directory when it is under it, control characters escaped."""
    from bot.texts import printable

    try:
        return printable(Path(source).relative_to(Path.cwd().resolve()).as_posix())
    except ValueError:
        return printable(source)


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
      ragbot ask "Who can run /ragbot-ingest?"
      ragbot chat
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
    import os

    from tqdm import tqdm

    # disable=None: bars only when stderr is a terminal, so logs and pipes stay clean
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        size = os.terminal_size((80, 24))
    if size.columns <= 0 or size.lines <= 0:
        # a terminal that reports no size (a pty opened by a tool, some CI or IDE consoles): tqdm
        # takes it as -1 rows, counts every bar as off-screen and prints nothing, so give it a size
        return partial(tqdm, file=sys.stderr, disable=None, ncols=80, nrows=24, leave=False)
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
    from bot.texts import printable

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
            click.echo(f"  {_display_source(failure.source)}: {printable(failure.reason)}")
    if report.warnings:
        click.echo(f"Warnings ({len(report.warnings)}):")
        for warning in report.warnings[:20]:
            click.echo(f"  {_display_source(warning.source)}: {printable(warning.reason)}")
        if len(report.warnings) > 20:
            click.echo(f"  ... and {len(report.warnings) - 20} more (see --json)")


@cli.command()
@click.argument("query")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100), help="How many passages.")
@click.option("--json", "as_json", is_flag=True, help="Print the passages as JSON.")
@click.pass_obj
def search(obj: _Context, query: str, k: int, as_json: bool) -> None:
    """Show the passages that best match QUERY, with where each came from.

    Each result shows the score it is ranked by (dense and keyword rankings fused, 0-1) and its
    cosine similarity in the embedding space that judged it relevant. Only relevant passages are
    listed: the same decision `ask` and the bots use.

    \b
    Example:
      ragbot search "What happens when I delete a file and re-ingest?" -k 3
    """
    from bot.runtime import open_knowledge_base

    if not query.strip():
        raise click.UsageError("QUERY is empty.")
    config, _ = obj.config
    with open_knowledge_base(config) as kb:
        _require_ingested(config, kb)
        passages = kb.search(query, k=k)
    if as_json:
        _echo_json(
            [
                {
                    "text": p.text,
                    "source": p.source,
                    "locator": p.locator.label(),
                    "score": round(p.score, 4),  # the fused score results are ranked by
                    "cosine": None if p.cosine is None else round(p.cosine, 4),  # in `space`, what the relevance decision reads
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
        cosine = "" if p.cosine is None else f", cosine {p.cosine:.3f} in {p.space}"
        click.echo(click.style(f"{rank}. [{p.score:.3f}{cosine}] ", bold=True) + where)
        excerpt = " ".join(p.text.split())
        if len(excerpt) > 320:
            excerpt = excerpt[:317] + "..."
        click.echo(textwrap.indent(textwrap.fill(excerpt, width=96), "   "))
        click.echo()


def _require_ingested(config, kb) -> None:
    if not any(kb.count(space) for space in config.embedding.spaces):
        raise RagError("Nothing is ingested yet. Run `ragbot ingest PATH...` first (try: ragbot ingest samples/).")


def _print_answer_tail(answer, streamed: bool) -> None:
    """After the answer text: the ungrounded note and the Sources section."""
    from rag.citations import format_citations
    from rag.lang import detect_lang
    from rag.messages import text as message

    lang = detect_lang(answer.question)
    if not streamed:
        click.echo(answer.text, nl=False)
    click.echo()
    if answer.found and not answer.grounded:
        click.echo(click.style(message("ungrounded", lang), fg="yellow"))
    if answer.citations:
        click.echo()
        click.echo(message("sources", lang))
        click.echo(textwrap.indent(format_citations(answer.citations, _display_source), "  "))


def _stdout_token(delta: str) -> None:
    click.echo(delta, nl=False)
    sys.stdout.flush()


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help='Print {"answer","citations","mode","found"} as JSON (no streaming).')
@click.pass_obj
def ask(obj: _Context, question: str, as_json: bool) -> None:
    """Answer QUESTION from the ingested documents, with checked citations.

    \b
    With an LLM (OPENAI_API_KEY or llm.base_url set) the answer streams as it is written;
    without one, the most relevant sentences are quoted, each cited. When nothing relevant
    is found the answer says so (and no LLM is called). Exit status 1 when the LLM fails.

    \b
    Examples:
      ragbot ask "What happens when I delete a file and re-ingest?"
      ragbot ask --json "再取り込みは誰が実行できますか？" | jq .citations
    """
    from bot.runtime import build_answerer, open_knowledge_base

    config, _ = obj.config
    with open_knowledge_base(config) as kb:
        _require_ingested(config, kb)
        answerer = build_answerer(config, kb)
        answer = answerer.answer(question, on_token=None if as_json else _stdout_token)
    if as_json:
        _echo_json(answer.as_json())
        return
    _print_answer_tail(answer, streamed=True)


@cli.command()
@click.pass_obj
def chat(obj: _Context) -> None:
    """An interactive session: ask, then ask follow-ups ("and for Japanese files?").

    \b
    One question per line; /exit (or end of input) quits, /new forgets the conversation.
    Works with piped input too:  printf 'Who can re-ingest?\nand how?\n' | ragbot chat
    """
    from bot.runtime import build_answerer, open_knowledge_base
    from rag.conversation import Conversation
    from rag.lang import detect_lang

    config, _ = obj.config
    interactive = sys.stdin.isatty()
    with open_knowledge_base(config) as kb:
        _require_ingested(config, kb)
        answerer = build_answerer(config, kb)
        conversation = Conversation(config.answer.history_turns)
        if interactive:
            click.echo(f"Answers: {answerer.mode}. Ask a question; /new starts over, /exit quits.", err=True)
        while True:
            if interactive:
                click.echo("> ", nl=False, err=True)
            line = sys.stdin.readline()
            if not line:
                break
            question = line.strip()
            if not question:
                continue
            if question in ("/exit", "/quit"):
                break
            if question == "/new":
                conversation = Conversation(config.answer.history_turns)
                continue
            if not interactive:
                click.echo(f"> {question}")
            try:
                answer = answerer.answer(question, conversation, on_token=_stdout_token)
            except LLMError as exc:  # the session lives on; the user may retry
                click.echo()
                click.echo(exc.user_message(detect_lang(question)))
                continue
            except QuestionError as exc:
                click.echo(str(exc))
                continue
            _print_answer_tail(answer, streamed=True)
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
        location = kb.location
    mpath = manifest_path(config)
    sources = 0
    chunks = sum(s["chunks"] for s in spaces)
    if mpath.exists():
        manifest = Manifest(mpath)
        records = manifest.sources()
        sources = len(records)
        if records:  # a chunk embedded in two spaces (English with the bilingual default) counts once
            chunks = sum(r.chunks for r in records.values())
        manifest.close()
    data = {
        "config": str(path) if path else None,
        "data_dir": str(config.data_path()),
        "store": {"mode": config.store.mode, "location": location},
        "sources": sources,
        "chunks": chunks,
        "spaces": spaces,
        "answers": _answers_status(config),
    }
    if as_json:
        _echo_json(data)
        return
    click.echo(f"Config:    {data['config'] or 'built-in defaults (no config.yaml)'}")
    click.echo(f"Data dir:  {data['data_dir']}")
    click.echo(f"Store:     {config.store.mode} ({location})")
    click.echo(f"Indexed:   {sources} source(s), {data['chunks']} chunk(s)")
    answers = data["answers"]
    model = f", {answers['model']}" if answers["mode"] == "llm" else ""
    click.echo(f"Answers:   {answers['mode']}{model} ({answers['why']})")
    click.echo("Spaces:")
    for s in spaces:
        note = ""
        if s["stored_model"] and s["stored_model"] != s["model"]:
            note = f"  (built with {s['stored_model']}: run `ragbot ingest --rebuild PATH...`)"
        langs = ", ".join("other" if lang == "*" else lang for lang in s["languages"]) or "-"
        click.echo(f"  {s['space']:<8} {s['chunks']:>7} chunks  {s['model']:<48} languages: {langs}{note}")


def _answers_status(config) -> dict:
    """Which answer mode is in use and why (no network call)."""
    provider, why = config.llm.resolved()
    if provider == "extractive":
        return {"mode": "extractive", "why": why}
    where = config.llm.base_url or "api.openai.com"
    return {"mode": "llm", "model": f"{config.llm.model} at {where}", "why": why}


@cli.command(name="map")
@click.option("--space", metavar="NAME", help="Draw only this embedding space (default: every space that holds chunks, side by side).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="HTML file to write (default ragbot-map.html, or ragbot-map-SPACE.html).")
@click.option("--color-by", type=click.Choice(["source", "set", "cluster", "lang"]), help="Colour points by (default map.color_by).")
@click.option(
    "--compare",
    nargs=2,
    metavar="A B",
    help="Two maps side by side with linked selection; each is a SPACE or CONFIG.yaml:SPACE (another store).",
)
@click.option("--llm-labels/--no-llm-labels", default=True, show_default=True, help="Let the configured LLM title the clusters (only when one is configured).")
@click.pass_obj
def map_command(
    obj: _Context, space: str | None, out: Path | None, color_by: str | None, compare: tuple[str, str] | None, llm_labels: bool
) -> None:
    """Draw the knowledge map: every chunk as a point, similar text close together, clusters labelled.

    \b
    One self-contained HTML file (data and code inline): it opens offline and nothing leaves
    the machine. Hover shows a chunk, click opens its source, the search box highlights matches
    and their neighbours; scroll to zoom, drag to pan.
    \b
    By default every embedding space that holds chunks is drawn, side by side (a space has its
    own model, so its points cannot share a plane with another's); --space draws one.
    \b
    Examples:
      ragbot map
      ragbot map --space ja --color-by source --out ja.html
      ragbot map --compare en other-model.yaml:en
    """
    from bot.config import load_config
    from bot.runtime import open_knowledge_base
    from rag.atlas.builder import draw_map, read_space
    from rag.atlas.projection import enable_numba_cache

    config, _ = obj.config
    if space and compare:
        raise click.UsageError("Use --space or --compare, not both.")
    targets: list[tuple[object, str | None]] = []
    for spec in compare or (space,):
        where, sep, name = (spec or "").rpartition(":")
        targets.append((load_config(where)[0], name) if sep and where else (config, spec))
    records = []
    for target_config, name in targets:  # one store open at a time: two may share a lock
        with open_knowledge_base(target_config) as kb:
            if name is None:  # every space that holds chunks: a mixed corpus shows all its documents
                counts = {s: kb.count(s) for s in kb.stored_spaces()}
                if not any(counts.values()):
                    raise RagError("Nothing is ingested yet, so there is nothing to map. Run `ragbot ingest PATH...` first.")
                names = sorted((s for s in counts if counts[s]), key=lambda s: (-counts[s], s))
                records.extend(read_space(kb, s) for s in names)
                continue
            records.append(read_space(kb, name))
    # numba compiles UMAP's kernels on first use (tens of seconds): keep them in the data dir
    enable_numba_cache(config.data_path() / "numba-cache")
    namer = None
    if llm_labels:
        from rag.atlas.topics import llm_namer
        from rag.llm import build_chat_model

        model = build_chat_model(config.llm)  # None in extractive mode: keyword labels only
        namer = llm_namer(model) if model is not None else None
    page, note, layers = draw_map(
        records, config.map, color_by=color_by, progress=_progress_factory(), namer=namer, compare=bool(compare),
        trusted_urls=config.answer.trusted_urls,
    )
    if out is None:
        out = Path("ragbot-map-" + "-vs-".join(r.space for r in records) + ".html" if compare or space else "ragbot-map.html")
    out.write_text(page, encoding="utf-8")
    if note:
        click.echo(f"Note: {note}", err=True)
    for layer in layers:
        noise = int((layer.clusters < 0).sum())
        click.echo(f"{layer.name}: {len(layer.records):,} chunks, {len(layer.topics)} clusters, {noise:,} unclustered")
    click.echo(f"Wrote {out} ({out.stat().st_size / 1e6:.1f} MB). Open it in a browser; it works offline.")


@cli.command(name="export")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to create (it must not exist yet).")
@click.option("--space", "spaces", multiple=True, metavar="NAME", help="Export only this space (repeatable; default: every space with chunks).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), default="parquet", show_default=True, help="File format of the data files.")
@click.option("--with-map", is_flag=True, help="Add x, y, cluster and topic columns: the layout of `ragbot map` (same seed).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def export_command(obj: _Context, out: Path, spaces: tuple[str, ...], fmt: str, with_map: bool, as_json: bool) -> None:
    """Export every chunk: vector, text, source and locators, one file per space, plus manifest.json.

    \b
    A backup, a move to another store (`ragbot import`), or data for pandas, DuckDB,
    embedding-atlas or a Nomic Atlas upload (a `text` and a `vector` column). The store is
    read 1,000 chunks at a time (an embedded Chroma store still caches the collection in this
    process); the folder appears only once it is complete.
    \b
    Examples:
      ragbot export --out backup-2026-12-02
      ragbot export --out en-map --space en --with-map
      ragbot export --out dump --format jsonl
    """
    from bot.runtime import open_ingestor, open_knowledge_base

    config, _ = obj.config
    if with_map:
        from rag.atlas.projection import enable_numba_cache

        enable_numba_cache(config.data_path() / "numba-cache")
    with open_knowledge_base(config) as kb, open_ingestor(config, kb, progress=_progress_factory()) as ingestor:
        report = ingestor.export(out, spaces, fmt, config.map if with_map else None)
    if as_json:
        _echo_json(report.as_json())
        return
    click.echo(f"Exported {report.chunks:,} chunk(s) to {out} in {report.seconds:.1f} s")
    for s in report.spaces:
        click.echo(f"  {s.space:<8} {s.chunks:>9,} chunks  {s.dim:>5}-d  {s.model}  {s.file} ({s.bytes / 1e6:.1f} MB)")


@cli.command(name="import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def import_command(obj: _Context, path: Path, as_json: bool) -> None:
    """Load an export (a folder from `ragbot export`) into the configured store, without re-embedding.

    \b
    Restores a backup, or moves an embedded store to a `chroma run` server (import with
    store.mode: server). Chunks already present are skipped; the ingest bookkeeping is written,
    so a later `ragbot ingest` of the same files embeds nothing. Refused before anything is
    written: another model or dimension than config.yaml's, a newer export format, a
    truncated or corrupted file.
    \b
    Example:
      ragbot --config server.yaml import backup-2026-12-02
    """
    from bot.runtime import open_ingestor, open_knowledge_base

    config, _ = obj.config
    with open_knowledge_base(config) as kb, open_ingestor(config, kb, progress=_progress_factory()) as ingestor:
        report = ingestor.import_export(path)
    if as_json:
        _echo_json(report.as_json())
        return
    data = report.as_json()
    click.echo(f"Imported {data['imported']:,} chunk(s) of {report.sources:,} source(s) from {path} in {report.seconds:.1f} s")
    for space, counts in data["spaces"].items():
        click.echo(f"  {space:<8} {counts['imported']:>9,} imported  {counts['skipped']:>9,} already present")


@cli.group()
def serve() -> None:
    """Run a chat bot (Slack or Discord) over the ingested documents."""


@serve.command(name="slack")
@click.option("--mode", type=click.Choice(["socket", "http"]), default=None, help="socket (default; SLACK_APP_TOKEN) or http (SLACK_SIGNING_SECRET).")
@click.option("--host", default=None, help="http mode: interface to listen on (default slack.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="http mode: port for POST /slack/events (default slack.port).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Worker processes (a supervisor restarts any that dies). More than 1 needs store.mode: server (chroma run) "
    "and a shared state.backend (sqlite on one host, redis across hosts).",
)
@click.option("--listen-fd", "listen_fd", type=int, default=None, hidden=True)  # a worker's inherited socket (bot/serve.py)
@click.pass_obj
def serve_slack(obj: _Context, mode: str | None, host: str | None, port: int | None, workers: int, listen_fd: int | None) -> None:
    """Answer @mentions, DMs, /ask and admin commands in Slack.

    \b
    Environment: SLACK_BOT_TOKEN (always), SLACK_APP_TOKEN (socket mode),
    SLACK_SIGNING_SECRET (http mode), SLACK_API_URL (optional Web API base URL),
    RAGBOT_STATE_PASSWORD (state.backend: redis with a password).
    \b
    Examples:
      ragbot serve slack                       # Socket Mode, no public URL needed
      ragbot serve slack --mode http --port 3000   # on 127.0.0.1, behind a reverse proxy
      ragbot serve slack --mode http --host 0.0.0.0 # every interface (TLS must still end somewhere)
      ragbot serve slack --mode http --workers 4    # 4 processes on one port (needs chroma run)
    """
    from bot.serve import serve_slack as serve

    config, path = obj.config
    serve(
        config, mode or config.slack.mode, host or config.slack.host, config.slack.port if port is None else port,
        workers=workers, config_path=path, listen_fd=listen_fd, debug=obj.debug,
    )


@serve.command(name="discord")
@click.pass_obj
def serve_discord(obj: _Context) -> None:
    """Answer @mentions, DMs, /ask and admin commands in Discord.

    \b
    One process per bot token (Discord allows one gateway connection); it shares the state
    store (threads, buttons, feedback, the ingest lock) with any Slack workers.
    Environment: DISCORD_TOKEN (the bot token from the Developer Portal).
    \b
    Example:
      DISCORD_TOKEN=... ragbot serve discord
    """
    from bot.serve import serve_discord as serve

    config, _ = obj.config
    serve(config)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print every vote as JSON.")
@click.pass_obj
def feedback(obj: _Context, as_json: bool) -> None:
    """Show the helpful / not helpful votes left on answers in chat (from the state store, state.backend).

    One vote per user and answer (a second click replaces the first). A feedback.jsonl left in
    the data directory by an earlier version is imported once.
    """
    from bot.runtime import open_bot_state

    config, _ = obj.config
    with open_bot_state(config) as state:
        votes = state.read_feedback()
    if as_json:
        from dataclasses import asdict

        _echo_json([asdict(v) for v in votes])
        return
    helpful = sum(v.helpful for v in votes)
    click.echo(f"{len(votes)} vote(s): {helpful} helpful, {len(votes) - helpful} not helpful")
    for v in votes:
        mark = "+" if v.helpful else "-"
        sources = ", ".join(s.get("source", "").rsplit("/", 1)[-1] for s in v.sources) or "no sources"
        click.echo(f"{mark} [{v.platform} {v.channel} {v.user}] {v.question}")
        click.echo(f"    {' '.join(v.answer.split())[:200]}  ({sources})")


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
    data["secrets (from the environment)"] = secrets_status(config)
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
