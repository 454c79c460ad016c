"""Turning file bytes into text: BOMs, binary detection, UTF-8, Japanese legacy encodings."""

from __future__ import annotations

import codecs
import logging
import unicodedata
from pathlib import Path

from ingest.errors import EmptySourceError, LoadError

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 8192
# Bytes that never appear in text files; tab, LF, FF, CR and ESC (ISO-2022-JP) are left out.
_CONTROL_BYTES = frozenset(range(0x01, 0x09)) | {0x0B} | frozenset(range(0x0E, 0x1B)) | {0x1C, 0x1D, 0x1E, 0x1F, 0x7F}
_MAX_CONTROL_SHARE = 0.05
_MIN_JAPANESE_SCORE = 0.5
_JAPANESE_CODECS = frozenset(
    {"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004", "euc_jisx0213", "iso2022_jp"}
)

# Checked in order: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# eucJP-ms (glibc's EUC-JP-MS, older Linux/Unix systems) puts the IBM extension kanji, 髙 and 﨑
# among them, at 0x8FF3F3-0x8FF3FE and 0x8FF4A1-0x8FF4FE in this order; Python's euc_jp has none.
_EUCJP_MS_IBM = (
    "ⅰⅱⅲⅳⅴⅵⅶⅷⅸⅹⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ＇＂㈱№℡炻仼僴凬匇匤﨎咊坙﨏塚增寬峵嵓﨑德悅愠敎昻晥晴朗栁﨓﨔橫櫢淸淲瀨凞猪甁皂皞益礰礼神祥福"  # noqa: RUF001
    "竧靖精綠緖羽荢﨟薰蘒﨡蠇諸譿賴赶﨣﨤逸郞都鄕﨧﨨閒隆﨩霻靍靑飯飼館馞髙魲鶴黑"
)


def _eucjp_extensions(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: decode the vendor extensions of eucJP-ms and CP51932."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    data, i = exc.object, exc.start
    lead = data[i]
    if lead == 0x8F and i + 2 < len(data) and data[i + 1] in (0xF3, 0xF4) and 0xA1 <= data[i + 2] <= 0xFE:
        index = (data[i + 2] - 0xF3) if data[i + 1] == 0xF3 else 12 + data[i + 2] - 0xA1
        if 0 <= index < len(_EUCJP_MS_IBM):
            return _EUCJP_MS_IBM[index], i + 3
    if 0xA1 <= lead <= 0xFE and i + 1 < len(data) and 0xA1 <= data[i + 1] <= 0xFE:
        # NEC row 13 (① ㈱ №) and NEC-selected IBM rows 89-92 sit at the same JIS row/cell in
        # eucJP-ms/CP51932 as in CP932, so map the cell to Shift_JIS bytes and let cp932 decode it.
        row, cell = lead - 0xA0, data[i + 1] - 0xA0
        first = (row + 1) // 2 + (0x80 if row <= 62 else 0xC0)
        second = cell + (0x3F + (cell >= 64) if row % 2 else 0x9E)
        try:
            return bytes([first, second]).decode("cp932"), i + 2
        except UnicodeDecodeError:
            pass
    raise exc


codecs.register_error("ragbot-eucjp-extensions", _eucjp_extensions)


def decode_bytes(data: bytes, source_name: str) -> str:
    """Decode a text file's bytes (BOM, UTF-8, CP932, EUC-JP, else best guess) with LF line ends."""
    text = _decode(data, source_name)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text_file(path: Path, max_bytes: int) -> str:
    """Read and decode a text file, refusing empty, oversized and binary files."""
    return decode_bytes(read_file_bytes(path, max_bytes), path.name)


def read_file_bytes(path: Path, max_bytes: int) -> bytes:
    """Read a file's bytes, refusing empty files and files larger than max_bytes."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)  # one byte more tells "too big" without reading it all
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise EmptySourceError("empty file")
    if len(data) > max_bytes:
        raise LoadError(f"file is larger than the {_megabytes(max_bytes)} MB limit (ingest.max_file_mb)")
    return data


def max_bytes_for(max_file_mb: float) -> int:
    """The byte limit for ingest.max_file_mb (MiB, as the ingest pipeline counts it)."""
    return int(max_file_mb * 1024 * 1024)


def _megabytes(max_bytes: int) -> str:
    # max_bytes came from int(mb * 2**20); the half byte and the rounding give back "0.001", not "0.000999".
    return f"{round((max_bytes + 0.5) / 2**20, 6):g}"


def _decode(data: bytes, source_name: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                reason = f"invalid {encoding.upper()} text after its byte order mark (byte {exc.start})"
                raise LoadError(reason) from exc

    if _looks_binary(data):
        raise LoadError("binary file, not text")

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass

    japanese = _decode_japanese(data)
    if japanese is not None and _has_kana(japanese):
        return japanese
    # Kanji without a single kana is more likely Korean or Chinese read as EUC-JP: ask the detector,
    # and keep our decoding when it also says Japanese (ours knows the CP932/eucJP-ms extensions).
    guess = _best_guess(data)
    if japanese is not None and (guess is None or guess.encoding in _JAPANESE_CODECS):
        return japanese
    if guess is None:
        raise LoadError("unknown text encoding (not UTF-8, CP932 or EUC-JP); save the file as UTF-8")
    logger.info("%s: guessed encoding %s", source_name, guess.encoding)
    return str(guess)


def _looks_binary(data: bytes) -> bool:
    sample = data[:_SNIFF_BYTES]
    if b"\x00" in sample:
        return True
    controls = sum(1 for byte in sample if byte in _CONTROL_BYTES)
    return controls > _MAX_CONTROL_SHARE * len(sample)


def _decode_japanese(data: bytes) -> str | None:
    """CP932 or EUC-JP when either decodes strictly and reads as Japanese; the better one if both do."""
    candidates: list[tuple[float, str, str]] = []
    for encoding, errors in (("cp932", "strict"), ("euc_jp", "ragbot-eucjp-extensions")):
        try:
            text = data.decode(encoding, errors)
        except UnicodeDecodeError:
            continue
        candidates.append((_japanese_score(text), encoding, text))
    if not candidates:
        return None
    score, encoding, text = max(candidates, key=lambda c: c[0])
    if score < _MIN_JAPANESE_SCORE:
        logger.debug("best Japanese reading is %s, but it does not look Japanese (score %.2f)", encoding, score)
        return None
    logger.debug("decoded as %s (Japanese score %.2f)", encoding, score)
    return text


def _has_kana(text: str) -> bool:
    return any(0x3040 <= ord(char) <= 0x30FF for char in text)


def _japanese_score(text: str) -> float:
    """How much the non-ASCII characters of text look like ordinary Japanese, from -2 to 1."""
    total = 0.0
    count = 0
    for char in text:
        code = ord(char)
        if code < 0x80:
            continue
        count += 1
        total += _char_weight(code)
    return total / count if count else 0.0


def _char_weight(code: int) -> float:
    if 0x3040 <= code <= 0x30FF or 0x4E00 <= code <= 0x9FFF:  # kana, common kanji
        return 1.0
    if 0x3000 <= code <= 0x303F or 0xFF01 <= code <= 0xFF60 or 0xFFE0 <= code <= 0xFFEF:  # 、。「」 full-width forms
        return 1.0
    if 0xFF61 <= code <= 0xFF9F:  # half-width katakana: what EUC-JP bytes look like read as CP932
        return -1.0
    if 0xE000 <= code <= 0xF8FF or code < 0xA0:  # private use (CP932 user area), C1 controls
        return -2.0
    if 0x2010 <= code <= 0x2BFF or 0x3200 <= code <= 0x33FF or 0xF900 <= code <= 0xFAFF:
        return 0.5  # symbols, ① ㈱, compatibility kanji: real but rarer
    if 0x0391 <= code <= 0x03C9 or 0x0401 <= code <= 0x0451 or code in (0xA7, 0xA8, 0xB0, 0xB1, 0xB4, 0xB6, 0xD7, 0xF7):
        return 0.5  # Greek, Cyrillic and the Latin-1 signs that JIS X 0208 has
    return -1.0 if unicodedata.category(chr(code)) != "Lo" else -0.5


def _best_guess(data: bytes):
    """charset_normalizer's best reading, preferring Windows-1252 over equally good Central European codecs."""
    from charset_normalizer import from_bytes  # imported late: only odd files need it

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # On short Western European text it often ties cp1250 with cp1252 and picks cp1250 ("à" -> "ŕ").
    for match in matches:
        tied = match.chaos <= best.chaos and match.coherence >= best.coherence - 0.01
        if match.encoding == "cp1252" and (tied or "cp1252" in best.could_be_from_charset):
            return match
    return best
