"""Answer evaluation sets: the schema of a questions file and its loader.

A file holds JSON lines of two shapes (blank lines are skipped):

- a single question: {"id", "kind", "question", "expected_paths", "facts", ...}
- a conversation: {"id", "category", "turns": [question, ...]}: its turns are sent in order in one
  session, each seeing the history, as a support widget would.

Fields of a question (only id, kind and question are required; old sets with just
id/kind/question/expected_paths/facts load unchanged):
- kind: in_scope (answered, no hand-off), out_of_scope, near_scope (hand-off), handoff (hand-off
  for a `handoff_reason`: other_company, person, angry, action), language (a German or French
  question: answered with the facts, or handed off in the customer's language), injection.
- category: the finer label per-category scores are grouped by (default: the kind).
- facts: any one of these strings must be in the answer; facts_all: a list of such any-of groups,
  every group must be matched (two-document questions). For a hand-off kind, facts are the
  self-service steps the hand-off must still give.
- expected_paths: a cited source must be one of these; paths_all: any-of groups, each must be cited.
- handoff_reason, yes_no ("yes"/"no": the first sentence must say so), language ("en"/"de"/"fr":
  the language the reply must be in when it is a hand-off), no_repeat (a follow-up whose answer
  must not repeat the previous answer), avoid (strings the answer must not contain).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import UserInputError

KINDS = ("in_scope", "out_of_scope", "near_scope", "injection", "handoff", "language")
HANDOFF_KINDS = ("out_of_scope", "near_scope", "handoff")
REASONS = ("out_of_scope", "near_miss", "other_company", "person", "angry", "action", "language")
LANGUAGES = ("en", "de", "fr")
QUESTION_KEYS = {
    "id",
    "kind",
    "category",
    "question",
    "expected_paths",
    "paths_all",
    "facts",
    "facts_all",
    "handoff_reason",
    "yes_no",
    "language",
    "no_repeat",
    "avoid",
}


@dataclass
class Question:
    id: str
    kind: str
    question: str
    expected_paths: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    facts_all: list[list[str]] = field(default_factory=list)
    paths_all: list[list[str]] = field(default_factory=list)
    category: str = ""
    handoff_reason: str | None = None
    yes_no: str | None = None
    language: str | None = None
    no_repeat: bool = False
    avoid: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.category = self.category or self.kind

    @property
    def fact_groups(self) -> list[list[str]]:
        """Every group must be matched by one of its strings."""
        return ([self.facts] if self.facts else []) + [g for g in self.facts_all if g]

    @property
    def expects_handoff(self) -> bool | None:
        """Whether a right reply is a hand-off; None where either can be right."""
        if self.kind == "in_scope":
            return False
        if self.kind in HANDOFF_KINDS:
            return True
        if self.kind == "language":
            return True if not self.fact_groups else None
        return None


@dataclass
class Conversation:
    id: str
    category: str
    turns: list[Question]


@dataclass
class AnswerSet:
    questions: list[Question] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)

    def limited(self, n: int | None) -> AnswerSet:
        """The first n questions and the first n conversations."""
        return self if n is None else AnswerSet(self.questions[:n], self.conversations[:n])


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name} must be a list of strings")
    return list(value)


def _groups(value: Any, name: str) -> list[list[str]]:
    if not isinstance(value, list) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in value):
        raise TypeError(f"{name} must be a list of lists of strings (each list: alternatives, any one will do)")
    return [list(v) for v in value]


def parse_question(data: dict[str, Any], default_id: str | None = None) -> Question:
    """One question from its JSON object; raises ValueError/TypeError/KeyError saying what is wrong."""
    unknown = sorted(set(data) - QUESTION_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(QUESTION_KEYS))}")
    q = Question(
        id=str(data["id"]) if "id" in data or default_id is None else default_id,
        kind=data["kind"],
        question=data["question"],
        expected_paths=_strings(data.get("expected_paths", []), "expected_paths"),
        facts=_strings(data.get("facts", []), "facts"),
        facts_all=_groups(data.get("facts_all", []), "facts_all"),
        paths_all=_groups(data.get("paths_all", []), "paths_all"),
        category=str(data.get("category") or ""),
        handoff_reason=data.get("handoff_reason"),
        yes_no=data.get("yes_no"),
        language=data.get("language"),
        no_repeat=bool(data.get("no_repeat", False)),
        avoid=_strings(data.get("avoid", []), "avoid"),
    )
    if not isinstance(q.question, str) or not q.question.strip():
        raise ValueError("question must be a non-empty string")
    if q.kind not in KINDS:
        raise ValueError(f"kind {q.kind!r} is not one of {', '.join(KINDS)}")
    if q.handoff_reason is not None and q.handoff_reason not in REASONS:
        raise ValueError(f"handoff_reason {q.handoff_reason!r} is not one of {', '.join(REASONS)}")
    if q.yes_no not in (None, "yes", "no"):
        raise ValueError(f"yes_no {q.yes_no!r} must be 'yes' or 'no'")
    if q.language is not None and q.language not in LANGUAGES:
        raise ValueError(f"language {q.language!r} is not one of {', '.join(LANGUAGES)}")
    if q.kind == "language" and q.language is None:
        raise ValueError("a language question needs its language (de, fr, en)")
    return q


def _parse_line(data: Any) -> Question | Conversation:
    if not isinstance(data, dict):
        raise TypeError("a line must be a JSON object")
    if "turns" not in data:
        return parse_question(data)
    extra = sorted(set(data) - {"id", "category", "turns"})
    if extra:
        raise ValueError(f"a conversation has only id, category and turns, not {', '.join(extra)}")
    turns = data["turns"]
    if not isinstance(turns, list) or not turns:
        raise ValueError("turns must be a non-empty list of questions")
    cid = str(data["id"])
    parsed = [parse_question(t, default_id=f"{cid}.{i}") for i, t in enumerate(turns, start=1)]
    return Conversation(id=cid, category=str(data.get("category") or "conversation"), turns=parsed)


def load_set(paths: Path | list[Path]) -> AnswerSet:
    """Read one or more questions files; a malformed line is a one-line user error naming the line."""
    result = AnswerSet()
    seen: set[str] = set()
    for path in [paths] if isinstance(paths, Path | str) else paths:
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UserInputError(f"cannot read questions file {path}: {exc.strerror}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = _parse_line(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise UserInputError(f"{path}:{number}: not a question line ({detail})") from exc
            if item.id in seen:
                raise UserInputError(f"{path}:{number}: id {item.id!r} is used twice")
            seen.add(item.id)
            if isinstance(item, Conversation):
                result.conversations.append(item)
            else:
                result.questions.append(item)
    if not result.questions and not result.conversations:
        raise UserInputError(
            f"{', '.join(str(p) for p in ([paths] if isinstance(paths, Path | str) else paths))} holds no questions"
        )
    return result


def load_questions(path: Path) -> list[Question]:
    """The single questions of a file (conversations are left out): what the older callers read."""
    questions = load_set(Path(path)).questions
    if not questions:
        raise UserInputError(f"{path} holds no single questions (only conversations)")
    return questions
