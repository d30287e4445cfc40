"""What the chat service reports as it answers: the seam between it and metrics and logs.

`ChatService` takes an optional `events` collaborator and calls it at each step that an operator
wants counted (retrieval and generation times, a reply that broke the JSON contract, a retry,
citations corrected, verification rejections, the answer and its mode). The service knows nothing
of Prometheus or log lines: `serve/metrics.py` and `serve/request_log.py` implement this protocol,
and `Events` hands each call to all of them. Every method must be cheap and must not raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from serve.schemas import ChatResponse


class ChatEvents(Protocol):
    def retrieved(self, seconds: float) -> None:
        """Retrieval for one question took `seconds`."""

    def generated(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        """One engine generation (a first reply or a retry) finished."""

    def invalid_reply(self, retried: bool) -> None:
        """A reply broke the answer's JSON contract; `retried`: another generation follows."""

    def verification_rejected(self, reasons: list[str]) -> None:
        """A generated reply failed verification against the evidence (ragtune/grounding/verify.py)."""

    def citations_corrected(self, kind: str, count: int) -> None:
        """Citations were corrected: kind "dropped" (ids naming no source, removed) or "filled"
        (the model cited no existing source, so every evidence sentence is cited)."""

    def answered(self, question: str, response: ChatResponse) -> None:
        """An answer is ready (every mode: generated, extractive, handoff, no_evidence)."""

    def withheld(self, reason: str, count: int) -> None:
        """serve/guard.py kept something from a customer: reason "instruction" (an evidence sentence read
        as an instruction to the assistant), "contact" (one carrying a contact not allowed), or
        "answer_contact" (a contact removed from answer text)."""


class Events:
    """Fans each event out to several observers (metrics, the request log)."""

    def __init__(self, *observers: ChatEvents):
        self.observers = list(observers)

    def retrieved(self, seconds: float) -> None:
        for o in self.observers:
            o.retrieved(seconds)

    def generated(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        for o in self.observers:
            o.generated(seconds, prompt_tokens, completion_tokens)

    def invalid_reply(self, retried: bool) -> None:
        for o in self.observers:
            o.invalid_reply(retried)

    def verification_rejected(self, reasons: list[str]) -> None:
        for o in self.observers:
            o.verification_rejected(reasons)

    def citations_corrected(self, kind: str, count: int) -> None:
        for o in self.observers:
            o.citations_corrected(kind, count)

    def answered(self, question: str, response: ChatResponse) -> None:
        for o in self.observers:
            o.answered(question, response)

    def withheld(self, reason: str, count: int) -> None:
        for o in self.observers:
            o.withheld(reason, count)
