"""Conversation memory (recent turns) and turning a follow-up into a standalone question.

With an LLM the rewrite is the model's job. Without one (extractive mode) a follow-up such
as "and for part-timers?" or "それは誰が実行できますか？" is recognised by its shape and
completed with the key terms of the previous standalone question, which is enough for
retrieval to land on the same topic.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass

from rag.errors import LLMError
from rag.lang import QUESTION_STOPWORDS, detect_lang
from rag.llm import ChatModel, complete
from rag.prompts import rewrite_messages

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")

_OPENER_EN = re.compile(
    r"^\s*(and|or|but|also|what about|how about|same for|then|so|how come|is that|does that|"
    r"can it|can they|do they|does it|is it|are they)\b",
    re.IGNORECASE,
)
_PRONOUN_EN = re.compile(r"\b(it|its|they|them|their|that|this|those|these|he|she|him|her)\b", re.IGNORECASE)
# a follow-up that states a new condition, and where a question's own condition starts
_CONDITIONAL_FOLLOW_UP = re.compile(r"^\s*(?:(?:and|or|but|so)\s+)?(?:(?:what|how)\s+)?(?:if|when|whenever|unless)\b", re.IGNORECASE)
_CONDITION_EN = re.compile(r"\b(?:if|when|whenever|unless|after|before|once)\b", re.IGNORECASE)
_POINTS_BACK_EN = re.compile(r"\b(?:that|it|them|those|this|these)\s*[?.!]?\s*$", re.IGNORECASE)
_FOLLOW_UP_JA = re.compile(r"^\s*(それ|その|そこ|では|じゃあ|なら|あと|また|ちなみに|で、)|(は|って)[？?]\s*$")


@dataclass(frozen=True)
class Turn:
    """One exchange: what was asked, the standalone form retrieval used, and the answer text."""

    question: str
    standalone: str
    answer: str


class Conversation:
    """The recent turns of one CLI session or chat thread."""

    def __init__(self, max_turns: int = 4):
        self.turns: deque[Turn] = deque(maxlen=max(max_turns, 1))

    def add(self, question: str, standalone: str, answer: str) -> None:
        """Remember a finished turn."""
        self.turns.append(Turn(question, standalone, answer))

    def __bool__(self) -> bool:
        return bool(self.turns)


def looks_like_follow_up(question: str, lang: str | None = None) -> bool:
    """Whether a question leans on the previous one (short, starts with 'and', uses 'it', ...)."""
    if (lang or detect_lang(question)) == "ja":
        return bool(_FOLLOW_UP_JA.search(question)) or len(question.strip()) <= 10
    words = _WORD.findall(question.lower())
    # a pronoun alone marks a follow-up only in a short question: long ones usually stand on their own
    return (
        len(words) <= 4
        or bool(_OPENER_EN.search(question))
        or (len(words) <= 7 and bool(_PRONOUN_EN.search(question)))
        or (len(words) <= 12 and bool(_POINTS_BACK_EN.search(question)))  # "... after that?"
    )


def key_terms(question: str) -> str:
    """The content words of a question (Japanese kept whole), for carrying its topic forward."""
    if detect_lang(question) == "ja":
        return re.sub(r"[？?。、]+$", "", question.strip())
    return " ".join(w for w in _WORD.findall(question.lower()) if w not in QUESTION_STOPWORDS)


def carried_terms(previous: str, question: str) -> str:
    """The previous question's key terms that the follow-up leans on.

    A follow-up that brings its own condition ("and if the file is broken?") replaces the
    previous question's condition ("... when I delete a file and re-ingest?"): only the main
    clause ("what happens") carries over, unless the follow-up points back with a pronoun
    ("and if I delete it?"), which needs the condition's nouns too. Carrying the old condition
    made the follow-up retrieve the previous answer again.
    """
    if detect_lang(previous) != "ja" and _CONDITIONAL_FOLLOW_UP.match(question) and not _PRONOUN_EN.search(question):
        condition = _CONDITION_EN.search(previous)
        if condition is not None:
            main = key_terms(previous[: condition.start()])
            if main:
                return main
    return key_terms(previous)


def rewrite_without_llm(conversation: Conversation, question: str, lang: str | None = None) -> str:
    """The follow-up completed with the previous standalone question's key terms."""
    if not conversation or not looks_like_follow_up(question, lang):
        return question
    previous = conversation.turns[-1].standalone
    return f"{question.strip()} ({carried_terms(previous, question)})"


def standalone_question(conversation: Conversation | None, question: str, model: ChatModel | None, lang: str | None = None) -> str:
    """The question as retrieval should see it, given the conversation so far (lang: the question's, if known)."""
    if not conversation:
        return question
    if model is None:
        return rewrite_without_llm(conversation, question, lang)
    history = [(t.question, t.answer) for t in conversation.turns]
    try:
        rewritten = complete(model, rewrite_messages(history, question), max_tokens=120).strip().strip('"')
    except LLMError as exc:  # the answer call will report the outage; retrieval still gets a sensible query
        logger.warning("follow-up rewrite failed (%s); using the heuristic", exc)
        return rewrite_without_llm(conversation, question, lang)
    first_line = rewritten.splitlines()[0].strip() if rewritten else ""
    if not first_line or len(first_line) > 4 * len(question) + 300:
        return rewrite_without_llm(conversation, question, lang)
    return first_line
