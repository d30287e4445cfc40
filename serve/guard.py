"""What serving never passes on from a document: planted instructions and contacts not allowed.

The chat service calls three things, and only these:
- `guard.evidence(evidence)` on the selected evidence sentences, before the hand-off decision:
  a sentence the planted-instruction detector flags (ragtune/injection.py), or one carrying an
  e-mail address, phone number or link the operator has not allowed (ragtune/contacts.py), is
  withheld: it is neither quoted, nor shown to the model, nor cited;
- `guard.answer(answer)` on every final answer (generated, extractive, hand-off; the native and
  OpenAI routes, streamed or not): contacts not allowed are replaced, so even a model that
  invents one cannot pass it on;
- `guard.stream()` for text sent while it is generated (generative mode's deltas): the same
  replacement, never sending half a contact (ragtune.contacts.StreamRedactor).
Each withheld sentence and each removed contact is reported to `events.withheld(reason, count)`
(metrics: `ragtune_withheld_total{reason}`).
"""

from __future__ import annotations

import logging
from typing import Any

from ragtune.answer import Answer
from ragtune.contacts import ContactPolicy, StreamRedactor
from ragtune.embedding import Embedder
from ragtune.errors import RagtuneError
from ragtune.grounding.evidence import Evidence
from ragtune.injection import InjectionDetector
from ragtune.settings import Settings

log = logging.getLogger("ragtune.chat")


class AnswerGuard:
    def __init__(self, settings: Settings, embedder: Embedder | None, events: Any = None):
        self.contacts = ContactPolicy.from_settings(settings)
        self._embedder = embedder
        self._detector: InjectionDetector | None = None
        self.events = events

    @property
    def detector(self) -> InjectionDetector:
        if self._detector is None:  # loaded on first use: an app that never answers needs no weights
            self._detector = InjectionDetector(self._embedder)
        return self._detector

    def _report(self, reason: str, count: int) -> None:
        report = getattr(self.events, "withheld", None)
        if count and report is not None:
            report(reason, count)

    def evidence(self, evidence: list[Evidence]) -> list[Evidence]:
        """The evidence without planted instructions and sentences carrying contacts not allowed."""
        if not evidence:
            return evidence
        try:
            planted = self.detector.flagged([e.sentence for e in evidence])
        except (RagtuneError, OSError, ValueError) as exc:  # no verdict: nothing unchecked is shown
            log.warning("planted-instruction check failed, withholding the evidence: %s", exc)
            planted = [True] * len(evidence)
        kept, instructions, contacts = [], 0, 0
        for item, flagged in zip(evidence, planted, strict=True):
            if flagged:
                instructions += 1
            elif self.contacts.disallowed(item.sentence):
                contacts += 1
            else:
                kept.append(item)
        self._report("instruction", instructions)
        self._report("contact", contacts)
        return kept

    def answer(self, answer: Answer) -> Answer:
        """The answer with contacts not allowed replaced in its text."""
        removed = len(self.contacts.disallowed(answer.answer))
        if not removed:
            return answer
        self._report("answer_contact", removed)
        return answer.model_copy(update={"answer": self.contacts.redact(answer.answer)})

    def stream(self) -> StreamRedactor:
        return self.contacts.stream()
