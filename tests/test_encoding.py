"""Decoding text files: BOMs, Japanese legacy encodings, line endings, binary/empty/oversized files."""

from __future__ import annotations

import codecs

import pytest

from ingest.encoding import decode_bytes, max_bytes_for, read_file_bytes, read_text_file
from ingest.errors import EmptySourceError, LoadError

JAPANESE = "会議室のキャンセルは三十分前までに連絡してください。① ㈱ 髙橋"
# The same sentence as glibc's `iconv -t EUC-JP-MS` writes it: ① ㈱ are NEC row 13 (0xADA1, 0xADEA)
# and 髙 an IBM extension (0x8FF4FB); Python's own euc_jp codec can encode none of the three.
JAPANESE_EUCJP_MS = bytes.fromhex(
    "b2f1b5c4bcbca4cea5ada5e3a5f3a5bba5eba4cfbbb0bdbdcaacc1b0a4dea4c7a4cbcfa2cdeda4b7a4c6a4afa4c0a4b5a4a4a1a3"
    "ada120adea208ff4fbb6b6"
)
JAPANESE_PLAIN = "会議室のキャンセルは三十分前までに連絡してください。高橋"  # what plain euc_jp can encode


@pytest.mark.parametrize(
    ("label", "data", "expected"),
    [
        ("utf-8", JAPANESE.encode("utf-8"), JAPANESE),
        ("utf-8 with BOM", codecs.BOM_UTF8 + JAPANESE.encode("utf-8"), JAPANESE),
        ("utf-16 (BOM, native)", JAPANESE.encode("utf-16"), JAPANESE),
        ("utf-16 LE with BOM", codecs.BOM_UTF16_LE + JAPANESE.encode("utf-16-le"), JAPANESE),
        ("utf-16 BE with BOM", codecs.BOM_UTF16_BE + JAPANESE.encode("utf-16-be"), JAPANESE),
        ("utf-32 with BOM", JAPANESE.encode("utf-32"), JAPANESE),
        ("cp932 (① ㈱ 髙 included)", JAPANESE.encode("cp932"), JAPANESE),
        ("euc-jp", JAPANESE_PLAIN.encode("euc_jp"), JAPANESE_PLAIN),
        ("eucJP-ms (① ㈱ 髙 included)", JAPANESE_EUCJP_MS, JAPANESE),
        ("cp932, two lines", (JAPANESE + "\n" + JAPANESE).encode("cp932"), JAPANESE + "\n" + JAPANESE),
    ],
)
def test_japanese_text_decodes_to_the_original(label: str, data: bytes, expected: str) -> None:
    assert decode_bytes(data, "notes.txt") == expected


def test_a_utf8_bom_does_not_reach_the_text() -> None:
    text = decode_bytes(codecs.BOM_UTF8 + b"# Title\n", "a.md")
    assert text == "# Title\n"
    assert not text.startswith("\ufeff")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"one\r\ntwo\r\n", "one\ntwo\n"),
        (b"one\rtwo\r", "one\ntwo\n"),
        (b"one\r\ntwo\rthree\n", "one\ntwo\nthree\n"),
        ("一\r\n二\r三".encode("cp932"), "一\n二\n三"),
        ("一\r\n二".encode("utf-16"), "一\n二"),
    ],
)
def test_line_endings_become_lf(data: bytes, expected: str) -> None:
    assert decode_bytes(data, "a.txt") == expected


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Die Größe des Raums ist für zwölf Personen ausgelegt. Grüße aus München.", "latin-1"),
        ("Le café est fermé le dimanche; les réunions ont lieu à l'étage, près de la fenêtre.", "cp1252"),
        ("안녕하세요. 오늘 회의는 오후 세 시에 시작합니다. 회의실 예약은 삼십 분 전까지 취소해 주세요.", "euc_kr"),
    ],
)
def test_other_legacy_encodings_fall_back_to_detection(text: str, encoding: str) -> None:
    # Korean EUC-KR also decodes strictly as EUC-JP (as kanji); it must not come out as Japanese.
    assert decode_bytes(text.encode(encoding), "old.txt") == text


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(64),
        bytes(range(256)) * 8,
        b"\x01\x02\x03\x04 looks like text \x05\x06\x07" * 20,  # control characters, no NUL
        JAPANESE.encode("utf-16-le"),  # UTF-16 without BOM is indistinguishable from binary
    ],
)
def test_binary_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(LoadError, match="binary"):
        decode_bytes(data, "image.txt")


@pytest.mark.parametrize("name", ["photo.txt", "photo.md"])
def test_binary_file_with_a_text_suffix_is_refused(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(LoadError, match="binary file, not text"):
        read_text_file(path, max_bytes_for(50))


def test_empty_file_is_refused_as_empty(tmp_path) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(b"")
    with pytest.raises(EmptySourceError, match="empty file"):
        read_text_file(path, max_bytes_for(50))


@pytest.mark.parametrize(("max_file_mb", "shown"), [(0.001, "0.001"), (1, "1"), (2.5, "2.5")])
def test_oversized_file_is_refused_naming_the_setting(tmp_path, max_file_mb: float, shown: str) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * (max_bytes_for(max_file_mb) + 1))
    with pytest.raises(LoadError) as info:
        read_text_file(path, max_bytes_for(max_file_mb))
    assert str(info.value) == f"file is larger than the {shown} MB limit (ingest.max_file_mb)"


def test_file_at_the_limit_is_read(tmp_path) -> None:
    path = tmp_path / "edge.txt"
    limit = max_bytes_for(0.001)
    path.write_bytes(b"y" * limit)
    assert read_file_bytes(path, limit) == b"y" * limit


def test_missing_file_is_a_load_error(tmp_path) -> None:
    with pytest.raises(LoadError, match="cannot read file"):
        read_text_file(tmp_path / "gone.txt", 1000)
