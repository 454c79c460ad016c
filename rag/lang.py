"""Language detection by script, enough to route a chunk to an embedding space."""

from __future__ import annotations

import re

_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_LETTER = re.compile(r"[^\W\d_]")


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
