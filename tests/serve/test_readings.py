"""How a follow-up's readings are found and combined (serve/readings.py), against the bundled knowledge."""

from dataclasses import replace

from ragtune.documents import Chunk, Hit
from ragtune.grounding.answerability import Decision
from ragtune.grounding.evidence import Evidence
from ragtune.retriever import RetrievalResult
from serve.readings import Reading, answered_from, fused, subject_of


def test_the_chunk_a_previous_answer_quoted_names_what_its_it_is_about(retriever):
    answer = (
        "If availability falls below the commitment, you receive a credit: 10% of the monthly fee below 99.9%, "
        "25% below 99.0%, and 50% below 95.0%."
    )
    chunk = answered_from(retriever, answer)
    assert chunk is not None and chunk.doc_id == "policies/service-level-agreement.html"
    assert "credit" in subject_of(chunk).lower()
    # A hand-off text or an answer in the model's own words quotes no chunk: no subject is made up.
    assert answered_from(retriever, "I'm sorry, I couldn't find a clear answer to that in our help articles.") is None
    assert answered_from(retriever, "You get money back on your bill when we are down for longer than promised.") is None


def _reading(scores: dict[str, float], handoff: bool = False) -> Reading:
    chunk = Chunk(id="c", doc_id="d.md", text="", title="T", section="S", position=0)
    hit = Hit(chunk=chunk, score=1.0, relevance=1.0)
    ranked = [Evidence(hit=hit, sentence=s, score=p, position=i) for i, (s, p) in enumerate(scores.items())]
    ranked.sort(key=lambda e: e.score, reverse=True)
    decision = Decision(handoff, "low_evidence" if handoff else None, 0.0 if handoff else 0.9)
    return Reading("q", RetrievalResult(hits=[hit], version="v1", mode="hybrid"), [hit], ranked, decision)


def test_fused_readings_rank_units_by_their_agreement_not_one_readings_spike():
    steady = {"answers it": 0.6, "one reading's fluke": 0.0}
    spiky = {"answers it": 0.5, "one reading's fluke": 0.9}
    out = fused([_reading(steady), _reading(spiky), _reading({"answers it": 0.55, "one reading's fluke": 0.1})], _reading(steady))
    assert [e.sentence for e in out.ranked] == ["answers it", "one reading's fluke"]
    assert abs(out.ranked[0].score - 0.55) < 1e-9
    # A reading that is handed off has no say.
    out = fused([_reading(steady), replace(_reading(spiky), decision=Decision(True, "low_evidence", 0.1))], _reading(steady))
    assert out.ranked[0].sentence == "answers it" and out.ranked[0].score == 0.6
