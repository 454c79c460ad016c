"""Topic labels for clusters: their distinctive keywords by class-based TF-IDF (c-TF-IDF).

Words come from a tokenizer that handles English (words minus stop words) and Japanese
(Sudachi nouns), so a Japanese cluster is labelled with Japanese words, not with characters.
An LLM, when one is at hand, may turn the keywords and a few excerpts into a short title.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.lang import CJK, HAN_RUN, LABEL_STOPWORDS, sudachi_morphemes

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]", re.UNICODE)
# Japanese parts of speech that carry no topic
_JA_SKIP_SUBPOS = {"数詞", "代名詞", "非自立可能", "助数詞可能"}


@dataclass(frozen=True)
class Topic:
    """A cluster's label, its keywords and where its centre sits on the map."""

    cluster: int
    label: str
    keywords: tuple[str, ...]
    size: int
    x: float
    y: float


class KeywordTokenizer:
    """Content words of English and Japanese text, lower-cased, stop words and particles dropped."""

    def __init__(self, min_length: int = 2):
        self._stop = LABEL_STOPWORDS
        self._min = min_length

    def _latin(self, text: str) -> list[str]:
        words = (w.lower().strip("'-") for w in _WORD.findall(text.replace("\u2019", "'")))  # it’s -> it's
        return [w for w in words if len(w) >= self._min and w not in self._stop]

    def __call__(self, text: str) -> list[str]:
        """The keywords of text in reading order."""
        if not CJK.search(text):
            return self._latin(text)
        out: list[str] = []
        for m in sudachi_morphemes(text, "C"):  # long units: 再取り込み, not 再 + 取り込み
            surface = m.surface()
            if not CJK.search(surface):
                out.extend(self._latin(surface))
                continue
            pos = m.part_of_speech()
            if pos[0] == "名詞" and pos[1] not in _JA_SKIP_SUBPOS and not (set(pos[1:3]) & _JA_SKIP_SUBPOS):
                if len(surface) >= 2 or HAN_RUN.fullmatch(surface):
                    out.append(surface)
        return out


def ctfidf_keywords(
    texts: Sequence[str], clusters: np.ndarray, tokenize: Callable[[str], list[str]], top: int = 3
) -> dict[int, list[str]]:
    """Per cluster, the words most frequent in it and rare elsewhere (BERTopic's c-TF-IDF).

    weight(t, c) = tf(t, c) / |c| * log(1 + A / f(t)), where A is the mean word count of a
    cluster and f(t) the count of t over all clusters.
    """
    per_cluster: dict[int, Counter] = {}
    for text, cluster in zip(texts, clusters):
        if cluster < 0:
            continue
        per_cluster.setdefault(int(cluster), Counter()).update(tokenize(text))
    if not per_cluster:
        return {}
    total: Counter = Counter()
    for counts in per_cluster.values():
        total.update(counts)
    mean_words = sum(total.values()) / len(per_cluster)
    out: dict[int, list[str]] = {}
    for cluster, counts in per_cluster.items():
        size = sum(counts.values()) or 1
        scored = sorted(
            ((c / size * math.log(1 + mean_words / total[t]), t) for t, c in counts.items() if c > 1 or len(counts) < 20),
            key=lambda pair: (-pair[0], pair[1]),
        )
        words: list[str] = []
        for _, word in scored:
            # skip near-duplicates such as "account" after "accounts"
            if any(word.startswith(w) or w.startswith(word) for w in words):
                continue
            words.append(word)
            if len(words) == top:
                break
        out[cluster] = words
    return out


def label_clusters(
    texts: Sequence[str],
    clusters: np.ndarray,
    xy: np.ndarray,
    tokenize: Callable[[str], list[str]] | None = None,
    words: int = 3,
    namer: Callable[[list[str], list[str]], str | None] | None = None,
) -> list[Topic]:
    """A Topic per cluster, largest first: keyword labels, or the namer's title when it gives one."""
    tokenize = tokenize or KeywordTokenizer()
    keywords = ctfidf_keywords(texts, clusters, tokenize, top=words)
    topics = []
    for cluster in sorted(keywords, key=lambda c: (-(clusters == c).sum(), c)):
        members = np.flatnonzero(clusters == cluster)
        centre = np.median(xy[members], axis=0)
        kws = keywords[cluster]
        label = " · ".join(kws) or f"cluster {cluster}"
        if namer is not None:
            sample = [texts[i] for i in members[:: max(1, len(members) // 5)][:5]]
            try:
                named = namer(kws, sample)
            except Exception as exc:  # a label is decoration: never fail the map for it
                logger.warning("LLM labelling of cluster %d failed (%s); keeping keywords", cluster, exc)
                named = None
            if named:
                label = named
        topics.append(Topic(int(cluster), label, tuple(kws), len(members), float(centre[0]), float(centre[1])))
    return topics


def llm_namer(chat_model) -> Callable[[list[str], list[str]], str | None]:
    """Names clusters with a chat model: ragbot's rag.llm ChatModel, or a langchain one (`.invoke(str)`)."""

    def name(keywords: list[str], excerpts: list[str]) -> str | None:
        prompt = (
            "Give a short title (2 to 5 words) for the topic shared by these passages. "
            "Answer with the title only, in the passages' language.\n"
            f"Keywords: {', '.join(keywords)}\n"
            + "\n".join(f"- {' '.join(e.split())[:300]}" for e in excerpts)
        )
        if hasattr(chat_model, "stream") and not hasattr(chat_model, "invoke"):
            from rag.llm import complete  # ragbot's own ChatModel (rag.llm)

            text = complete(chat_model, [("user", prompt)], max_tokens=24)
        else:  # a langchain chat model
            reply = chat_model.invoke(prompt)
            text = getattr(reply, "content", reply)
        lines = str(text).strip().splitlines()
        title = lines[0].strip().strip("\"'“”「」").strip() if lines else ""
        return title[:60] or None

    return name
