"""Answering: retrieve -> floor -> prompt -> stream -> check citations -> Answer.

Retrieval is passed in (`retrieve(question, k, where)`, [] when nothing passes the floor),
so the hybrid retriever can replace the interim floor without touching this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from rag.citations import Citation, SafeStream, citation_for, cited_numbers, is_trusted_url
from rag.config import AnswerConfig, LLMConfig
from rag.conversation import Conversation, standalone_question
from rag.errors import QuestionError
from rag.extractive import Similarity, choose_quotes, extractive_text
from rag.lang import detect_lang
from rag.llm import ChatModel, OnToken
from rag.messages import text as message
from rag.prompts import answer_messages, fit_passages
from rag.records import Passage

logger = logging.getLogger(__name__)

Retrieve = Callable[..., list[Passage]]  # retrieve(question, k, where=None, lang=None)


@dataclass(frozen=True)
class Answer:
    """What a user is shown: the checked text, its citations, and how it was made."""

    text: str
    citations: tuple[Citation, ...]
    mode: str  # "llm" | "extractive"
    found: bool  # False: nothing passed the relevance floor (no LLM call was made)
    grounded: bool  # at least one citation survived the check
    question: str = ""
    standalone_question: str = ""
    passages: tuple[Passage, ...] = field(default=(), repr=False)  # what the model was shown, numbered from 1
    closest: tuple[str, ...] = ()  # not found: the nearest sources

    def as_json(self) -> dict:
        """The `ragbot ask --json` contract."""
        return {
            "answer": self.text,
            "citations": [c.as_json() for c in self.citations],
            "mode": self.mode,
            "found": self.found,
            "grounded": self.grounded,
        }


class Answerer:
    """Answers questions from retrieved passages with an LLM, or extractively without one."""

    def __init__(
        self,
        retrieve: Retrieve,
        config: AnswerConfig,
        llm_config: LLMConfig,
        model: ChatModel | None = None,
        closest: Retrieve | None = None,
        similarity: Similarity | None = None,
    ):
        self.retrieve = retrieve
        self.closest = closest
        self.similarity = similarity  # extractive mode: sentences scored by meaning too
        self.config = config
        self.llm_config = llm_config
        self.model = model

    @property
    def mode(self) -> str:
        """'llm' when a chat model is configured, else 'extractive'."""
        return "llm" if self.model is not None else "extractive"

    def _check_question(self, question: str) -> tuple[str, str]:
        question = question.strip()
        lang = detect_lang(question)
        if not question:
            raise QuestionError(message("empty_question", lang))
        if len(question) > self.config.max_question_chars:
            raise QuestionError(
                message("question_too_long", lang, length=len(question), limit=self.config.max_question_chars)
            )
        return question, lang

    def answer(
        self,
        question: str,
        conversation: Conversation | None = None,
        on_token: OnToken | None = None,
        where: dict | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer a question (a follow-up when conversation has turns); stream text to on_token.

        on_stage("writing") is called when the LLM is asked (after retrieval), for front ends
        that show what the answer is doing.

        Raises QuestionError for an empty or too long question and LLMError subclasses
        (each with a short user-facing message) when the model fails; the conversation
        remembers only answered turns.
        """
        question, lang = self._check_question(question)  # the language is detected once and passed along
        standalone = standalone_question(conversation, question, self.model, lang=lang)
        asked_lang = lang if standalone == question else detect_lang(standalone)
        passages = self.retrieve(standalone, self.config.k, where=where, lang=asked_lang)
        if not passages:
            result = self._not_found(question, standalone, lang, where, on_token, asked_lang)
        elif self.model is None:
            result = self._extractive(question, standalone, lang, passages, on_token)
        else:
            if on_stage is not None:
                on_stage("writing")
            result = self._generate(question, standalone, lang, passages, on_token)
        if conversation is not None:
            conversation.add(question, standalone, result.text)
        return result

    def _not_found(self, question, standalone, lang, where, on_token, asked_lang) -> Answer:
        names: list[str] = []
        if self.closest and self.config.closest_sources:
            for p in self.closest(standalone, self.config.closest_sources, where=where, lang=asked_lang):
                name = PurePath(p.source).name + (f" ({p.locator.label()})" if p.locator.label() else "")
                if name not in names:
                    names.append(name)
        lines = [message("not_found", lang)]
        if names:
            lines.append(message("closest", lang) + " " + "; ".join(names))
        stream = SafeStream(set(), on_token=on_token)
        stream.feed("\n".join(lines))
        return Answer(
            stream.close(), (), self.mode, found=False, grounded=False,
            question=question, standalone_question=standalone, closest=tuple(names),
        )

    def _finish(self, question, standalone, stream: SafeStream, passages: Sequence[Passage], mode: str) -> Answer:
        text = stream.close()
        citations = tuple(
            citation_for(n, passages[n - 1], self.config.trusted_urls) for n in cited_numbers(text) if 1 <= n <= len(passages)
        )
        return Answer(
            text, citations, mode, found=True, grounded=bool(citations),
            question=question, standalone_question=standalone, passages=tuple(passages),
        )

    def _allowed_urls(self, passages: Sequence[Passage]) -> frozenset[str]:
        # only a source URL the operator vouches for may stay clickable; metadata is the document's claim
        return frozenset(
            str(p.metadata["url"]) for p in passages
            if p.metadata.get("url") and is_trusted_url(str(p.metadata["url"]), self.config.trusted_urls)
        )

    def _extractive(self, question, standalone, lang, passages, on_token) -> Answer:
        # the standalone form carries a follow-up's topic; the question itself its focus
        quotes = choose_quotes(standalone, passages, self.config.extractive_sentences, self.similarity)
        stream = SafeStream(range(1, len(passages) + 1), self._allowed_urls(passages), on_token)
        stream.feed(extractive_text(quotes, message("extractive_intro", lang)))
        return self._finish(question, standalone, stream, passages, "extractive")

    def _generate(self, question, standalone, lang, passages, on_token) -> Answer:
        cfg = self.llm_config
        shown = fit_passages(passages, standalone, cfg.context_tokens - cfg.max_answer_tokens, cfg.encoding)
        # the standalone question is what the passages were found for; the user's wording sets the language
        asked = standalone if standalone == question or detect_lang(standalone) == lang else question
        stream = SafeStream(range(1, len(shown) + 1), self._allowed_urls(shown), on_token)
        for delta in self.model.stream(answer_messages(asked, shown, lang=lang)):
            stream.feed(delta)
        return self._finish(question, standalone, stream, shown, "llm")
