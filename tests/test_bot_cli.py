"""`ragbot serve slack` refusals and `ragbot feedback`."""

from __future__ import annotations

import json

from bot.cli import main
from dataclasses import asdict

from bot.feedback import Feedback


def test_serve_slack_names_the_missing_token(tmp_path, monkeypatch, capsys):
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path))
    assert main(["serve", "slack"]) == 1
    assert "SLACK_BOT_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    assert main(["serve", "slack", "--mode", "http"]) == 1
    err = capsys.readouterr().err
    assert "SLACK_SIGNING_SECRET is not set" in err and "xoxb-secret-value" not in err
    assert main(["serve", "slack"]) == 1
    assert "SLACK_APP_TOKEN is not set" in capsys.readouterr().err


def test_feedback_lists_votes_of_an_old_feedback_jsonl_imported_once(tmp_path, monkeypatch, capsys):
    """An earlier version's feedback.jsonl shows in `ragbot feedback`, and is not counted twice on the next run."""
    monkeypatch.setenv("RAGBOT_DATA_DIR", str(tmp_path))
    old = [
        Feedback(True, "U1", "slack", "C1", "Who can re-ingest?", "Admins [1].", [{"n": 1, "source": "/d/faq.md"}], at=1.0),
        Feedback(False, "U2", "slack", "C1", "Holidays?", "No idea.", at=2.0),
    ]
    (tmp_path / "feedback.jsonl").write_text("".join(json.dumps(asdict(v)) + "\n" for v in old) + "not json\n", encoding="utf-8")
    assert main(["feedback"]) == 0
    out = capsys.readouterr().out
    assert "2 vote(s): 1 helpful, 1 not helpful" in out and "faq.md" in out
    assert main(["feedback"]) == 0
    out = capsys.readouterr().out
    assert "2 vote(s): 1 helpful, 1 not helpful" in out and "faq.md" in out
    assert main(["feedback", "--json"]) == 0
    votes = json.loads(capsys.readouterr().out)
    assert votes[0]["question"] == "Who can re-ingest?" and votes[1]["helpful"] is False


def test_serve_discord_names_the_missing_token(monkeypatch, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["serve", "discord"]) == 1
    err = capsys.readouterr().err
    assert "DISCORD_TOKEN is not set" in err and "Discord section" in err
