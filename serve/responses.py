"""The answers made without the model (extractive, hand-off) and the ChatResponse every answer becomes."""

from __future__ import annotations

import re

from ragtune.answer import Answer
from ragtune.documents import Hit
from ragtune.grounding.compose import compose, join, restated
from ragtune.grounding.evidence import Evidence
from ragtune.grounding.features import holds
from ragtune.grounding.messages import REASON_TEXT, message
from ragtune.grounding.polarity import follows_with_no, lead_with_no, says_no
from ragtune.grounding.text import Unit, is_row
from ragtune.settings import Settings
from serve.citations import evidence_citations
from serve.engines import Engine
from serve.prepared import Prepared
from serve.schemas import ChatResponse, ContextReport, EvidenceItem, Source, Verification


def confidence(settings: Settings, p: Prepared) -> str:
    return "high" if p.decision.answerable >= settings.chat.high_confidence else "medium"


def extractive(settings: Settings, p: Prepared) -> Answer:
    """The answer composed from the evidence sentences, no model (also auto mode's fallback)."""
    pieces = p.composed()
    used = [e for _, e in pieces]
    return Answer(
        answer=_joined(p, pieces), citations=evidence_citations(used), confidence=confidence(settings, p), handoff=False
    )


def composed_answer(p: Prepared) -> tuple[str, str]:
    """(lead unit, whole text) of the extractive answer: what a phrased answer must restate."""
    pieces = p.composed()
    return (pieces[0][0] if pieces else ""), _joined(p, pieces)


def leads_with_row(p: Prepared) -> bool:
    """Whether the composed answer leads with a table or spreadsheet row: data the server renders
    as it is (ragtune/grounding/compose.py `row_sentence`), not prose for the model to rephrase (a
    small model moves a row's figures onto the next row's name)."""
    pieces = p.composed()
    unit = pieces[0][1].unit if pieces else None
    return unit is not None and (unit.kind == "row" or is_row(unit.text))


def phrased_with_rest(p: Prepared, phrased: str) -> tuple[str, list[Evidence]]:
    """A verified phrased answer, then the composed answer's further units it does not restate (a
    small model phrases the lead and leaves out the second part's fact), with the evidence added."""
    rest = [(text, e) for text, e in p.composed()[1:] if not restated(text, phrased)]
    return join([phrased, *(text for text, _ in rest)]), [e for _, e in rest]


def _joined(p: Prepared, pieces: list[tuple[str, Evidence]]) -> str:
    """The composed units as one answer, led by "No," when the lead says no to a yes/no question."""
    text = join([t for t, _ in pieces])
    if not pieces or p.parts != 1:
        return text
    lead = pieces[0][1]
    if says_no(p.question, lead.sentence, p.alternatives, p.previous_question):
        return lead_with_no(text, p.alternatives.proper)  # "is the Vault on Free?" -> "No, the Vault is included in Pro, ..."
    follower = pieces[1][1] if len(pieces) > 1 else None
    if (
        follower is not None
        and follower.chunk_id == lead.chunk_id
        and follower.position == lead.position + 1
        and follows_with_no(p.question, lead.sentence, follower.sentence, p.previous_question)
    ):
        return lead_with_no(text, p.alternatives.proper)  # "... for disaster recovery. They are not used to restore single files"
    return text


# How deep in the reading's ranked units an action hand-off looks for the step to lead with.
INSTRUCTION_DEPTH = 5
_MENU_PATH = re.compile(r"\w+ > \w+")


def instructions_first(evidence: list[Evidence], ranked: list[Evidence]) -> list[Evidence]:
    """An action hand-off's self-service part led by what the customer can do: the best of the
    reading's top units that is a step (a procedure's item, an instruction, a menu path such as
    "Settings > Billing > Cancel subscription"), then the rest of the evidence. "fine, cancel it for
    me now" was told "Nothing is deleted when you cancel." as how to do it yourself."""
    for e in ranked[:INSTRUCTION_DEPTH]:
        unit = e.unit if e.unit.text else Unit(e.sentence)
        if holds(unit, "steps") or _MENU_PATH.search(unit.text):
            return [e, *(x for x in evidence if x.sentence != e.sentence)]
    return evidence


def handoff(settings: Settings, p: Prepared) -> Answer:
    """The hand-off text for the decision's reason, in the customer's language; an account action
    the documents explain also gets the self-service steps (and their citations)."""
    chat = settings.chat
    kind = REASON_TEXT.get(p.decision.reason or "", "no_answer")
    if p.decision.with_steps and p.evidence:
        steps, used = compose(instructions_first(p.evidence, p.ranked), p.said)
        text = message("action_steps", p.language, chat.support_contact, chat.messages, answer=steps)
        return Answer(answer=text[:2000], citations=evidence_citations(used), confidence="low", handoff=True)
    text = message(kind, p.language, chat.support_contact, chat.messages)
    return Answer(answer=text, citations=[], confidence="low", handoff=True)


def chat_response(
    settings: Settings,
    engine: Engine | None,
    p: Prepared,
    answer: Answer,
    mode: str,
    verification: Verification | None = None,
    dropped: list[str] | None = None,
) -> ChatResponse:
    """The response for a finished answer: its sources, what the context held, timings and usage."""
    cited = {c.id for c in answer.citations}
    shown = p.relevant if p.outcome == "answer" or answer.citations else []
    sources = [_source(h, h.id in cited) for h in shown]
    return ChatResponse(
        answer=answer.answer,
        citations=answer.citations,
        confidence=answer.confidence,
        handoff=answer.handoff,
        session_id=p.session_id,
        turn=p.turn,
        mode=mode,
        answer_mode=settings.chat.answer_mode,
        verification=verification or Verification(checked=False, passed=None, reasons=[], fallback=False),
        sources=sources,
        index_version=p.retrieval.version,
        model=engine.name if engine is not None and mode == "generated" else None,
        query=p.query,
        context=ContextReport(
            used=list(dict.fromkeys(e.chunk_id for e in p.evidence)) if p.outcome == "answer" else [],
            omitted=list(dict.fromkeys(e.chunk_id for e in p.omitted)),
            prompt_tokens=p.prompt_tokens,
            budget_tokens=p.budget,
            dropped_citations=dropped or [],
            evidence=[EvidenceItem(id=e.chunk_id, sentence=e.sentence, score=round(e.score, 4)) for e in p.evidence],
            handoff_reason=p.decision.reason if p.outcome == "handoff" else p.outcome if p.outcome == "no_evidence" else None,
            answerable=round(p.decision.answerable, 4),
            intent=p.decision.intent,
            language=p.language,
        ),
        timings_ms=p.timings | {f"retrieval_{k}": v for k, v in p.retrieval.timings_ms.items()},
        usage=p.usage,
    )


def _source(hit: Hit, cited: bool) -> Source:
    c = hit.chunk
    return Source(id=c.id, title=c.title, path=c.doc_id, url=c.url, section=c.section, score=round(hit.relevance, 4), cited=cited)
