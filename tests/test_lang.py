"""One language toolkit: the CJK class, stop words and Sudachi live in rag/lang.py and every
user of them (keywords, extractive answers, follow-ups, map labels) sees text the same way."""

from __future__ import annotations

import threading

from rag import lang
from rag.atlas.topics import KeywordTokenizer
from rag.config import KeywordConfig
from rag.extractive import terms
from rag.keywords import Analyzer

# 々 (iteration mark), half-width katakana and a compatibility ideograph: scripts one copy of
# the class knew and another did not
EDGE = ["人々", "ｶﾀｶﾅ", "\uf900"]


def test_every_user_reads_the_same_characters_as_japanese():
    for text in EDGE:
        assert lang.has_cjk(text), text
        assert lang.detect_lang(text) == "ja"
        # extractive answers match a Japanese word whole (as a bigram or a single character), not dropped
        assert terms(text), text
        assert Analyzer(KeywordConfig(japanese="bigram")).tokens(text), text
    assert "人々" in terms("人々の声")


def test_map_labels_keep_japanese_nouns_with_iteration_marks():
    words = KeywordTokenizer()("人々が再取り込みを実行します。")
    assert "人々" in words and "再取り込み" in words


def test_stop_word_lists_nest_and_filler_never_labels_a_cluster():
    assert lang.ENGLISH_STOPWORDS <= lang.QUESTION_STOPWORDS and lang.ENGLISH_STOPWORDS <= lang.LABEL_STOPWORDS
    words = KeywordTokenizer()("Yeah, you know, it's kind of like the ray cluster, um, sort of, right?")
    assert words == ["ray", "cluster"]


def test_sudachi_dictionary_is_loaded_once_and_tokenizers_are_per_thread():
    first = lang.sudachi("C")[0]
    assert lang.sudachi("C")[0] is first
    other = []
    worker = threading.Thread(target=lambda: other.append(lang.sudachi("C")[0]))
    worker.start()
    worker.join()
    assert other[0] is not first
    assert [m.surface() for m in lang.sudachi_morphemes("再取り込み" * 3000, "C")][:2] == ["再取り込み", "再取り込み"]
