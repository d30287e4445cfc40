"""Reading what an operator provides: Q/A files, company example pairs, stored conversations.

Every reader returns plain `Pair`s and reports a bad input as a `DatasetError` naming the file and
line, so a typo in line 812 of a CSV is found without a debugger. Bitext-style answers carry
`{{Placeholder}}` names; `fill_placeholders` replaces the ones with a company value and turns the
rest into readable text, and `unfilled_placeholders` names those without a company value (such
an answer is not trained on: "your bill with the number your bill number"). `rephrase` rewords a
company question, for more examples per fact.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from ragtune.errors import UserInputError


class DatasetError(UserInputError):
    """A malformed input or dataset record, located by file and line."""


@dataclass
class Pair:
    question: str
    answer: str
    source: str  # "<file>:<line>"
    kind: str  # "qa" | "example" | "conversation"
    doc: str | None = None  # examples: the supporting document (path under the knowledge folder)
    quote: str | None = None  # examples: a verbatim sentence of that document
    topic: str = ""  # a title for a passage built from the answer (Bitext: the intent)
    history: list[tuple[str, str]] = field(default_factory=list)  # earlier (role, content) turns


def read_jsonl(path: Path):
    """(line number, object) for each non-blank line; a located DatasetError for anything else."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - opened apart from `with` to report a located error
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(data, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
            yield number, data


def _text(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: missing or empty '{key}'")
    return value.strip()


def read_qa(
    path: Path,
    limit: int | None,
    seed: int,
    question_field: str | None = None,
    answer_field: str | None = None,
    intents: list[str] | None = None,
) -> list[Pair]:
    """Q/A pairs from CSV or JSONL, only of `intents` when given; with `limit`, taken round-robin
    across intents (deterministic)."""
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                for row in reader:
                    rows.append((reader.line_num, row))
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc
    else:
        rows = list(read_jsonl(path))
    if intents is not None:
        wanted = set(intents)
        known = {str(row.get("intent") or "") for _, row in rows}
        if wanted - known:
            raise DatasetError(f"{path}: no rows of intent {', '.join(sorted(wanted - known))} (data.qa.intents)")
        rows = [(n, row) for n, row in rows if str(row.get("intent") or "") in wanted]
    pairs = []
    for number, row in rows:
        where = f"{path}:{number}"
        qf = question_field or ("question" if "question" in row else "instruction")
        af = answer_field or ("answer" if "answer" in row else "response")
        pairs.append(
            Pair(
                _text(row, qf, where),
                _text(row, af, where),
                where,
                "qa",
                topic=str(row.get("intent") or "").replace("_", " ").capitalize(),
            )
        )
    if limit is not None and len(pairs) > limit:
        by_topic: dict[str, list[Pair]] = defaultdict(list)
        for pair in pairs:
            by_topic[pair.topic].append(pair)
        rng = Random(seed)
        for group in by_topic.values():
            rng.shuffle(group)
        picked: list[Pair] = []
        groups = [by_topic[t] for t in sorted(by_topic)]
        while len(picked) < limit:
            for group in groups:
                if group and len(picked) < limit:
                    picked.append(group.pop())
        pairs = picked
    return pairs


def read_examples(path: Path) -> list[Pair]:
    pairs = []
    for number, data in read_jsonl(path):
        where = f"{path}:{number}"
        pairs.append(
            Pair(
                _text(data, "question", where),
                _text(data, "answer", where),
                where,
                "example",
                doc=_text(data, "doc", where),
                quote=_text(data, "quote", where),
            )
        )
    return pairs


def read_heldout(path: Path) -> list[dict]:
    questions = []
    for number, data in read_jsonl(path):
        where = f"{path}:{number}"
        _text(data, "question", where)
        kind = data.get("kind")
        if kind not in ("in_scope", "near_miss", "out_of_scope"):
            raise DatasetError(f"{where}: 'kind' must be in_scope, near_miss or out_of_scope")
        if kind == "in_scope":
            _text(data, "fact", where), _text(data, "doc", where)
        questions.append(data | {"source": where})
    return questions


def read_conversations(path: Path) -> list[Pair]:
    """The answers worth learning from in the chat API's store (its SQLite file) or a JSONL export.

    Only an answer the customer rated up, or one an admin corrected (JSONL `correction`: then the
    correction is the target), becomes a pair; a rated-down or unrated answer stays history only.
    The SQLite layout read here is the `messages` and `feedback` tables of
    serve/store/conversations.py (a turn is the 0-based index of an answer in its session); reading
    it directly keeps `train/` free of serving imports.
    """
    rows: list[tuple[str, str, str, str, str | None]] = []  # session, role, content, where, target
    if path.suffix in (".sqlite3", ".sqlite", ".db"):
        if not path.is_file():
            raise DatasetError(f"cannot read {path}: no such file")
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rated = {(s, t) for s, t in db.execute("SELECT session_id, turn FROM feedback WHERE rating = 'up'")}
            turns: dict[str, int] = defaultdict(int)
            for session, seq, role, content in db.execute(
                "SELECT session_id, seq, role, content FROM messages ORDER BY session_id, seq"
            ):
                target = None
                if role == "assistant":
                    target = content if (session, turns[session]) in rated else None
                    turns[session] += 1
                rows.append((session, role, content, f"{path}:{session}#{seq}", target))
        except sqlite3.DatabaseError as exc:
            raise DatasetError(f"{path}: not a ragtune conversation store ({exc})") from exc
        finally:
            db.close()
    else:
        for number, data in read_jsonl(path):
            where = f"{path}:{number}"
            session = str(data.get("session_id") or f"line{number}")
            answer = _text(data, "answer", where)
            correction = data.get("correction")
            target = correction.strip() if isinstance(correction, str) and correction.strip() else None
            if target is None and data.get("rating") == "up":
                target = answer
            rows.append((session, "user", _text(data, "question", where), where, None))
            rows.append((session, "assistant", answer, where, target))
    pairs: list[Pair] = []
    history: dict[str, list[tuple[str, str]]] = defaultdict(list)
    pending: dict[str, tuple[str, str]] = {}
    for session, role, content, where, target in rows:
        if role == "user":
            pending[session] = (content, where)
        elif role == "assistant" and session in pending:
            question, qwhere = pending.pop(session)
            if target is not None:
                pairs.append(
                    Pair(question, target, qwhere, "conversation", topic="Earlier conversation", history=list(history[session]))
                )
            history[session] += [("user", question), ("assistant", content)]
    return pairs


_LEAD_INS = ("hi, ", "quick question: ", "hello! ", "hey, ", "can you tell me ")


def rephrase(question: str, count: int, seed: int) -> list[str]:
    """Up to `count` rewordings of `question` as customers type it: lower case, no question mark, a
    greeting or lead-in in front (deterministic for a seed). They are templated, not paraphrased
    by meaning; what changes is the surface the model reads, and the evidence retrieved for it."""
    base = question.strip()
    plain = base.rstrip("?!. ")
    plain = plain[0].lower() + plain[1:] if plain[:1].isupper() and not plain[1:2].isupper() else plain
    rng = Random(f"{seed}\x00{base}")
    leads = list(_LEAD_INS)
    rng.shuffle(leads)
    variants = [plain.lower(), *(f"{lead}{plain}?" if not lead.startswith("can") else f"{lead}{plain}" for lead in leads)]
    out: list[str] = []
    for variant in variants:
        if variant != base and variant not in out:
            out.append(variant)
    return out[:count]


_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


def default_placeholders(company: str) -> dict[str, str]:
    """Company values for the common Bitext placeholders (the bundled knowledge base's facts)."""
    return {
        "Company Name": company,
        "Website Name": "website (northwind.example)",
        "Website URL": "northwind.example",
        "Live Chat": "the chat in our app",
        "Live Chat Support": "the chat in our app",
        "Customer Support Phone Number": "+49 30 1234 5678",
        "Support Phone Number": "+49 30 1234 5678",
        "Customer Support Email": "support@northwind.example",
        "Customer Support Email Address": "support@northwind.example",
        "Email": "support@northwind.example",
        "Customer Support Availability": "Monday to Friday from 08:00 to 20:00 CET",
        "Customer Support Hours": "Monday to Friday from 08:00 to 20:00 CET",
    }


def unfilled_placeholders(text: str, values: dict[str, str]) -> list[str]:
    """The `{{Placeholder}}` names in `text` without a company value."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) not in values]


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        if name.endswith("Anonymized"):  # a customer's own number: refer to it instead of inventing one
            return "your " + name[: -len("Anonymized")].strip().lower()
        return name  # UI labels such as {{Order History}} read fine as the label itself

    return _PLACEHOLDER.sub(replace, text)


_SENTENCE_END = re.compile(r"(?<=[^\d\s][.!?])\s+")  # not after "2." of a numbered list


def shorten(text: str, max_words: int) -> str:
    """Cut at the last sentence end before `max_words` words (keeps at least the first sentence)."""
    text = re.sub(r"[ \t]+", " ", text.replace("\r\n", "\n")).strip()
    if len(text.split()) <= max_words:
        return text
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if out and len(" ".join(out + [sentence]).split()) > max_words:
            break
        out.append(sentence)
    return " ".join(out)
