"""Check train/examples/paraphrases.jsonl against the live index and print its coverage.

Every line must be a JSON object with question, doc, quote and style; the quote must appear
(whitespace collapsed, case-sensitive) in one unit (`ragtune.grounding.text.units`) of one of its
document's chunks, as the last `ragtune ingest` stored them. A two-document line adds doc2 and quote2.
Coverage: the units holding at least one quote / all units of all documents.

    PYTHONPATH=$PWD .venv/bin/python scripts/check_pairs.py [FILE] [--missing] [--dump DOC]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from ragtune.grounding.text import collapse, units
from ragtune.index import KnowledgeIndex
from ragtune.settings import load_settings

STYLES = {"plain", "casual", "synonym", "typo", "short", "yes_no", "shouting", "two_document"}
DEFAULT = Path("train/examples/paraphrases.jsonl")


def document_units() -> dict[str, list[str]]:
    """Each document's distinct units (in reading order), from the current index version's chunks."""
    index = KnowledgeIndex(load_settings())
    version = index.current_version()
    if version is None:
        sys.exit("no knowledge index: run `PYTHONPATH=$PWD .venv/bin/python -m cli ingest` first")
    out: dict[str, list[str]] = defaultdict(list)
    for chunk in sorted(index.read_chunks(version), key=lambda c: (c.doc_id, c.position)):
        for unit in units(chunk.text):
            if unit.text not in out[chunk.doc_id]:
                out[chunk.doc_id].append(unit.text)
    return out


def rows(path: Path, problems: list[str]) -> Iterator[tuple[int, str, dict]]:
    """(line number, "path:line", object) for each non-blank line; a line that is not JSON goes to `problems`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield number, where, json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not JSON ({exc.msg})")


def check(path: Path, docs: dict[str, list[str]]) -> tuple[list[str], set[tuple[str, str]], Counter]:
    """(problems, covered (doc, unit) pairs, lines per style)."""
    problems: list[str] = []
    covered: set[tuple[str, str]] = set()
    styles: Counter = Counter()
    seen: dict[str, int] = {}
    for number, where, row in rows(path, problems):
        missing = [k for k in ("question", "doc", "quote", "style") if not row.get(k)]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        if row["style"] not in STYLES:
            problems.append(f"{where}: style {row['style']!r} is not one of {sorted(STYLES)}")
        if row["style"] == "two_document" and not (row.get("doc2") and row.get("quote2")):
            problems.append(f"{where}: a two_document line needs doc2 and quote2")
        key = collapse(row["question"]).lower()
        if key in seen:
            problems.append(f"{where}: the same question as line {seen[key]}")
        seen[key] = number
        styles[row["style"]] += 1
        for doc_key, quote_key in (("doc", "quote"), ("doc2", "quote2")):
            if not row.get(doc_key):
                continue
            doc, quote = row[doc_key], collapse(row.get(quote_key, ""))
            if doc not in docs:
                problems.append(f"{where}: {doc_key} {doc!r} is not a document of the index")
                continue
            hits = [u for u in docs[doc] if quote and quote in u]
            if not hits:
                problems.append(f"{where}: {quote_key} {quote!r} is not in one unit of {doc}")
            covered.update((doc, u) for u in hits)
    return problems, covered, styles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--missing", action="store_true", help="list the units no quote covers")
    parser.add_argument("--dump", metavar="DOC", help="print a document's units (or 'all') and stop")
    args = parser.parse_args(argv)
    docs = document_units()
    if args.dump:
        for doc, texts in sorted(docs.items()):
            if args.dump in ("all", doc):
                for i, text in enumerate(texts):
                    print(f"{doc}\t{i}\t{text}")
        return 0
    problems, covered, styles = check(args.file, docs)
    total = sum(len(t) for t in docs.values())
    if args.missing:
        for doc, texts in sorted(docs.items()):
            for text in texts:
                if (doc, text) not in covered:
                    print(f"uncovered {doc}: {text}")
    print(f"coverage: {len(covered)}/{total} units ({100 * len(covered) / max(total, 1):.1f}%)")
    print("styles: " + ", ".join(f"{s} {n}" for s, n in styles.most_common()))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
