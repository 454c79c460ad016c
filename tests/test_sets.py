"""Knowledge sets: tagged at ingest from path patterns, and a channel only ever sees its own sets."""

from __future__ import annotations

from bot.config import BotConfig
from bot.core import BotCore, IncomingMessage
from bot.state import MemoryState
from bot.runtime import build_answerer, open_ingestor, open_knowledge_base
from tests.conftest import FAST_SPACES, fast_config

HR = "# Holidays\n\nEmployees get 25 holiday days per year; request them in the HR portal.\n"
ENG = "# Deploys\n\nProduction deploys happen on Tuesdays; holiday freeze applies in December.\n"


def _corpus(tmp_path):
    root = tmp_path / "docs"
    (root / "hr").mkdir(parents=True)
    (root / "eng").mkdir()
    (root / "hr" / "holidays.md").write_text(HR)
    (root / "eng" / "deploys.md").write_text(ENG)
    return root


def test_channel_mapped_to_one_set_never_gets_another_sets_passages(tmp_path):
    root = _corpus(tmp_path)
    config = fast_config(
        tmp_path / "data",
        ingest={"sets": [{"pattern": "docs/hr/**", "name": "hr"}]},
        embedding={**FAST_SPACES["embedding"], "spaces": {n: {**c, "min_score": -1.0} for n, c in FAST_SPACES["embedding"]["spaces"].items()}},
    )
    with open_knowledge_base(config) as kb:
        with open_ingestor(config, kb) as ingestor:
            ingestor.run([root])
        core = BotCore(
            build_answerer(config, kb, model=None), BotConfig(default_sets=["default"]), MemoryState(),
            channel_sets={"CHR": ["hr"]},
        )
        try:
            hr = core.handle(IncomingMessage("How many holiday days do employees get?", "U1", "CHR", "1.1"))
            other = core.handle(IncomingMessage("How many holiday days do employees get?", "U1", "CENG", "2.1"))
        finally:
            core.close()
    assert {c.source.rsplit("/", 1)[-1] for c in hr.citations} == {"holidays.md"}
    assert {c.source.rsplit("/", 1)[-1] for c in other.citations} <= {"deploys.md"}
    assert "25 holiday days" not in other.text


def test_changing_sets_retags_without_re_embedding(tmp_path):
    root = _corpus(tmp_path)
    first = fast_config(tmp_path / "data")
    second = fast_config(tmp_path / "data", ingest={"sets": [{"pattern": "docs/eng/**", "name": "eng"}]})
    with open_knowledge_base(first) as kb, open_ingestor(first, kb) as ingestor:
        assert ingestor.run([root]).embedded > 0
    with open_knowledge_base(second) as kb:
        with open_ingestor(second, kb) as ingestor:
            report = ingestor.run([root])
        tags = {p.source.rsplit("/", 1)[-1]: p.metadata["set"] for p in kb.search("deploys holidays", k=10)}
    assert report.updated == 2 and report.embedded == 0
    assert tags == {"deploys.md": "eng", "holidays.md": "default"}
