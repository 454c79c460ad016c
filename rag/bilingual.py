"""A question's terms in the other language, for the keyword channel: Japanese <-> English via JMdict.

Dense search in the multilingual space already lets a Japanese question meet English text,
but it blurs technical terms and names. BM25 over translated terms is exact where it matters:
心筋梗塞 -> "myocardial infarction" matches the English abstract word for word; "Netherlands"
-> オランダ matches the Japanese page. The dictionary is Jim Breen's JMdict (CC BY-SA, the
EDRDG licence) as compiled by the `jamdict-data` package: a SQLite file read directly, no
network. Lookups are indexed (a few ms per term) and cached.

Japanese -> English: Sudachi content words of the question (the longest run of nouns that
is a dictionary headword first: 心筋梗塞 before 心筋 + 梗塞), each replaced by the glosses of
its first two senses. English -> Japanese: each content word (and each two-word phrase)
that is exactly a gloss, replaced by the headwords of the entries it glosses, common
entries first. The translated words go through the same analysis as passages.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sqlite3
import threading
from functools import lru_cache
from pathlib import Path

from rag.keywords import ENGLISH_STOPWORDS, Analyzer
from rag.lang import QUESTION_WORDS_JA

logger = logging.getLogger(__name__)

ENTRIES_PER_TERM = 2  # dictionary entries a term may expand to
GLOSSES_PER_SENSE = 3
SENSES_PER_ENTRY = 2
_PARENS = re.compile(r"\([^)]*\)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_CONTENT_POS = ("名詞", "動詞", "形容詞", "形状詞")


def dictionary_path() -> Path | None:
    """jamdict.db of the installed jamdict-data package, or None."""
    spec = importlib.util.find_spec("jamdict_data")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "jamdict.db"
    return path if path.is_file() else None


class Glossary:
    """Look-ups in JMdict: English glosses of a Japanese word, Japanese headwords of an English word."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.english = lru_cache(maxsize=20000)(self._english)
        self.japanese = lru_cache(maxsize=20000)(self._japanese)

    def _rows(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _english(self, word: str) -> tuple[str, ...]:
        entries = [r[0] for r in self._rows(
            "SELECT idseq FROM Kanji WHERE text = ? UNION SELECT idseq FROM Kana WHERE text = ? LIMIT 20", (word, word)
        )]
        if not entries:
            return ()
        entries = self._common_first(entries)[:ENTRIES_PER_TERM]
        out: list[str] = []
        for idseq in entries:
            senses = [r[0] for r in self._rows("SELECT ID FROM Sense WHERE idseq = ? ORDER BY ID LIMIT ?", (idseq, SENSES_PER_ENTRY))]
            for sid in senses:
                for (gloss,) in self._rows("SELECT text FROM SenseGloss WHERE sid = ? AND lang = 'eng' LIMIT ?", (sid, GLOSSES_PER_SENSE)):
                    out.append(_PARENS.sub(" ", gloss))
        return tuple(out)

    def _japanese(self, phrase: str) -> tuple[str, ...]:
        variants = {phrase, phrase.lower(), phrase.capitalize(), "the " + phrase.lower(), "to " + phrase.lower()}
        marks = ",".join("?" * len(variants))
        entries = [r[0] for r in self._rows(
            f"SELECT DISTINCT s.idseq FROM SenseGloss g JOIN Sense s ON s.ID = g.sid WHERE g.text IN ({marks}) LIMIT 40",
            tuple(variants),
        )]
        if not entries:
            return ()
        out: list[str] = []
        for idseq in self._common_first(entries)[:ENTRIES_PER_TERM]:
            # the first written form: kanji, or kana for a word written without (オランダ); readings add only noise
            form = self._rows("SELECT text FROM Kanji WHERE idseq = ? ORDER BY ID LIMIT 1", (idseq,)) or self._rows(
                "SELECT text FROM Kana WHERE idseq = ? ORDER BY ID LIMIT 1", (idseq,)
            )
            out.extend(r[0] for r in form)
        return tuple(out)

    def _common_first(self, entries: list[int]) -> list[int]:
        """Entries with a priority mark (news1, ichi1, ...) on a form first, then in dictionary order."""
        marks = ",".join("?" * len(entries))
        common = {r[0] for r in self._rows(
            f"SELECT k.idseq FROM Kanji k JOIN KJP p ON p.kid = k.ID WHERE k.idseq IN ({marks}) "
            f"UNION SELECT k.idseq FROM Kana k JOIN KNP p ON p.kid = k.ID WHERE k.idseq IN ({marks})",
            tuple(entries) * 2,
        )}
        return sorted(entries, key=lambda e: (e not in common, e))


_GLOSSARY: Glossary | None = None
_GLOSSARY_LOCK = threading.Lock()
_WARNED = False


def glossary() -> Glossary | None:
    """The shared glossary, or None (with one warning) when jamdict-data is not installed."""
    global _GLOSSARY, _WARNED
    with _GLOSSARY_LOCK:
        if _GLOSSARY is None:
            path = dictionary_path()
            if path is None:
                if not _WARNED:
                    logger.warning(
                        "jamdict-data is not installed: questions are not translated for keyword search "
                        "(pip install jamdict-data==1.5, or set retrieval.keyword.translate: false)"
                    )
                    _WARNED = True
                return None
            _GLOSSARY = Glossary(path)
        return _GLOSSARY


def _japanese_to_english(question: str, analyzer: Analyzer, g: Glossary) -> list[str]:
    words = [w for w in analyzer.content_words(question) if w[1] not in QUESTION_WORDS_JA and w[0] not in QUESTION_WORDS_JA]
    english: list[str] = []
    i = 0
    while i < len(words):
        taken = 1
        glosses: tuple[str, ...] = ()
        for j in range(min(len(words), i + 3), i + 1, -1):  # the longest run of nouns that is a headword
            if all(w[2] for w in words[i:j]):
                glosses = g.english("".join(w[0] for w in words[i:j]))
                if glosses:
                    taken = j - i
                    break
        if not glosses:
            surface, normal, _ = words[i]
            glosses = g.english(normal) or (g.english(surface) if surface != normal else ())
        english.extend(glosses)
        i += taken
    return analyzer.tokens(" ".join(english))


def _english_to_japanese(question: str, analyzer: Analyzer, g: Glossary) -> list[str]:
    words = [w for w in _WORD.findall(question) if w.lower() not in ENGLISH_STOPWORDS and len(w) > 2]
    japanese: list[str] = []
    used: set[int] = set()
    for i in range(len(words) - 1):  # two-word phrases first: "myocardial infarction", "prime minister"
        forms = g.japanese(f"{words[i]} {words[i + 1]}")
        if forms:
            japanese.extend(forms)
            used |= {i, i + 1}
    for i, word in enumerate(words):
        if i not in used:
            japanese.extend(g.japanese(word))
    return [t for form in japanese for t in analyzer.tokens(form)]


def translated_terms(question: str, lang: str, analyzer: Analyzer) -> list[str]:
    """Keyword terms of the question's translation ([] without the dictionary); terms it already has are left out."""
    g = glossary()
    if g is None:
        return []
    try:
        if lang == "ja":
            terms = _japanese_to_english(question, analyzer, g)
        else:
            terms = _english_to_japanese(question, analyzer, g)
    except sqlite3.Error as exc:  # a damaged dictionary must not break search
        logger.warning("dictionary look-up failed (%s); searching without translation", exc)
        return []
    own = set(analyzer.tokens(question))
    seen: dict[str, None] = {}
    for t in terms:
        if t not in own:
            seen.setdefault(t.replace(" ", "_"), None)
    return list(seen)
