"""The language toolkit: script detection, the CJK character class, the Sudachi set-up and the
English stop-word lists. One home for each; keywords, extractive answers, follow-ups and map
labels import them from here."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

# -- character classes ---------------------------------------------------------------------
# kana: hiragana, katakana (with ー), katakana phonetic extensions, half-width katakana
KANA_CHARS = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
# kanji: 々 and 〆, CJK extension A, unified ideographs, compatibility ideographs
HAN_CHARS = "\u3005\u3006\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHARS = KANA_CHARS + HAN_CHARS  # Japanese script, for use inside [...] of a pattern
CJK = re.compile(f"[{CJK_CHARS}]")
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
HAN_RUN = re.compile(f"[{HAN_CHARS}]+")

_KANA = re.compile(f"[{KANA_CHARS}]")
_HAN = re.compile(f"[{HAN_CHARS}]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_LETTER = re.compile(r"[^\W\d_]")


def has_cjk(text: str) -> bool:
    """Whether text holds any Japanese script."""
    return CJK.search(text) is not None


def detect_lang(text: str) -> str:
    """'ja' when kana and kanji make up a fifth of the letters, 'ko' for Hangul, else 'en'.

    'en' stands for every other (mostly Latin-script) language: the routing table sends them
    to the default space. Kanji alone counts as Japanese, since Chinese is rare in our inputs
    and a kanji-only heading (概要) in a Japanese page must stay with its page.
    """
    sample = text[:4000]
    letters = len(_LETTER.findall(sample))
    if not letters:
        return "en"
    cjk = len(_KANA.findall(sample)) + len(_HAN.findall(sample))
    if cjk / letters >= 0.2:
        return "ja"
    if len(_HANGUL.findall(sample)) / letters >= 0.2:
        return "ko"
    return "en"


# Words of a Japanese question that ask rather than say what it is about (Sudachi normalised
# forms): they do not count as the question's terms when a passage's keyword evidence is weighed.
QUESTION_WORDS_JA = frozenset(
    """何 なに なん どの どれ どこ 何処 誰 だれ いつ 何時 どう どうして なぜ 何故 どんな どのよう どの様 いくつ 幾つ いくら 幾ら
    ある 有る 在る する 為る いる 居る なる 成る できる 出来る こと 事 もの 物 ため 為 よう 様 れる られる 場合 について 方法 教える
    ください 下さい 知る 思う 言う""".split()
)


# -- English stop words --------------------------------------------------------------------
# the stop words of bm25s / scikit-learn's short English list: frequent words that only add
# noise to BM25 (the keyword index's analysis signature depends on this list: keep it stable)
ENGLISH_STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then there these
    they this to was will with i me my we our you your he him his she her its them what which who whom
    those am been being have has had having do does did doing would should could can may might must shall
    from up down out off over under again further once here when where why how all any both each few more
    most other some nor only own same so than too very s t just don now about against between through during
    before after above below were because until while whose itself myself yourself himself herself ourselves
    themselves ours yours hers theirs""".split()
)

# words a question is asked with but that name no topic: extractive matching and follow-ups drop them
QUESTION_STOPWORDS = ENGLISH_STOPWORDS | frozenset(
    """yes done gets got get also much many can't don't doesn't isn't aren't it's please tell know want need
    use used using ragbot""".split()
)

# speech that fills time without content (transcripts): never a topic label, never worth quoting
SPOKEN_FILLER = frozenset(
    """um umm uh uhm hmm mm mmm mm-hmm uh-huh huh ah oh okay ok yeah yep yup yes no right well like really
    actually basically literally sort kind gonna wanna gotta kinda sorta it's i'm you're we're they're that's
    there's what's i've you've we've they've i'd you'd we'd i'll you'll we'll don't doesn't didn't can't won't
    isn't aren't wasn't know mean think guess thing things stuff lot lots bit pretty just sure yeah-yeah
    say said says going go goes went get got getting make makes made let let's maybe probably thanks thank
    everybody hello hi bye""".split()
)

# generic words that make poor topic labels, on top of the stop words and the filler
LABEL_STOPWORDS = ENGLISH_STOPWORDS | SPOKEN_FILLER | frozenset(
    """also use used using would could can one two three get got http https www com new way ways time times
    want need people something anything everything nothing someone anyone everyone good great much many
    even still back first last next see look looking come came take took put give gave work works however
    therefore thus though although across along among within without via etc per yet already always never
    often usually ever every another else otherwise whether either neither since upon onto""".split()
)


# -- Sudachi -------------------------------------------------------------------------------
SUDACHI_MAX_CHARS = 8000  # Sudachi refuses inputs over ~49 KB (8,000 characters are at most 32 KB)
_DICTIONARY = None
_DICTIONARY_LOCK = threading.Lock()
_PER_THREAD = threading.local()  # a Sudachi tokenizer must not be shared between threads


def sudachi(mode: str = "B"):
    """(tokenizer, split mode) over the sudachidict-core dictionary: loaded once, a tokenizer per thread."""
    global _DICTIONARY
    cache = getattr(_PER_THREAD, "tokenizers", None)
    if cache is None:
        cache = _PER_THREAD.tokenizers = {}
    if mode not in cache:
        from sudachipy import Dictionary, SplitMode

        with _DICTIONARY_LOCK:
            if _DICTIONARY is None:
                _DICTIONARY = Dictionary(dict="core")
        split = {"A": SplitMode.A, "B": SplitMode.B, "C": SplitMode.C}[mode]
        cache[mode] = (_DICTIONARY.create(), split)
    return cache[mode]


def sudachi_morphemes(text: str, mode: str = "B") -> Iterator:
    """Sudachi's morphemes of text, cut into pieces Sudachi accepts."""
    tokenizer, split = sudachi(mode)
    for start in range(0, len(text), SUDACHI_MAX_CHARS):
        yield from tokenizer.tokenize(text[start : start + SUDACHI_MAX_CHARS], split)
