"""Check train/examples/conversations.jsonl against the live index.

Every line is one conversation: {"id": ..., "turns": [turn, ...]} with two to four turns. A turn is
{"question": ..., "kind": "in_scope", "doc": ..., "quotes": [...], "follow": ...} or
{"question": ..., "kind": "handoff", "reason": ..., "follow": ...}: each quote must appear
(whitespace collapsed, case-sensitive) in one unit of the document, as the last `ragtune ingest`
stored them (scripts/check_pairs.py); "follow" (not on the first turn) names how the turn leans on
the conversation (FOLLOWS). An in_scope turn may add "also": [{"doc": ..., "quote": ...}], units of
other documents that answer it as well.

    PYTHONPATH=$PWD .venv/bin/python scripts/check_conversations.py [FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ragtune.grounding.text import collapse
from scripts.check_pairs import document_units, rows

DEFAULT = Path("train/examples/conversations.jsonl")
FOLLOWS = {"reference", "same_topic", "switch", "alternative", "still_stuck", "next_step", "two_back", "handoff"}
REASONS = {"action", "person", "angry", "other_company", "near_miss", "out_of_scope"}


def check(path: Path, docs: dict[str, list[str]]) -> tuple[list[str], Counter]:
    """(problems, turns per kind of follow-up)."""
    problems: list[str] = []
    follows: Counter = Counter()
    ids: set[str] = set()
    for _, where, row in rows(path, problems):
        if not row.get("id") or row["id"] in ids:
            problems.append(f"{where}: a missing or repeated id")
        ids.add(row.get("id", ""))
        turns = row.get("turns") or []
        if not 2 <= len(turns) <= 4:
            problems.append(f"{where}: {len(turns)} turns (two to four)")
        for i, turn in enumerate(turns):
            at = f"{where} turn {i + 1}"
            if not turn.get("question"):
                problems.append(f"{at}: no question")
            if i and turn.get("follow") not in FOLLOWS:
                problems.append(f"{at}: follow {turn.get('follow')!r} is not one of {sorted(FOLLOWS)}")
            follows[turn.get("follow", "first") if i else "first"] += 1
            if turn.get("kind") == "handoff":
                if turn.get("reason") not in REASONS:
                    problems.append(f"{at}: reason {turn.get('reason')!r} is not one of {sorted(REASONS)}")
                continue
            if turn.get("kind") != "in_scope":
                problems.append(f"{at}: kind must be in_scope or handoff")
                continue
            doc = turn.get("doc")
            if doc not in docs:
                problems.append(f"{at}: doc {doc!r} is not a document of the index")
                continue
            quotes = turn.get("quotes") or []
            if not quotes:
                problems.append(f"{at}: no quotes")
            for quote in quotes:
                if not any(collapse(quote) and collapse(quote) in u for u in docs[doc]):
                    problems.append(f"{at}: quote {quote!r} is not in one unit of {doc}")
            for other in turn.get("also") or []:  # the same answer in another document
                if other.get("doc") not in docs:
                    problems.append(f"{at}: also doc {other.get('doc')!r} is not a document of the index")
                elif not any(collapse(other.get("quote", "")) and collapse(other["quote"]) in u for u in docs[other["doc"]]):
                    problems.append(f"{at}: also quote {other.get('quote')!r} is not in one unit of {other['doc']}")
    return problems, follows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    problems, follows = check(args.file, document_units())
    print("turns: " + ", ".join(f"{k} {n}" for k, n in follows.most_common()))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
