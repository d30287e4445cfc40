"""The examples `ragtune train selector` fits on (train/selector.py), read and checked.

- question -> quote pairs (JSONL: question, doc, quote): the evidence selector's positives, and
  known answerable questions;
- hand-off examples (JSONL: question, kind): questions the documents do not answer, with why
  (another company's product, a near miss, out of scope), and intents (person, angry, action, info);
- held-out style questions (JSONL: question, kind, doc): answerability's and intent's examples;
- words labelled brand / word, for the brand model;
- optionally a support corpus with intent labels (Bitext layout: instruction, intent).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.grounding.answerability import ACTION, ANGRY, INFO, PERSON
from ragtune.grounding.known import KnownQuestions

# Bitext intents (an e-commerce support corpus) as this assistant's intents.
BITEXT_INTENTS = {
    "contact_human_agent": PERSON,
    "contact_customer_service": PERSON,
    "complaint": ANGRY,
    "cancel_order": ACTION,
    "change_order": ACTION,
    "delete_account": ACTION,
    "edit_account": ACTION,
    "switch_account": ACTION,
    "get_refund": ACTION,
    "change_shipping_address": ACTION,
    "set_up_shipping_address": ACTION,
    "place_order": ACTION,
}
UNANSWERABLE = {"other_company", "near_miss", "near_scope", "out_of_scope"}
# A question asking how to do something wants the self-service steps, not the action done for it:
# Bitext labels "how can I cancel my order?" and "cancel my order" alike, this assistant does not.
_ASKS_HOW = re.compile(
    r"^\W*(?:(?:i (?:want|need|would like|'d like) to )?(?:know |see |find out |learn )?(?:how|where|what|when|which|why)\b"
    r"|(?:can|could) (?:i|you tell me|u tell me)\b|is it possible|do you|is there|are there|tell me how|help me (?:to )?(?:know|see|find|check))",
    re.I,
)


def corpus_intent(intent: str, instruction: str) -> str:
    """This assistant's intent for a labelled corpus row (Bitext layout)."""
    label = BITEXT_INTENTS.get(intent, INFO)
    if label == ACTION or intent == "contact_customer_service":
        return INFO if _ASKS_HOW.search(instruction) else label
    return label


_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")


@dataclass
class SelectorData:
    pairs: list[dict[str, Any]]  # question, doc, quote
    answerable: list[dict[str, Any]]  # question, label (1 answerable / 0 not), kind
    intents: list[tuple[str, str, str]]  # (text, intent, source)
    words: list[tuple[str, int]] = field(default_factory=list)  # (word, 1 another company's product / 0 ordinary)
    # (question, doc, quote, answerable, kind: why an unanswerable one is, "" for an answerable one)
    known: list[tuple[str, str, str, int, str]] = field(default_factory=list)

    def known_questions(self, index_docs: list[str]) -> KnownQuestions:
        """The examples as known questions, judged against an index of `index_docs`."""
        k = self.known
        return KnownQuestions(
            [r[0] for r in k], [r[1] for r in k], [r[2] for r in k], [r[3] for r in k], None, "", index_docs, [r[4] for r in k]
        )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON ({exc.msg}); fix or remove the line") from None
    return rows


def load_data(
    pairs: list[Path], handoff: list[Path], heldout: list[Path], intents_csv: Path | None, words: Path | None = None
) -> SelectorData:
    data = SelectorData([], [], [])
    if words is not None:
        for number, line in enumerate(words.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            label, _, word = line.strip().partition(" ")
            if label not in ("brand", "word") or not word:
                raise ValueError(f"{words}:{number}: expected 'brand WORD' or 'word WORD'")
            data.words.append((word.lower(), int(label == "brand")))
    for path in pairs:
        for row in _read_jsonl(path):
            if row.get("question") and row.get("quote") and row.get("doc"):
                data.pairs.append({"question": row["question"], "doc": row["doc"], "quote": row["quote"]})
                data.intents.append((row["question"], INFO, "own"))
                data.known.append((row["question"], row["doc"], row["quote"], 1, ""))
    for path in heldout:
        for row in _read_jsonl(path):
            kind = row.get("kind", "in_scope")
            if kind == "injection" or not row.get("question") or row.get("language", "en") != "en":
                continue  # conversations (turns) and other languages are not single English questions
            reason = row.get("handoff_reason")
            if kind == "handoff" and reason in (PERSON, ANGRY, ACTION):
                data.intents.append((row["question"], reason, "own"))
                continue
            if kind == "handoff":
                kind = "out_of_scope" if reason in (None, "other_company", "out_of_scope") else reason
            doc = row.get("doc") or (row.get("expected_paths") or [""])[0]
            data.answerable.append({"question": row["question"], "label": int(kind == "in_scope"), "kind": kind, "doc": doc})
            data.intents.append((row["question"], INFO, "own"))
    for path in handoff:
        for row in _read_jsonl(path):
            kind = row["kind"]
            if kind in UNANSWERABLE:
                data.answerable.append({"question": row["question"], "label": 0, "kind": kind})
                data.intents.append((row["question"], INFO, "own"))
                data.known.append((row["question"], "", "", 0, kind))
            elif kind == "in_scope":
                data.answerable.append({"question": row["question"], "label": 1, "kind": kind, "doc": str(row.get("doc", ""))})
                data.intents.append((row["question"], INFO, "own"))
                data.known.append((row["question"], str(row.get("doc", "")), "", 1, ""))
            elif kind in (PERSON, ANGRY, ACTION, INFO):
                data.intents.append((row["question"], kind, "own"))
            else:
                raise ValueError(
                    f"{path}: unknown kind {kind!r} (use in_scope, other_company, near_miss, out_of_scope, person, angry, action, info)"
                )
    if intents_csv is not None:
        with open(intents_csv, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                text = _PLACEHOLDER.sub("it", row["instruction"]).strip()
                data.intents.append((text, corpus_intent(row["intent"], text), "corpus"))
    return data


def data_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
