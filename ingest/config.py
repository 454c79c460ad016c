"""The `ingest:` section of config.yaml: what files are read and how they are cut."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChunkingConfig(_Strict):
    """Token budgets for cutting documents and grouping transcript cues."""

    max_tokens: int = Field(200, ge=16, le=8000, description="Token budget of a chunk (tiktoken).")
    overlap_tokens: int = Field(30, ge=0, description="Tokens of the previous chunk repeated at the start of the next.")
    transcript_max_tokens: int = Field(200, ge=16, le=8000, description="Token budget of a transcript chunk.")
    transcript_max_seconds: float = Field(90.0, gt=0, description="Longest time span of a transcript chunk.")
    encoding: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("overlap_tokens must be smaller than max_tokens")
        return self


class TableConfig(_Strict):
    """How rows of a CSV/JSONL file become documents (as in Nomic Atlas's upload)."""

    pattern: str = Field("*", description="Glob on the file name this entry applies to; the first match wins.")
    text_fields: list[str] = Field(
        default_factory=list,
        description="Columns joined (one per line) as the row's text; empty picks text/content/body/... automatically.",
    )
    title_field: str | None = Field(None, description="Column used as the title; default 'title' when present.")
    id_field: str | None = Field(None, description="Column with a stable row id; default '_id' or 'id' when present.")
    url_field: str | None = Field(None, description="Column with a link to the row's source; default 'url' when present.")
    metadata_fields: list[str] | None = Field(
        None, description="Columns kept as metadata; None keeps every other scalar column, [] keeps none."
    )


class SetRule(_Strict):
    """Which knowledge set the sources matching a path pattern belong to."""

    pattern: str = Field(..., description="Glob on the source path (e.g. 'docs/hr/**'); matched against the end of the absolute path.")
    name: str = Field(..., min_length=1, description="The knowledge set those sources belong to (stored as chunk metadata `set`).")


DEFAULT_SET = "default"


class IngestConfig(_Strict):
    """Everything about reading files and chunking them."""

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    tables: list[TableConfig] = Field(default_factory=lambda: [TableConfig()])
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are skipped with a reason.")
    max_chunks_per_file: int = Field(
        50_000, ge=1,
        description="A file that would make more chunks than this is skipped with a reason, before any embedding "
        "(50,000 chunks is about 10M tokens: some 20 minutes of the default model on two cores).",
    )
    exclude: list[str] = Field(
        default_factory=lambda: [".*", "__pycache__", "node_modules"],
        description="Glob patterns of file or folder names skipped when walking folders.",
    )
    sets: list[SetRule] = Field(
        default_factory=list,
        description="Path patterns -> knowledge set name; the first match wins, unmatched sources go to 'default'.",
    )

    def set_for(self, source: str) -> str:
        """The knowledge set of a source path (the first matching rule, else 'default')."""
        from fnmatch import fnmatch

        path = source.replace("\\", "/")
        for rule in self.sets:
            pattern = rule.pattern.lstrip("/")
            if fnmatch(path, pattern) or fnmatch(path, "*/" + pattern):
                return rule.name
        return DEFAULT_SET

    def table_for(self, filename: str) -> TableConfig:
        """The first table entry whose pattern matches the file name (defaults if none does)."""
        from fnmatch import fnmatch

        for table in self.tables:
            if fnmatch(filename, table.pattern):
                return table
        return TableConfig()
