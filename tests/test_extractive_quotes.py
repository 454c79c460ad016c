"""Extractive answers quote what answers: by meaning as well as words, no filler, no walls of speech."""

from __future__ import annotations

from rag.extractive import MAX_QUOTE_CHARS, choose_quotes, is_filler, split_sentences
from rag.records import Locator, Passage

MEETING = (
    "Marketing: Mm-hmm Project Manager: because if we want to to do remote control User Interface: Mm . "
    "Industrial Designer: A rubber case does not break when you drop it. Marketing: Yeah yeah."
)
SPEECH = (
    "yeah and the reason we wrote it was that the old shipper kept falling behind you know when a service logged "
    "a lot it would buffer everything in memory and then the machine ran out of memory and we lost the logs exactly "
    "when we needed them the most so we started over and wrote a new one that reads from the file on disk and never "
    "buffers more than it can upload in one go"
)


def _passage(text, n=0, speaker=None, space="en"):
    return Passage(text, f"/talks/t{n}.vtt", Locator(speaker=speaker), 0.5, space)


def test_backchannel_and_filler_are_never_sentences():
    sentences = split_sentences(MEETING, ["Marketing", "Project Manager", "User Interface", "Industrial Designer"])
    assert "A rubber case does not break when you drop it." in sentences
    assert not any("Mm" in s or "Yeah yeah" in s for s in sentences)
    assert not any(s.startswith(("Marketing:", "Industrial Designer:")) for s in sentences)
    assert is_filler("Right, right.") and is_filler("Okay, thanks everybody.") and not is_filler("Two double A batteries then.")


def test_long_unpunctuated_speech_is_cut_and_no_bullet_is_a_wall():
    pieces = split_sentences(SPEECH, speech=True)
    assert split_sentences("Not by default.") == ["Not by default."]  # a short answer is not filler
    assert len(pieces) >= 2 and all(len(p) <= MAX_QUOTE_CHARS for p in pieces)
    quotes = choose_quotes("Why did the old shipper lose logs?", [_passage(SPEECH, speaker="Ravi")])
    assert quotes and all(len(q.text) <= MAX_QUOTE_CHARS for q in quotes)
    assert any("ran out of memory" in q.text for q in quotes)


def test_meaning_picks_the_defining_sentence_over_one_that_shares_words():
    define = _passage("Tidewatch is a log shipper written in Rust. It uploads compressed batches to object storage.", 1)
    noise = _passage("Tidewatch came up in episode twelve. People have heard of Tidewatch and Tidewatch is a name.", 2)

    def similarity(question, sentences, space):  # a model that knows what a definition is
        return [0.9 if "log shipper" in s else 0.1 for s in sentences]

    with_meaning = choose_quotes("What is Tidewatch?", [noise, define], count=1, similarity=similarity)
    assert "log shipper" in with_meaning[0].text
    failing = choose_quotes("What is Tidewatch?", [noise, define], count=1, similarity=lambda *a: 1 / 0)
    assert failing  # a broken model falls back to shared words


SPACES_TABLE = """## Embedding spaces

Each space has its own model.

| space | used for | model | dimensions |
|---|---|---|---|
| `en` | English and other non-Japanese text | all-MiniLM-L6-v2 | 384 |
| `ja` | Japanese text | multilingual-e5-small | 384 |
"""


def test_a_table_row_is_quoted_alone_without_the_header():
    sentences = split_sentences(SPACES_TABLE)
    assert "`en` | English and other non-Japanese text | all-MiniLM-L6-v2 | 384" in sentences
    assert not any("used for" in s or "---" in s for s in sentences)
    quotes = choose_quotes("Which model embeds English text?", [_passage(SPACES_TABLE, 1)], count=1)
    assert "all-MiniLM-L6-v2" in quotes[0].text and "multilingual" not in quotes[0].text


def test_an_english_question_is_answered_in_english_before_japanese():
    ja = _passage("ケンジ：ルールは二つです。ragbot の回答はすべて引用付きで、rules は code で確認されます。", 1, space="ja")
    en = _passage("Every claim in an answer is cited to the passage it came from, and the rules are checked in code.", 2)
    quotes = choose_quotes("What are ragbot's two rules?", [ja, en], count=1, similarity=lambda q, s, space: [0.8] * len(s))
    assert quotes[0].text.startswith("Every claim")
    # a Japanese question keeps quoting Japanese
    quotes = choose_quotes("ragbot のルールは何ですか", [ja, en], count=1)
    assert "ルール" in quotes[0].text


def test_a_line_that_only_introduces_a_list_is_not_the_answer():
    text = (
        "To switch the default space to OpenAI embeddings with text-embedding-3-small:\n\n"
        "1. Export your key: `export OPENAI_API_KEY=sk-...` before you switch to OpenAI embeddings.\n"
    )
    quotes = choose_quotes("How do I switch to OpenAI embeddings?", [_passage(text, 1)], count=1)
    assert "OPENAI_API_KEY" in quotes[0].text


FAQ = Passage(
    "### How are transcripts cited?\n\nBy time span and speaker. Consecutive cues are grouped into chunks of at most "
    "90 seconds.\n\nAn SRT file has no speaker field, so its citations carry the time span only.",
    "/docs/faq.md", Locator(heading="FAQ > How are transcripts cited?"), 0.9, "en",
)
TALK = Passage(
    "Mina: Let's talk about transcripts. Kenji: A transcript has no headings, so the citation is a timestamp. "
    "Each chunk is a run of consecutive cues, never longer than 90 seconds. Mina: Why 90 seconds? "
    "Kenji: Short enough that when you jump to the timestamp, the answer is right there. A cue is never split.",
    "/talks/intro.vtt", Locator(start_s=93.0, end_s=150.0, speaker="Mina, Kenji"), 0.8, "en",
)


def test_the_sentence_under_a_matching_heading_answers_it_even_without_shared_words():
    # "By time span and speaker." shares no word with the question; its FAQ heading is the question
    quotes = choose_quotes("How are transcripts cited?", [TALK, FAQ], count=2)
    assert any(q.text == "By time span and speaker." and q.n == 2 for q in quotes)
    assert not any(q.text.startswith("How are") for q in quotes)  # the heading itself is never quoted


def test_the_answer_to_an_interviewers_question_is_quoted():
    # the interviewer's "Why 90 seconds?" is not quoted, but the turn after it answers the user's question
    quotes = choose_quotes("Why are transcript chunks at most 90 seconds long?", [TALK], count=2)
    assert any(q.text.startswith("Short enough") for q in quotes)
    assert not any(q.text.endswith("?") for q in quotes)


def test_a_why_question_prefers_the_sentence_that_gives_the_reason():
    setup = Passage(
        "MiniLM is fast and runs on two CPU cores. MiniLM is poor at Japanese, which is why Japanese has its own space.",
        "/docs/setup.md", Locator(), 0.9, "en",
    )
    routing = Passage(
        "Japanese chunks go into the Japanese space. The Japanese space is its own Chroma collection.",
        "/docs/overview.md", Locator(), 0.95, "en",
    )
    quotes = choose_quotes("Why does Japanese get its own space?", [routing, setup], count=1)
    assert "which is why" in quotes[0].text


def test_unpunctuated_speech_is_cut_at_a_clause_and_keeps_its_phrases_whole():
    speech = (
        "yeah and the reason we wrote it was that the old shipper kept falling behind you know when a service logged "
        "a lot it would buffer everything in memory and then the machine ran out of memory and we lost the logs exactly "
        "when we needed them the most Tidewatch never buffers more than sixty four megabytes."
    )
    pieces = split_sentences(speech, speech=True)
    assert len(pieces) >= 2 and all(15 <= len(p) <= MAX_QUOTE_CHARS for p in pieces)
    assert any("sixty four megabytes" in p for p in pieces)
    assert " ".join(pieces) == speech  # nothing lost at the cuts
