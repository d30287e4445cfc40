"""scripts/check_pairs.py: a quote must sit in one unit of its document; bad lines are named by number."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_pairs.py"
spec = importlib.util.spec_from_file_location("check_pairs", SCRIPT)
assert spec and spec.loader
check_pairs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pairs)

DOCS = {
    "faq/a.md": ["The reset link is valid for 1 hour.", "If no email arrives within 10 minutes, check the spam folder."],
    "faq/b.md": ["Links on the Free plan expire after 7 days."],
}


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_good_lines_cover_their_units(tmp_path):
    rows = [
        {"question": "how long is the reset link good for", "doc": "faq/a.md", "quote": "valid for  1 hour", "style": "typo"},
        {
            "question": "reset link and free links?",
            "doc": "faq/a.md",
            "quote": "valid for 1 hour",
            "doc2": "faq/b.md",
            "quote2": "expire after 7 days",
            "style": "two_document",
        },
    ]
    problems, covered, styles = check_pairs.check(_write(tmp_path, rows), DOCS)
    assert problems == []
    assert covered == {("faq/a.md", DOCS["faq/a.md"][0]), ("faq/b.md", DOCS["faq/b.md"][0])}
    assert styles == {"typo": 1, "two_document": 1}


def test_bad_lines_are_named_by_number(tmp_path):
    rows = [
        {"question": "q1", "doc": "faq/a.md", "quote": "Valid for 1 hour", "style": "plain"},  # case differs
        {"question": "q2", "doc": "faq/c.md", "quote": "x", "style": "plain"},
        {"question": "q3", "doc": "faq/a.md", "quote": "1 hour. If no email", "style": "plain"},  # spans two units
        {"question": "q4", "doc": "faq/a.md", "quote": "valid for 1 hour", "style": "loud"},
        {"question": "Q1", "doc": "faq/b.md", "quote": "7 days", "style": "plain"},
    ]
    problems, _, _ = check_pairs.check(_write(tmp_path, rows), DOCS)
    text = "\n".join(problems)
    assert ":1: quote 'Valid for 1 hour' is not in one unit of faq/a.md" in text
    assert ":2: doc 'faq/c.md' is not a document of the index" in text
    assert ":3: quote" in text
    assert ":4: style 'loud'" in text
    assert ":5: the same question as line 1" in text
