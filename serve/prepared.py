"""The state of one answer: the per-request options and everything decided before the model is called."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ragtune.documents import Hit
from ragtune.grounding.answerability import Decision
from ragtune.grounding.compose import composed_units
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.followup import Said
from ragtune.grounding.polarity import Alternatives
from ragtune.grounding.verify import Similarity
from ragtune.prompt import NumberedSources, Turn
from ragtune.retriever import RetrievalResult
from serve.schemas import Usage


@dataclass(frozen=True)
class AnswerOptions:
    """Per-request sampling (the OpenAI route's temperature and max_tokens); None keeps the settings'.

    The service clamps them: temperature to [0, 2], max_tokens to [MIN_ANSWER_TOKENS, llm.max_tokens]
    (serve/prompting.py)."""

    temperature: float | None = None
    max_tokens: int | None = None


@dataclass
class Prepared:
    """Everything decided before the model is called."""

    session_id: str
    question: str
    query: str
    history: list[Turn]
    retrieval: RetrievalResult
    relevant: list[Hit]
    evidence: list[Evidence] = field(default_factory=list)
    parts: int = 1  # questions asked in one message, each with its own evidence
    decision: Decision = field(default_factory=lambda: Decision(False))
    ranked: list[Evidence] = field(default_factory=list)
    said: Said = field(default_factory=lambda: Said([]))
    language: str = "en"
    sources: NumberedSources | None = None
    omitted: list[Evidence] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int | None = None
    budget: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    persist: bool = True
    use_model: bool = False
    options: AnswerOptions = field(default_factory=AnswerOptions)
    usage: Usage = field(default_factory=Usage)
    turn: int = 0  # this answer's index in the session (the store's count when persisted)
    alternatives: Alternatives = field(default_factory=Alternatives)  # names listed side by side (a direct "No")
    similarity: Similarity | None = None  # of two texts, by the embedding model: does a phrased answer restate the composed one
    _composition: tuple[tuple[int, ...], list[tuple[str, Evidence]]] | None = field(default=None, repr=False)

    def composed(self) -> list[tuple[str, Evidence]]:
        """The extractive answer's rendered units in reading order (ragtune/grounding/compose.py),
        composed once for the evidence as it stands (packing the prompt may drop some of it)."""
        key = (*map(id, self.evidence), self.parts)
        if self._composition is None or self._composition[0] != key:
            self._composition = (key, composed_units(self.evidence, self.said, parts=self.parts))
        return self._composition[1]

    @property
    def previous_question(self) -> str | None:
        asked = [t.content for t in self.history if t.role == "user"]
        return asked[-1] if asked else None

    @property
    def outcome(self) -> str:
        if not self.relevant:
            return "no_evidence" if not self.decision.handoff or self.decision.reason == "no_evidence" else "handoff"
        if self.decision.handoff:
            return "no_evidence" if self.decision.reason == "no_evidence" else "handoff"
        return "answer"


def ms(start: float) -> float:
    """Milliseconds since `start` (a time.perf_counter() reading), as the timings report them."""
    return round((time.perf_counter() - start) * 1000, 2)
