"""Every text a user reads from the answer step, in one place, in English and Japanese.

Front ends (CLI, Slack, Discord) show these as they are; the language follows the question.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "not_found": {
        "en": "The documents do not cover this.",
        "ja": "取り込まれた文書には、この質問への答えが見つかりませんでした。",
    },
    "closest": {
        "en": "The closest sources were:",
        "ja": "近い内容の出典:",
    },
    "extractive_intro": {
        "en": "From the documents (quoted as written, in their own language):",
        "ja": "文書からの引用（原文のまま）:",
    },
    "ungrounded": {
        "en": "Note: this answer cites none of the retrieved passages; check it against the sources.",
        "ja": "注意: この回答は取得した文書を引用していません。出典で確認してください。",
    },
    "llm_unavailable": {
        "en": "The language model is temporarily unavailable ({detail}). Please try again in a moment.",
        "ja": "言語モデルが一時的に利用できません（{detail}）。しばらくしてからもう一度お試しください。",
    },
    "llm_rate_limited": {
        "en": "The language model is busy (rate limited{detail}). Please try again in a moment.",
        "ja": "言語モデルが混み合っています（レート制限{detail}）。しばらくしてからもう一度お試しください。",
    },
    "llm_bad_reply": {
        "en": "The language model sent a reply that could not be used ({detail}). Please try again.",
        "ja": "言語モデルの応答を利用できませんでした（{detail}）。もう一度お試しください。",
    },
    "empty_question": {
        "en": "The question is empty. Ask something, e.g. \"How do I switch to OpenAI embeddings?\"",
        "ja": "質問が空です。",
    },
    "question_too_long": {
        "en": "The question is too long ({length} characters; the limit is {limit}). Shorten it and ask again.",
        "ja": "質問が長すぎます（{length} 文字、上限 {limit} 文字）。短くしてもう一度どうぞ。",
    },
    "sources": {"en": "Sources:", "ja": "出典:"},
}


def text(key: str, lang: str = "en", **values: object) -> str:
    """The message `key` in `lang` (English when the language has no translation)."""
    table = TEXTS[key]
    return table.get(lang, table["en"]).format(**values)
