"""scripts/check_conversations.py: every quote sits in one unit of its document, every follow-up says how it leans on the conversation."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_conversations.py"
spec = importlib.util.spec_from_file_location("check_conversations", SCRIPT)
assert spec and spec.loader
check_conversations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_conversations)

DOCS = {
    "faq/a.md": ["The reset link is valid for 1 hour.", "If no email arrives within 10 minutes, check the spam folder."],
    "faq/b.md": ["Links on the Free plan expire after 7 days."],
}


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "conversations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_good_conversation_passes_and_is_counted_by_follow_up_kind(tmp_path):
    turns = [
        {"question": "forgot my password", "kind": "in_scope", "doc": "faq/a.md", "quotes": ["valid for 1 hour"]},
        {
            "question": "no email came",
            "kind": "in_scope",
            "doc": "faq/a.md",
            "quotes": ["check the  spam folder"],
            "follow": "still_stuck",
        },
        {"question": "reset it for me", "kind": "handoff", "reason": "action", "follow": "handoff"},
    ]
    problems, follows = check_conversations.check(_write(tmp_path, [{"id": "c1", "turns": turns}]), DOCS)
    assert problems == []
    assert follows == {"first": 1, "still_stuck": 1, "handoff": 1}


def test_bad_lines_are_named_with_what_is_wrong(tmp_path):
    rows = [
        {"id": "c1", "turns": [{"question": "hi", "kind": "in_scope", "doc": "faq/a.md", "quotes": ["valid for 1 hour"]}]},
        {
            "id": "c1",
            "turns": [
                {"question": "links?", "kind": "in_scope", "doc": "faq/b.md", "quotes": ["expire after 9 days"]},
                {"question": "and then", "kind": "in_scope", "doc": "faq/c.md", "quotes": ["x"], "follow": "sideways"},
                {"question": "bye", "kind": "handoff", "reason": "bored", "follow": "handoff"},
            ],
        },
    ]
    problems, _ = check_conversations.check(_write(tmp_path, rows), DOCS)
    text = "\n".join(problems)
    assert ":1: 1 turns (two to four)" in text
    assert ":2: a missing or repeated id" in text
    assert "turn 1: quote 'expire after 9 days' is not in one unit of faq/b.md" in text
    assert "turn 2: follow 'sideways' is not one of" in text and "turn 2: doc 'faq/c.md' is not a document" in text
    assert "turn 3: reason 'bored' is not one of" in text
