"""Loaders: what a user sees of each file type (sections, locators, titles, warnings, refusal reasons)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

import ingest.loaders as loaders
from ingest.config import IngestConfig, TableConfig
from ingest.errors import EmptySourceError, LoadError
from ingest.loaders import (
    SUPPORTED_SUFFIXES,
    load_csv,
    load_file,
    load_html,
    load_json_transcript,
    load_jsonl,
    load_markdown,
    load_pdf,
    load_srt,
    load_text,
    load_vtt,
)
from ingest.loaders.transcripts import NOT_A_TRANSCRIPT, parse_timestamp
from ingest.records import LoadResult
from rag.records import Locator

SRC = "/data/docs/guide.md"


def headings(result: LoadResult) -> list[str | None]:
    return [s.locator.heading for s in result.documents[0].sections]


def texts(result: LoadResult) -> list[str]:
    return [s.text for s in result.documents[0].sections]


def spans(result: LoadResult) -> list[tuple[float | None, float | None, str | None, str]]:
    return [(s.locator.start_s, s.locator.end_s, s.locator.speaker, s.text) for s in result.documents[0].sections]


def make_pdf(pages: list[str | None], title: str | None = None) -> bytes:
    """A PDF with one page per entry; None makes a page with no text at all."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def encrypt(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password="owner-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --------------------------------------------------------------------------- Markdown and text


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        pytest.param(
            "# Install\nsteps\n## From PyPI\npip install ragbot\n## From source\ngit clone\n# Usage\nrun it",
            ["Install", "Install > From PyPI", "Install > From source", "Usage"],
            id="atx-nesting",
        ),
        pytest.param("Intro before any heading.\n# Setup\nbody", [None, "Setup"], id="preamble-has-no-heading"),
        pytest.param(
            "Install\n=======\nsteps\n\nFrom PyPI\n---------\npip install ragbot",
            ["Install", "Install > From PyPI"],
            id="setext",
        ),
        pytest.param(
            "# Install\n```bash\n# not a heading\npip install x\n```\n~~~\n## nor this\n~~~\nafter",
            ["Install"],
            id="fenced-code-hashes-ignored",
        ),
        pytest.param(
            "# A\n````md\n```\n# still code\n```\n````\n## B\nb text",
            ["A", "A > B"],
            id="longer-fence-closes-only-itself",
        ),
        pytest.param("# Top\nx\n### Deep\ny\n## Mid\nz", ["Top", "Top > Deep", "Top > Mid"], id="skipped-level"),
        pytest.param(
            "# Guide #\nx\n## `pip` and **[PyPI](https://pypi.org)** ##\ny",
            ["Guide", "Guide > pip and PyPI"],
            id="markup-and-closing-hashes-removed",
        ),
        pytest.param("#hashtag is not a heading\n# Real\nx", [None, "Real"], id="hash-without-space"),
        pytest.param("## Press <kbd>Ctrl</kbd> in Vec<T>\nx", ["Press Ctrl in Vec<T>"], id="inline-html-only-removed"),
        pytest.param("para\n\n---\n\nafter the rule", [None], id="rule-after-blank-is-no-heading"),
        pytest.param("- item one\n---\nafter", [None], id="rule-after-list-is-no-heading"),
        pytest.param("# Empty\n\n   \n# Full\ntext", ["Full"], id="heading-only-section-dropped"),
    ],
)
def test_markdown_heading_paths(markdown: str, expected: list[str | None]) -> None:
    assert headings(load_markdown(markdown, SRC)) == expected


def test_markdown_sections_keep_their_heading_line_and_code() -> None:
    result = load_markdown("# Install\n```bash\n# comment\npip install x\n```\n## From PyPI\npip install ragbot\n", SRC)
    assert texts(result) == ["# Install\n```bash\n# comment\npip install x\n```", "## From PyPI\npip install ragbot"]


def test_markdown_setext_section_keeps_the_title_but_not_the_underline() -> None:
    result = load_markdown("Multi line\ntitle\n=====\nbody", SRC)
    assert texts(result) == ["Multi line\ntitle\nbody"]
    assert headings(result) == ["Multi line title"]


@pytest.mark.parametrize(
    ("markdown", "title"),
    [
        ("---\ntitle: Team Handbook\ntags: [a]\n---\n# Welcome\nhi", "Team Handbook"),
        ("# Welcome\nhi\n# Second\nho", "Welcome"),
        ("Welcome\n=======\nhi", "Welcome"),
        ("## Only a subsection\nhi", "guide"),
        ("---\ntags: [a]\n---\nno title anywhere", "guide"),
    ],
)
def test_markdown_title(markdown: str, title: str) -> None:
    assert load_markdown(markdown, SRC).documents[0].title == title


def test_front_matter_is_not_part_of_the_text() -> None:
    result = load_markdown("---\ntitle: Handbook\nauthor: Ann\n---\nIntro.\n# Rules\nBe kind.", SRC)
    assert texts(result) == ["Intro.", "# Rules\nBe kind."]
    assert headings(result) == [None, "Rules"]


def test_broken_front_matter_is_dropped_with_a_warning() -> None:
    result = load_markdown("---\ntitle: [unclosed\n---\nBody text.", SRC)
    assert texts(result) == ["Body text."]
    assert result.warnings == ("front matter is not valid YAML; ignored",)


def test_markdown_with_only_headings_is_empty() -> None:
    with pytest.raises(EmptySourceError, match="no text"):
        load_markdown("---\ntitle: x\n---\n# A\n## B\n", SRC)


def test_markdown_document_fields() -> None:
    doc = load_markdown("# A\nx", SRC).documents[0]
    assert (doc.kind, doc.source, doc.url) == ("markdown", SRC, None)


def test_plain_text_is_one_section_titled_by_the_file_name() -> None:
    result = load_text("\n  First line.\n\nSecond paragraph.\n\n", "/data/notes/meeting-2024.txt")
    doc = result.documents[0]
    assert (doc.kind, doc.title) == ("text", "meeting-2024")
    assert texts(result) == ["First line.\n\nSecond paragraph."]
    assert doc.sections[0].locator == Locator(line=2)  # its first line: chunks get their line ranges


# --------------------------------------------------------------------------- HTML

PAGE = """<!DOCTYPE html>
<html><head>
  <title>  Office   Guide </title>
  <link rel="canonical" href="https://intra.example.com/guide">
  <style>body { color: red }</style>
  <script>var secret = "do not index";</script>
</head>
<body>
  <nav>Home</nav>
  <noscript>Enable JavaScript</noscript>
  <h1>Rooms</h1>
  <p>Book a room<br>one day ahead.</p><p>Cancel early.</p>
  <h2>Large rooms</h2>
  <ul><li>Fuji</li><li>Aso</li></ul>
  <table><tr><td>Seats</td><td>20</td></tr></table>
  <template><p>template text</p></template>
  <svg><title>icon</title><text>svg text</text></svg>
  <!-- a comment -->
  <h1>Parking</h1>
  <div>Ask <b>reception</b>.</div>
  <script>console.log("late script")</script>
</body></html>"""


def test_html_sections_follow_headings_and_drop_scripts_and_styles() -> None:
    result = load_html(PAGE, "/data/guide.html")
    doc = result.documents[0]
    assert doc.kind == "html"
    assert headings(result) == [None, "Rooms", "Rooms > Large rooms", "Parking"]
    assert texts(result) == [
        "Home",
        "Rooms\nBook a room\none day ahead.\nCancel early.",
        "Large rooms\nFuji\nAso\nSeats 20",
        "Parking\nAsk reception.",
    ]
    everything = "\n".join(texts(result))
    hidden = ["do not index", "color: red", "late script", "Enable JavaScript", "template text", "svg text", "icon"]
    assert [text for text in hidden if text in everything] == []


def test_html_title_and_canonical_url() -> None:
    doc = load_html(PAGE, "/data/guide.html").documents[0]
    assert doc.title == "Office Guide"
    assert doc.url == "https://intra.example.com/guide"


@pytest.mark.parametrize(
    ("page", "title", "url"),
    [
        ("<h1>First <em>heading</em></h1><p>x</p>", "First heading", None),
        ("<p>no headings at all</p>", "faq", None),
        ('<meta property="og:url" content="https://example.com/faq"><p>x</p>', "faq", "https://example.com/faq"),
        ('<link rel="canonical" href="/relative/faq"><p>x</p>', "faq", None),
    ],
)
def test_html_title_and_url_fallbacks(page: str, title: str, url: str | None) -> None:
    doc = load_html(page, "/data/faq.htm").documents[0]
    assert (doc.title, doc.url) == (title, url)


def test_html_blocks_do_not_glue_words_and_pre_keeps_layout() -> None:
    result = load_html(
        "<div>alpha</div><div>beta</div><span>gamma</span> <span>delta</span><pre>line 1\n    indented</pre>",
        "/d/a.html",
    )
    assert texts(result) == ["alpha\nbeta\ngamma delta\nline 1\n    indented"]


def test_html_with_only_script_is_empty() -> None:
    with pytest.raises(EmptySourceError):
        load_html("<html><head><title>t</title></head><body><script>x()</script></body></html>", "/d/a.html")


# --------------------------------------------------------------------------- PDF


def test_pdf_has_one_section_per_page_with_page_numbers() -> None:
    result = load_pdf(make_pdf(["Welcome to the handbook.", "Parking is behind the building."], "Handbook"), "/d/h.pdf")
    doc = result.documents[0]
    assert (doc.kind, doc.title) == ("pdf", "Handbook")
    assert [(s.locator.page, s.text) for s in doc.sections] == [
        (1, "Welcome to the handbook."),
        (2, "Parking is behind the building."),
    ]
    assert result.warnings == ()


def test_pdf_empty_page_is_skipped_with_a_warning() -> None:
    result = load_pdf(make_pdf(["Page one.", None, "Page three."]), "/d/report.pdf")
    assert [s.locator.page for s in result.documents[0].sections] == [1, 3]
    assert result.warnings == ("page 2: no text layer (scanned? run OCR first), skipped",)
    assert result.documents[0].title == "report"


def test_pdf_encrypted_with_an_empty_password_opens() -> None:
    result = load_pdf(encrypt(make_pdf(["Open to all."]), user_password=""), "/d/a.pdf")
    assert texts(result) == ["Open to all."]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(encrypt(make_pdf(["Secret."]), user_password="pw"), "encrypted PDF", id="encrypted"),
        pytest.param(make_pdf([None, None]), "PDF has no text layer (scanned? run OCR first)", id="no-text-layer"),
        pytest.param(make_pdf(["Cut short."])[:300], "broken PDF", id="truncated"),
        pytest.param(b"%PDF-1.7\n" + bytes(range(256)) * 4, "broken PDF", id="garbage-after-header"),
        pytest.param(b"this is not a pdf at all", "broken PDF", id="not-a-pdf"),
    ],
)
def test_unreadable_pdfs_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        load_pdf(data, "/d/a.pdf")
    assert str(info.value).startswith(reason)


# --------------------------------------------------------------------------- CSV and JSONL

FAQ_CSV = (
    "id,title,content,url,team,views,notes\n"
    "q1,Booking rooms,Book a room one day ahead.,https://wiki/q1,facilities,12,\n"
    "q2,Parking,Ask reception for a pass.,,security,3,see desk\n"
)


def test_csv_rows_become_documents_with_title_first() -> None:
    result = load_csv(FAQ_CSV, "/d/faq.csv")
    first, second = result.documents
    assert (first.kind, first.title, first.url) == ("table", "Booking rooms", "https://wiki/q1")
    assert first.sections[0].text == "Booking rooms\nBook a room one day ahead."
    assert first.sections[0].locator == Locator(row=1)
    assert first.metadata == {"row_id": "q1", "team": "facilities", "views": "12"}  # empty 'notes' left out
    assert second.url is None
    assert second.sections[0].locator.row == 2
    assert second.metadata == {"row_id": "q2", "team": "security", "views": "3", "notes": "see desk"}


@pytest.mark.parametrize(
    ("table", "text", "metadata"),
    [
        pytest.param(
            TableConfig(text_fields=["content", "notes"]),
            "Parking\nAsk reception for a pass.\nsee desk",
            {"row_id": "q2", "team": "security", "views": "3"},
            id="configured-text-fields-joined",
        ),
        pytest.param(
            TableConfig(metadata_fields=[]), "Parking\nAsk reception for a pass.", {"row_id": "q2"}, id="no-metadata"
        ),
        pytest.param(
            TableConfig(metadata_fields=["team"]),
            "Parking\nAsk reception for a pass.",
            {"row_id": "q2", "team": "security"},
            id="chosen-metadata",
        ),
        pytest.param(
            TableConfig(title_field="team", id_field="views", text_fields=["content"]),
            "security\nAsk reception for a pass.",
            {"row_id": "3", "id": "q2", "notes": "see desk"},  # the 'title' column's name is reserved
            id="configured-title-and-id",
        ),
    ],
)
def test_csv_column_choice_follows_the_table_config(table: TableConfig, text: str, metadata: dict) -> None:
    doc = load_csv(FAQ_CSV, "/d/faq.csv", table).documents[1]
    assert doc.sections[0].text == text
    assert doc.metadata == metadata


@pytest.mark.parametrize("setting", ["text_fields", "title_field", "id_field", "url_field", "metadata_fields"])
def test_csv_missing_configured_column_is_named_with_the_available_ones(setting: str) -> None:
    value = ["answer_text"] if setting.endswith("fields") else "answer_text"
    with pytest.raises(LoadError) as info:
        load_csv(FAQ_CSV, "/d/faq.csv", TableConfig(**{setting: value}))
    message = str(info.value)
    assert "'answer_text'" in message and setting in message
    assert "available columns: id, title, content, url, team, views, notes" in message


@pytest.mark.parametrize(
    ("csv_text", "text"),
    [
        pytest.param(
            "Question;Answer;Lang\nWhere?;Behind the building, past the gate.;en\n",
            "Behind the building, past the gate.",
            id="semicolon-answer-case-insensitive",
        ),
        pytest.param(
            "name\tsummary\tcode\nx\tA much longer summary of the row.\tA1\n",
            "A much longer summary of the row.",
            id="tab-longest-column",
        ),
        pytest.param('a|"b|c"|Body\n1|2|Pipes are fine here.\n', "Pipes are fine here.", id="pipe-quoted-header"),
        pytest.param("TEXT,Abstract\nthe text,the abstract\n", "the text", id="first-preferred-name-wins"),
    ],
)
def test_csv_delimiter_and_automatic_text_column(csv_text: str, text: str) -> None:
    assert load_csv(csv_text, "/d/t.csv").documents[0].sections[0].text == text


def test_csv_rows_with_empty_text_are_counted_in_one_warning() -> None:
    result = load_csv("title,text\nA,alpha\nB,\nC,  \nD,delta\n", "/d/t.csv")
    assert [d.sections[0].locator.row for d in result.documents] == [1, 4]
    assert result.warnings == ("2 rows with empty text skipped (rows 2-3)",)


def test_csv_reserved_column_names_never_overwrite_ragbot_keys() -> None:
    result = load_csv("text,source,kind,lang,owner\nhello,manual,memo,fr,ann\n", "/d/t.csv")
    doc = result.documents[0]
    assert doc.metadata == {"owner": "ann"}
    assert doc.source == "/d/t.csv" and doc.kind == "table"
    assert result.warnings == ("column(s) source, kind, lang not kept as metadata: the name is used by ragbot itself",)


@pytest.mark.parametrize(
    ("csv_text", "error", "reason"),
    [
        ("id,count\n1,2\n", LoadError, "no text column found"),
        ("title,text\n", EmptySourceError, "no data rows"),
        ("title,text\nA,\n", EmptySourceError, "no row has text"),
    ],
)
def test_csv_without_usable_text_is_refused(csv_text: str, error: type, reason: str) -> None:
    with pytest.raises(error, match=reason):
        load_csv(csv_text, "/d/t.csv")


def test_jsonl_rows_keep_scalars_skip_nested_values_and_report_bad_lines() -> None:
    lines = [
        json.dumps(
            {
                "_id": 7,
                "title": "Rooms",
                "body": "Book ahead.",
                "score": 0.5,
                "ok": True,
                "tags": ["a"],
                "extra": {"x": 1},
                "missing": None,
            }
        ),
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"_id": 8, "body": "Second row.", "url": "https://wiki/8"}),
    ]
    result = load_jsonl("\n".join(lines), "/d/kb.jsonl")
    first, second = result.documents
    assert first.sections[0].text == "Rooms\nBook ahead."
    assert first.sections[0].locator.row == 1
    assert first.metadata == {"row_id": "7", "score": 0.5, "ok": True}
    assert (second.title, second.url, second.sections[0].locator.row) == ("kb", "https://wiki/8", 5)
    assert result.warnings == ("line 3: invalid JSON", "line 4: not a JSON object")


def test_jsonl_configured_text_fields_may_hold_lists() -> None:
    line = json.dumps({"q": "How do I park?", "a": ["Ask reception.", "Show your badge."]})
    doc = load_jsonl(line, "/d/kb.jsonl", TableConfig(text_fields=["q", "a"])).documents[0]
    assert doc.sections[0].text == "How do I park?\nAsk reception.\nShow your badge."


def test_jsonl_with_no_valid_line_is_refused() -> None:
    with pytest.raises(LoadError, match=r"no valid JSON lines \(line 1: invalid JSON\)"):
        load_jsonl('{\n  "text": "pretty-printed JSON"\n}\n', "/d/kb.jsonl")


# --------------------------------------------------------------------------- WebVTT and SRT

VTT = """WEBVTT - talk
Kind: captions
Language: en

STYLE
::cue { color: yellow }

NOTE the next cue is the intro

intro
00:00:01.000 --> 00:00:04.500 align:start position:10%
<v.loud Alice Smith>Welcome &amp; hello,</v>
<i>everyone</i>&nbsp;here.

00:05.000 --> 00:07.250
<v Bob>Thanks, <c.yellow>Alice</c>.<00:00:06.000> &lt;3

00:00:08.000 --> 00:00:09.000
<v Alice Smith>Question?</v>
<v Bob>Answer.</v>
"""


def test_vtt_cues_have_times_speakers_and_clean_text() -> None:
    result = load_vtt(VTT, "/d/talk.vtt")
    doc = result.documents[0]
    assert (doc.kind, doc.title) == ("transcript", "talk")
    assert spans(result) == [
        (1.0, 4.5, "Alice Smith", "Welcome & hello,\neveryone here."),
        (5.0, 7.25, "Bob", "Thanks, Alice. <3"),
        (8.0, 9.0, "Alice Smith, Bob", "Question?\nAnswer."),
    ]
    assert result.warnings == ()


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_vtt_with_crlf_or_cr_line_endings_loads(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "talk.vtt"
    path.write_bytes(VTT.replace("\n", newline).encode("utf-8"))
    assert [c[:2] for c in spans(load_file(path, IngestConfig()))] == [(1.0, 4.5), (5.0, 7.25), (8.0, 9.0)]


def test_vtt_without_header_loads_with_a_warning() -> None:
    result = load_vtt("00:01.000 --> 00:02.000\nHi there\n", "/d/a.vtt")
    assert spans(result) == [(1.0, 2.0, None, "Hi there")]
    assert result.warnings == ("no WEBVTT header; read as WebVTT anyway",)


def test_vtt_bad_cues_are_reported_and_the_others_kept() -> None:
    vtt = (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\nfirst\n\n"
        "00:00:0x.000 --> 00:00:04.000\nbad start\n\n"
        "00:00:06.000 --> 00:00:05.000\nbackwards\n\n"
        "00:00:07.000 --> 00:00:08.000\n<b> </b>\n\n"
        "00:00:09.000 --> 00:00:10.000\nlast\n"
    )
    result = load_vtt(vtt, "/d/a.vtt")
    assert [c[3] for c in spans(result)] == ["first", "last"]
    assert result.warnings == (
        "cue 2 (line 6): bad timestamp '00:00:0x.000'",
        "cue 3 (line 9): ends before it starts (00:00:06.000 --> 00:00:05.000)",
    )


def test_repeated_auto_caption_lines_are_merged() -> None:
    vtt = "WEBVTT\n\n00:01.000 --> 00:02.000\nsame\n\n00:02.000 --> 00:03.000\nsame\n\n00:03.000 --> 00:04.000\nnew\n"
    assert spans(load_vtt(vtt, "/d/a.vtt")) == [(1.0, 3.0, None, "same"), (3.0, 4.0, None, "new")]


SRT = """1
00:00:01,000 --> 00:00:03,000
<i>Hello</i> {\\an8}world

2
00:00:04,000 --> 00:00:06,500
Second cue
spans two lines

3
00:00:xx,000 --> 00:00:09,000
Broken timing

4
00:00:10.000 --> 00:00:12,000
Dot is accepted too
5
00:00:13,000 --> 00:00:14,000
Glued to the previous cue

6
No timing here
"""


def test_srt_broken_cues_are_reported_and_the_others_kept() -> None:
    result = load_srt(SRT, "/d/movie.srt")
    assert spans(result) == [
        (1.0, 3.0, None, "Hello world"),
        (4.0, 6.5, None, "Second cue\nspans two lines"),
        (10.0, 12.0, None, "Dot is accepted too"),
        (13.0, 14.0, None, "Glued to the previous cue"),
    ]
    assert result.warnings == (
        "cue 3 (line 11): bad timestamp '00:00:xx,000'",
        "cue 6 (line 21): no timing line, skipped ('No timing here')",
    )


@pytest.mark.parametrize(
    ("loader", "text", "error", "reason"),
    [
        (load_srt, "1\n00:00:xx,000 --> 00:00:02,000\nonly cue\n", LoadError, "no readable cues"),
        (load_srt, "just some prose\nwith no cues\n", LoadError, "no readable cues"),
        (load_vtt, "WEBVTT\n\nNOTE nothing else\n", EmptySourceError, "no cues"),
    ],
)
def test_transcript_without_readable_cues_is_refused(loader, text: str, error: type, reason: str) -> None:
    with pytest.raises(error, match=reason):
        loader(text, "/d/a.srt")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:00:01.000", 1.0),
        ("01:02:03.456", 3723.456),
        ("02:03.5", 123.5),
        ("00:00:01,250", 1.25),
        ("100:00:00.000", 360000.0),
        ("00:00:05", 5.0),
        ("00:60:00.000", None),
        ("00:00:xx,000", None),
        ("1.5", None),
        ("", None),
    ],
)
def test_parse_timestamp(value: str, seconds: float | None) -> None:
    assert parse_timestamp(value) == seconds


# --------------------------------------------------------------------------- JSON transcripts


def test_whisper_json_segments_in_seconds() -> None:
    data = {
        "text": " Hello there. General Kenobi.",
        "segments": [
            {"id": 0, "start": 0.0, "end": 2.4, "text": " Hello there."},
            {"id": 1, "start": 2.4, "end": 5.0, "text": " General Kenobi.", "speaker": "SPEAKER_01"},
            {"id": 2, "start": "bad", "end": 6.0, "text": "lost"},
            {"id": 3, "start": 6.0, "end": 7.0, "text": "   "},
        ],
    }
    result = load_json_transcript(json.dumps(data), "/d/talk.json")
    assert spans(result) == [(0.0, 2.4, None, "Hello there."), (2.4, 5.0, "SPEAKER_01", "General Kenobi.")]
    assert result.warnings == ("segment 3: missing or bad 'start' ('bad'), skipped",)
    assert result.documents[0].kind == "transcript"


def test_assemblyai_json_milliseconds_become_seconds_and_speakers_get_names() -> None:
    data = {
        "text": "Hi. Hello.",
        "utterances": [
            {"start": 250, "end": 1800, "speaker": "A", "text": "Hi.", "confidence": 0.9},
            {"start": 2000, "end": 65_500, "speaker": "B", "text": "Hello."},
            {"start": 70_000, "end": 69_000, "speaker": "A", "text": "backwards"},
        ],
    }
    result = load_json_transcript(json.dumps(data), "/d/call.json")
    assert spans(result) == [(0.25, 1.8, "Speaker A", "Hi."), (2.0, 65.5, "Speaker B", "Hello.")]
    assert result.warnings == ("utterance 3: ends before it starts (70s > 69s), skipped",)


def test_bare_list_of_segments_is_a_transcript() -> None:
    data = [{"start": 1, "end": 2, "text": "one"}, {"start": 2, "end": 3, "text": "two"}]
    assert [c[3] for c in spans(load_json_transcript(json.dumps(data), "/d/a.json"))] == ["one", "two"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"title": "config", "items": [1, 2]}, NOT_A_TRANSCRIPT),
        ([{"id": 1, "name": "record"}], NOT_A_TRANSCRIPT),
        ("just a string", NOT_A_TRANSCRIPT),
        ({"utterances": None, "text": "hi"}, "AssemblyAI JSON without utterances"),
        ({"segments": [{"start": 0, "end": 1}]}, "no readable segments (segment 1: missing 'text', skipped)"),
    ],
)
def test_json_that_is_not_a_usable_transcript_is_refused(data: object, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        load_json_transcript(json.dumps(data), "/d/a.json")
    assert str(info.value).startswith(reason)


def test_invalid_json_names_the_line() -> None:
    with pytest.raises(LoadError, match=r"invalid JSON: .* \(line 2\)"):
        load_json_transcript('{"segments":\n  [,]}', "/d/a.json")


# --------------------------------------------------------------------------- load_file


def test_supported_suffixes() -> None:
    expected = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf", ".csv", ".jsonl", ".vtt", ".srt", ".json"}
    assert expected == SUPPORTED_SUFFIXES


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("README.MD", "# Hi\nthere", "markdown"),
        ("notes.markdown", "# Hi\nthere", "markdown"),
        ("notes.TXT", "plain", "text"),
        ("page.htm", "<p>hi</p>", "html"),
        ("faq.csv", "text\nhi\n", "table"),
        ("kb.jsonl", '{"text": "hi"}\n', "table"),
        ("talk.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n", "transcript"),
        ("talk.srt", "1\n00:00:01,000 --> 00:00:02,000\nhi\n", "transcript"),
        ("talk.json", '{"segments": [{"start": 0, "end": 1, "text": "hi"}]}', "transcript"),
    ],
)
def test_load_file_dispatches_by_suffix_and_resolves_the_source(tmp_path, monkeypatch, name, content, kind) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = load_file(Path(name), IngestConfig())  # relative on purpose
    assert {d.kind for d in result.documents} == {kind}
    assert {d.source for d in result.documents} == {(tmp_path / name).resolve().as_posix()}


def test_load_file_reads_pdf_and_cp932_text(tmp_path) -> None:
    (tmp_path / "h.pdf").write_bytes(make_pdf(["Page text."]))
    (tmp_path / "会議.md").write_bytes("# 会議室\nキャンセルは三十分前まで。①".encode("cp932"))
    assert texts(load_file(tmp_path / "h.pdf", IngestConfig())) == ["Page text."]
    result = load_file(tmp_path / "会議.md", IngestConfig())
    assert texts(result) == ["# 会議室\nキャンセルは三十分前まで。①"]
    assert result.documents[0].title == "会議室"


def test_load_file_uses_the_matching_table_entry(tmp_path) -> None:
    (tmp_path / "faq.csv").write_text("q,a\nWhere?,Here.\n", encoding="utf-8")
    config = IngestConfig(tables=[TableConfig(pattern="faq*.csv", text_fields=["q", "a"]), TableConfig()])
    assert texts(load_file(tmp_path / "faq.csv", config)) == ["Where?\nHere."]


@pytest.mark.parametrize(
    ("name", "content", "error", "reason"),
    [
        ("slides.pptx", b"PK\x03\x04", LoadError, "unsupported file type '.pptx'"),
        ("Makefile", b"all:", LoadError, "unsupported file type 'Makefile'"),
        ("empty.md", b"", EmptySourceError, "empty file"),
        ("blank.txt", b" \n\t\n", EmptySourceError, "empty file (only whitespace)"),
        ("logo.md", b"\x89PNG\r\n\x1a\n" + bytes(100), LoadError, "binary file, not text"),
        ("big.txt", b"a" * 2000, LoadError, "file is larger than the 0.001 MB limit (ingest.max_file_mb)"),
        ("big.pdf", b"%PDF" + b"a" * 2000, LoadError, "file is larger than the 0.001 MB limit"),
        ("scan.pdf", make_pdf([None]), LoadError, "PDF has no text layer"),
        ("broken.pdf", b"%PDF-1.4 truncated", LoadError, "broken PDF"),
        ("data.json", b'{"rows": []}', LoadError, "JSON is not a transcript"),
        ("nums.csv", b"a,b\n1,2\n", LoadError, "no text column found"),
    ],
)
def test_load_file_refuses_unreadable_files_with_a_reason(tmp_path, name, content, error, reason) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(error) as info:
        load_file(tmp_path / name, IngestConfig(max_file_mb=0.001))
    assert str(info.value).startswith(reason)


class FakeBuggyLoader:
    """A loader that fails the way a parser bug would."""

    def __call__(self, text: str, source: str) -> LoadResult:
        raise KeyError("segments")


def test_unexpected_parser_errors_become_load_errors_with_the_cause(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setitem(loaders._TEXT_LOADERS, ".txt", FakeBuggyLoader())
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(LoadError, match=r"could not read this \.txt file \(KeyError: 'segments'\)") as info:
        load_file(tmp_path / "a.txt", IngestConfig())
    assert isinstance(info.value.__cause__, KeyError)
    assert "unexpected error reading" in caplog.text  # the traceback is logged, not swallowed
