"""Every text the bots show in chat (Slack, Discord), in one place, in English and Japanese.

The answer step's own texts (not found, LLM unavailable, ...) live in rag/messages.py; these
are the ones the bot adds around answers: limits, admin commands, feedback, Slack buttons.
"""

from __future__ import annotations

import re

TEXTS: dict[str, dict[str, str]] = {
    "thinking": {"en": "Looking through the documents…", "ja": "文書を調べています…"},
    "status_searching": {"en": "is searching the documents…", "ja": "が文書を検索しています…"},
    "status_writing": {"en": "is writing…", "ja": "が回答を書いています…"},
    "loading_searching": {"en": "Searching the documents…", "ja": "文書を検索しています…"},
    "loading_reading": {"en": "Reading the best passages…", "ja": "関連箇所を読んでいます…"},
    "loading_writing": {"en": "Writing…", "ja": "回答を書いています…"},
    "prompts_title": {"en": "Try asking", "ja": "質問の例"},
    "prompt_default_1": {"en": "What can you answer questions about?", "ja": "どんな質問に答えられますか？"},
    "prompt_default_2": {"en": "How do I re-ingest the documents?", "ja": "文書を再取り込みするには？"},
    "prompt_default_3": {"en": "Summarise the latest meeting transcript", "ja": "最新の会議の文字起こしを要約して"},
    "busy": {
        "en": "I'm answering a lot of questions right now. Please try again in a minute.",
        "ja": "ただいま多くの質問に回答中です。少ししてからもう一度お試しください。",
    },
    "rate_limited": {
        "en": "You've asked {limit} questions in the last {window} seconds. Please wait {wait} s and ask again.",
        "ja": "直近 {window} 秒で {limit} 件の質問がありました。{wait} 秒ほど待ってからもう一度どうぞ。",
    },
    "error": {
        "en": "Sorry, something went wrong while answering. The error was logged; please try again.",
        "ja": "申し訳ありません。回答中にエラーが発生しました（ログに記録済み）。もう一度お試しください。",
    },
    "followup_expired": {
        "en": "Your /ask answer took longer than Discord keeps the reply open (15 min), so here it is:",
        "ja": "/ask の回答が Discord の応答期限（15 分）を過ぎたため、こちらに送ります:",
    },
    "post_failed": {
        "en": "Slack is rate limiting me, so part of the answer could not be posted. Please ask again in a minute.",
        "ja": "Slack のレート制限により回答の一部を投稿できませんでした。少ししてからもう一度どうぞ。",
    },
    "sources": {"en": "Sources", "ja": "出典"},
    "helpful": {"en": "Helpful", "ja": "役に立った"},
    "not_helpful": {"en": "Not helpful", "ja": "役に立たなかった"},
    "feedback_thanks": {"en": "Thanks for the feedback!", "ja": "フィードバックありがとうございます！"},
    "feedback_unknown": {
        "en": "That answer is too old to rate (the bot restarted since).",
        "ja": "この回答は古いため評価できません（ボットが再起動しました）。",
    },
    "share": {"en": "Share in channel", "ja": "チャンネルに共有"},
    "shared_by": {"en": "<@{user}> asked: {question}", "ja": "<@{user}> さんの質問: {question}"},
    "shared": {"en": "Shared in the channel.", "ja": "チャンネルに共有しました。"},
    "mention_usage": {"en": "Mention me with a question, e.g. `@ragbot how do I re-ingest?`", "ja": "質問と一緒にメンションしてください（例: `@ragbot 再取り込みの方法は？`）"},
    "ask_usage": {"en": "Usage: `/ask QUESTION`", "ja": "使い方: `/ask 質問`"},
    "admin_only": {
        "en": "Only ragbot admins can run {command}. Ask an admin (listed in `slack.admins` or `discord.admins` / `discord.admin_roles` of config.yaml).",
        "ja": "{command} は ragbot の管理者だけが実行できます（config.yaml の `slack.admins` または `discord.admins` / `discord.admin_roles`）。",
    },
    "ingest_started": {
        "en": "Re-ingest of {paths} started. I'll post the summary here when it is done.",
        "ja": "{paths} の再取り込みを開始しました。完了したらここに結果を投稿します。",
    },
    "ingest_running": {
        "en": "A re-ingest is already running (started by <@{user}> {seconds} s ago). Wait for its summary, then try again.",
        "ja": "再取り込みはすでに実行中です（<@{user}> さんが {seconds} 秒前に開始）。結果の投稿を待ってから再度どうぞ。",
    },
    "ingest_no_roots": {
        "en": "Chat commands can only re-ingest inside the folders listed in `bot.ingest_paths` of config.yaml, and that list is empty. "
        "Ask the host's operator to add the folder there, or to run `ragbot ingest PATH` on the host.",
        "ja": "チャットからの再取り込みは config.yaml の `bot.ingest_paths` に列挙されたフォルダ内に限られますが、この一覧は空です。"
        "ホストの管理者にフォルダの追加、またはホスト上での `ragbot ingest PATH` の実行を依頼してください。",
    },
    "ingest_outside_roots": {
        "en": "Refused: `{path}` resolves to {resolved}, which is outside the folders chat commands may re-ingest "
        "(`bot.ingest_paths`: {roots}). Name a path inside them, or ask the host's operator to run `ragbot ingest PATH`.",
        "ja": "拒否しました: `{path}` は {resolved} を指しており、チャットから再取り込みできるフォルダ（`bot.ingest_paths`: {roots}）の外です。"
        "その中のパスを指定するか、ホストの管理者に `ragbot ingest PATH` の実行を依頼してください。",
    },
    "ingest_done": {
        "en": "Re-ingest of {paths} finished in {seconds:.1f} s: {added} added, {updated} updated, "
        "{unchanged} unchanged, {deleted} deleted, {failed} failed.",
        "ja": "{paths} の再取り込みが {seconds:.1f} 秒で完了: 追加 {added}、更新 {updated}、変更なし {unchanged}、"
        "削除 {deleted}、失敗 {failed}。",
    },
    "ingest_failed_line": {"en": "• {source}: {reason}", "ja": "• {source}: {reason}"},
    "ingest_error": {
        "en": "Re-ingest of {paths} could not run: {error}",
        "ja": "{paths} の再取り込みを実行できませんでした: {error}",
    },
    "status": {
        "en": "Indexed: {sources} source(s), {chunks} chunk(s). Answers: {mode}. This channel searches: {sets}.",
        "ja": "索引済み: {sources} 件のソース、{chunks} 件のチャンク。回答方式: {mode}。このチャンネルの検索対象: {sets}。",
    },
    "status_space": {"en": "• {space}: {chunks} chunks ({model})", "ja": "• {space}: {chunks} チャンク（{model}）"},
    "status_ingesting_by": {
        "en": "A re-ingest started by <@{user}> is running ({seconds} s so far; {progress}).",
        "ja": "<@{user}> さんが開始した再取り込みを実行中です（{seconds} 秒経過、{progress}）。",
    },
}


def text(key: str, lang: str = "en", **values: object) -> str:
    """The message `key` in `lang` (English when the language has no translation)."""
    table = TEXTS[key]
    return table.get(lang, table["en"]).format(**values)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """A file name or reason as one visible line: control characters (newlines, terminal escapes, bidi overrides) as escapes.

    A file named "x\\n handbook.md: OK" must not forge a line of an ingest report.
    """
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(value))
