"""Transcripts: WebVTT, SRT and Whisper/AssemblyAI JSON, one section per cue with its time span."""

from __future__ import annotations

import html
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from ingest.errors import EmptySourceError, LoadError
from ingest.loaders._shared import capped, stem_of
from ingest.records import Document, LoadResult, Section
from rag.records import Locator

logger = logging.getLogger(__name__)

NOT_A_TRANSCRIPT = (
    "JSON is not a transcript (expected 'segments' or 'utterances'; use .jsonl for one document per line)"
)
_TIMING = re.compile(r"^\s*(\S+?)\s*-->\s*(\S+)")
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d+))?$")
_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t]|$)")
_VTT_SKIPPED_BLOCK = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t]|$)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?[ \t]+([^>\n]*)>")
_TAG = re.compile(r"</?(?:[A-Za-z][^<>\n]*|\d[\d:.]*)>")  # <i>, </c>, <c.red>, <v Bob>, <00:01.000>
_SRT_OVERRIDE = re.compile(r"\{\\[^}\n]*\}")  # {\an8}: ASS positioning some SRT files carry
_MERGE_GAP_S = 1.0  # auto-captions repeat a line in back-to-back cues; merge repeats this close


@dataclass
class _Cue:
    start: float | None  # None in a transcript without times: its turns are numbered instead
    end: float | None
    text: str
    speaker: str | None


def load_vtt(text: str, source: str) -> LoadResult:
    """A WebVTT file as one section per cue; voice tags give speakers, broken cues are reported."""
    return _load_cues(text, source, vtt=True)


def load_srt(text: str, source: str) -> LoadResult:
    """An SRT file as one section per cue; broken cues are reported and the others kept."""
    return _load_cues(text, source, vtt=False)


def parse_timestamp(value: str) -> float | None:
    """Seconds from 'HH:MM:SS.mmm', 'MM:SS.mmm' or 'HH:MM:SS,mmm'; None when malformed."""
    match = _TIMESTAMP.match(value.strip())
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        return None
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + float(f"0.{fraction or 0}")
    return round(total, 3)


def load_json_transcript(text: str, source: str) -> LoadResult:
    """A Whisper ('segments', seconds) or AssemblyAI ('utterances', milliseconds) JSON transcript."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON: {exc.msg} (line {exc.lineno})") from exc
    if isinstance(data, dict) and isinstance(data.get("segments"), list):
        items, scale, noun = data["segments"], 1.0, "segment"
    elif isinstance(data, dict) and isinstance(data.get("utterances"), list):
        items, scale, noun = data["utterances"], 0.001, "utterance"  # AssemblyAI times are milliseconds
    elif isinstance(data, dict) and "utterances" in data:
        raise LoadError("AssemblyAI JSON without utterances: transcribe with speaker_labels enabled")
    elif isinstance(data, list) and any(isinstance(item, dict) and "start" in item and "text" in item for item in data):
        items, scale, noun = data, 1.0, "segment"
    elif isinstance(data, list) and not data:
        raise EmptySourceError("transcript has no segments")
    else:
        raise LoadError(NOT_A_TRANSCRIPT)
    if not items:
        raise EmptySourceError("transcript has no segments")

    # an export with speakers and text but no times at all (AssemblyAI-style utterances trimmed to
    # speaker and text, many meeting tools): turns are numbered instead of timed
    timeless = not any(isinstance(item, dict) and ("start" in item or "end" in item) for item in items)
    cues: list[_Cue] = []
    problems: list[str] = []
    for number, item in enumerate(items, start=1):
        cue = _json_cue(item, scale, f"{noun} {number}", problems, timeless)
        if cue is not None:
            cues.append(cue)
    if not cues:
        raise LoadError(f"no readable {noun}s ({problems[0]})" if problems else f"no {noun} has text")
    return _result(cues, source, capped(problems, f"bad {noun}s"))


def _json_cue(item: Any, scale: float, label: str, problems: list[str], timeless: bool = False) -> _Cue | None:
    if not isinstance(item, dict):
        problems.append(f"{label}: not an object, skipped")
        return None
    start, end = _seconds(item.get("start"), scale), _seconds(item.get("end"), scale)
    if timeless:
        pass
    elif start is None or end is None:
        key = "start" if start is None else "end"
        problems.append(f"{label}: missing or bad '{key}' ({item.get(key)!r}), skipped")
        return None
    elif end < start:
        problems.append(f"{label}: ends before it starts ({start:g}s > {end:g}s), skipped")
        return None
    raw = item.get("text")
    if not isinstance(raw, str):
        problems.append(f"{label}: missing 'text', skipped")
        return None
    text = " ".join(raw.split())
    if not text:
        return None
    return _Cue(start, end, text, _speaker(item.get("speaker")))


def _seconds(value: Any, scale: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return round(number * scale, 3)


def _speaker(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    name = str(value).strip()
    if not name:
        return None
    # AssemblyAI labels speakers "A", "B": alone they read like words in a citation.
    return f"Speaker {name}" if len(name) <= 2 else name


def _load_cues(text: str, source: str, vtt: bool) -> LoadResult:
    warnings: list[str] = []
    problems: list[str] = []
    blocks = _blocks(text)
    if vtt:
        if blocks and _VTT_HEADER.match(blocks[0][1][0]):
            first_line, lines = blocks[0]
            # The header block may hold metadata; a cue glued to it without a blank line still counts.
            timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
            blocks[0] = (first_line + timing, lines[timing:]) if timing is not None else (first_line, [])
        else:
            warnings.append("no WEBVTT header; read as WebVTT anyway")
    cues: list[_Cue] = []
    ordinal = 0
    for first_line, lines in blocks:
        if not lines or (vtt and _VTT_SKIPPED_BLOCK.match(lines[0])):
            continue
        for raw in _split_block(first_line, lines):
            ordinal += 1
            label = f"cue {raw.ident if raw.ident and raw.ident.isdigit() else ordinal} (line {raw.line})"
            cue = _text_cue(raw.timing, raw.body, label, problems)
            if cue is not None:
                cues.append(cue)
    if not cues:
        if problems:
            raise LoadError(f"no readable cues ({problems[0]})")
        raise EmptySourceError("no cues (empty transcript)")
    return _result(cues, source, warnings + capped(problems, "bad cues"))


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with the 1-based number of its first line."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line.rstrip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


class _RawCue(NamedTuple):
    """A cue as written: where it is, its identifier and timing line (if any) and its text lines."""

    line: int
    ident: str | None
    timing: str | None
    body: list[str]


def _split_block(first_line: int, lines: list[str]) -> list[_RawCue]:
    """The cues in a block of non-blank lines.

    A block normally holds one cue, but a missing blank line glues two together: a later
    timing line (with a number line before it, in SRT) starts a new cue.
    """
    timings = [i for i, line in enumerate(lines) if "-->" in line]
    if not timings:
        number = lines[0].strip() if lines[0].strip().isdigit() else None
        return [_RawCue(first_line, number, None, lines[1:] if number else lines)]
    cues: list[_RawCue] = []
    for n, t in enumerate(timings):
        ident = lines[t - 1].strip() if t > 0 else None
        end = timings[n + 1] if n + 1 < len(timings) else len(lines)
        if n + 1 < len(timings) and lines[end - 1].strip().isdigit() and end - 1 > t:
            end -= 1  # that number line is the next cue's identifier
        if n > 0 and not (ident and ident.isdigit()):
            ident = None  # the line above is the previous cue's text
        cues.append(_RawCue(first_line + t, ident, lines[t], lines[t + 1 : end]))
    return cues


def _text_cue(timing: str | None, body: list[str], label: str, problems: list[str]) -> _Cue | None:
    if timing is None:
        preview = " ".join(" ".join(body).split())[:40]
        problems.append(f"{label}: no timing line, skipped" + (f" ('{preview}')" if preview else ""))
        return None
    match = _TIMING.match(timing)
    if not match:
        problems.append(f"{label}: bad timing line '{timing.strip()}'")
        return None
    start, end = parse_timestamp(match[1]), parse_timestamp(match[2])  # cue settings after it are ignored
    if start is None or end is None:
        problems.append(f"{label}: bad timestamp '{match[1] if start is None else match[2]}'")
        return None
    if end < start:
        problems.append(f"{label}: ends before it starts ({match[1]} --> {match[2]})")
        return None
    text, speaker = clean_cue_text(body)
    return _Cue(start, end, text, speaker) if text else None


def clean_cue_text(lines: list[str]) -> tuple[str, str | None]:
    """Cue text without markup or entities, and the speaker(s) named by <v> voice tags."""
    speakers: list[str] = []
    for line in lines:
        for match in _VOICE.finditer(line):
            name = " ".join(match[1].split())
            if name and name not in speakers:
                speakers.append(name)
    raw = _SRT_OVERRIDE.sub("", _TAG.sub("", "\n".join(lines)))
    unescaped = html.unescape(raw).replace("\xa0", " ")
    text = "\n".join(joined for line in unescaped.split("\n") if (joined := " ".join(line.split())))
    return text, ", ".join(speakers) or None


def _repeats(last: _Cue, cue: _Cue) -> bool:
    same = cue.text == last.text and cue.speaker == last.speaker
    if None in (last.start, last.end, cue.start):
        return False  # without times, a repeated line is a repeated turn
    return same and last.start <= cue.start <= last.end + _MERGE_GAP_S


def _result(cues: list[_Cue], source: str, warnings: list[str]) -> LoadResult:
    merged: list[_Cue] = []
    for cue in cues:
        if merged and _repeats(merged[-1], cue):
            merged[-1].end = max(merged[-1].end, cue.end)
        else:
            merged.append(cue)
    timeless = all(cue.start is None for cue in merged)
    sections = tuple(
        Section(
            cue.text,
            Locator(start_s=cue.start, end_s=cue.end, speaker=cue.speaker, turn=number if timeless else None),
        )
        for number, cue in enumerate(merged, start=1)
    )
    doc = Document(source=source, kind="transcript", sections=sections, title=stem_of(source))
    return LoadResult(documents=(doc,), warnings=tuple(warnings))


# "Project Manager: so the remote ...": a speaker label of one to four capitalised words (or
# "Speaker A", "SPEAKER_01"), a colon, then the turn's text
_SPEAKER_LINE = re.compile(r"^\s*((?:[A-Z][\w.'-]*|[A-Z]+_?\d+)(?:[ \t]+[A-Z0-9][\w.'-]*){0,3})[ \t]*:[ \t]+(\S.*)$")
_NOT_SPEAKERS = frozenset({"Note", "Notes", "Warning", "Example", "Tip", "Q", "A", "Answer", "Question", "Step", "Http", "Https"})


def load_speaker_lines(text: str, source: str) -> LoadResult | None:
    """A plain-text transcript with one "Speaker: text" turn per line, or None when text is not one.

    It is one when at least 60% of the non-empty lines are such turns, there are at least four
    turns, and at least two speakers of whom one speaks twice; lines without a label continue
    the turn above. Each turn is a cue numbered from 1, so citations name turns and speakers.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 4:
        return None
    turns: list[_Cue] = []
    labelled = 0
    for line in lines:
        match = _SPEAKER_LINE.match(line)
        if match and match.group(1) not in _NOT_SPEAKERS and len(match.group(1)) <= 40:
            labelled += 1
            turns.append(_Cue(None, None, " ".join(match.group(2).split()), match.group(1)))
        elif turns:
            turns[-1].text += " " + " ".join(line.split())
    speakers = [cue.speaker for cue in turns]
    counts = {s: speakers.count(s) for s in set(speakers)}
    if labelled < 4 or labelled < 0.6 * len(lines) or len(counts) < 2 or max(counts.values()) < 2:
        return None
    return _result(turns, source, [])
