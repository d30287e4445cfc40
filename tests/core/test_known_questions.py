"""The company's known example questions as a memory (ragtune/grounding/known.py): a paraphrase of
a known question finds the unit that answers it and the chunk retrieval missed, an exact repeat is
left out when training asks for it, and the memory survives the model file."""

import numpy as np
import pytest

from ragtune.grounding.evidence import EvidenceSelector
from ragtune.grounding.known import KnownQuestions, holds_quote, known_hits
from ragtune.grounding.model import GroundingModel


@pytest.fixture(scope="module")
def memory():
    return KnownQuestions(
        ["do teachers get a deal on the pro plan?", "how do i change my icloud password", "what is the capital of france"],
        ["faq/students-and-nonprofits.md", "", ""],
        ["Students and teachers get 50% off the Pro plan", "", ""],
        [1, 0, 0],
    )


def test_a_paraphrase_is_closest_to_its_known_question_and_the_answering_unit_scores(retriever, memory):
    embedder = retriever.embedder
    sims = memory.similarity(embedder, embedder.embed_query("discount for educators?"))
    assert int(np.argmax(sims)) == 0 and sims[0] > sims[1]
    yes, no, _ = memory.nearest(sims)
    assert yes == pytest.approx(float(sims[0])) and no == pytest.approx(float(max(sims[1], sims[2])))
    units = [
        ("faq/students-and-nonprofits.md", "Students and teachers get 50% off the Pro plan with a valid school email address."),
        ("faq/students-and-nonprofits.md", "The discount is checked again every 12 months."),
        ("faq/billing-faq.md", "Students and teachers get 50% off the Pro plan with a valid school email address."),
    ]
    scores = memory.unit_scores(sims, units)
    # Only its own document's unit, with how many known questions it answers.
    assert scores[0, 0] == pytest.approx(float(sims[0])) and scores[1, 0] == 0 and scores[2, 0] == 0
    assert scores[:, 1].tolist() == [1, 0, 0]
    left_out = memory.unit_scores(np.where(np.arange(len(sims)) == 0, -1.0, sims), units)
    assert left_out[0].tolist() == [0, 0]  # a question left out (training's own question) is not counted


def test_training_leaves_the_question_itself_out(retriever, memory):
    embedder = retriever.embedder
    question = "Do teachers get a deal on the Pro plan?"
    qvec = embedder.embed_query(question)
    assert memory.similarity(embedder, qvec)[0] > 0.99
    assert memory.similarity(embedder, qvec, exclude=question)[0] == -1.0  # compared normalised
    # As if no example mentioned the document (an admin's new upload): all its questions are left out.
    hidden = memory.similarity(embedder, embedder.embed_query("discount for educators?"), hide_doc=memory.docs[0])
    assert hidden[0] == -1.0 and hidden[1] > -1.0 and memory.nearest(hidden)[0] == 0.0


def test_a_missed_chunk_is_added_after_the_retrieved_ones(retriever, memory):
    chunks = retriever.snapshot().chunks
    embedder = retriever.embedder
    sims = memory.similarity(embedder, embedder.embed_query("discount for educators?"))
    added = known_hits(memory, sims, chunks, set(), relevance=0.3, threshold=0.5)
    assert len(added) == 1 and added[0].chunk.doc_id == "faq/students-and-nonprofits.md"
    assert holds_quote(added[0].chunk.text, memory.quotes[0]) and added[0].relevance == 0.3
    assert known_hits(memory, sims, chunks, {added[0].id}, relevance=0.3, threshold=0.5) == []  # already retrieved
    assert known_hits(memory, sims, chunks, set(), relevance=0.3, threshold=0.99) == []  # not close enough


def test_the_selector_marks_the_unit_a_known_question_points_at(retriever, memory):
    selector = EvidenceSelector(retriever.embedder, GroundingModel.load(), known=memory)
    question = "do teachers get a deal on pro"
    hits = selector.with_known(retriever.embedder.embed_query(question), [], retriever.snapshot().chunks, 0.3)
    cands = selector.candidates(question, hits)
    marked = [c for c in cands if c.known > 0]
    assert marked and all("teachers get 50% off" in c.unit.text for c in marked)


def test_the_memory_round_trips_with_its_vectors(retriever, memory, tmp_path):
    memory.ensure(retriever.embedder)
    again = KnownQuestions.from_json(memory.to_json())
    assert again.questions == memory.questions and again.fingerprint == retriever.embedder.fingerprint()
    assert again.vectors is not None and np.allclose(again.vectors, memory.vectors, atol=1e-3)  # float16 on disk
    with pytest.raises(ValueError, match="differ in length"):
        KnownQuestions(["a"], [], [], [])
    kinds = KnownQuestions(
        memory.questions, memory.docs, memory.quotes, memory.answerable, kinds=["", "other_company", "out_of_scope"]
    )
    assert KnownQuestions.from_json(kinds.to_json()).kinds == kinds.kinds


def test_the_shipped_model_knows_the_bundled_examples():
    known = GroundingModel.load().known
    assert known is not None and len(known) > 500 and 0 in known.answerable and 1 in known.answerable
    assert known.vectors is not None and len(known.vectors) == len(known)


def test_a_document_added_since_training_may_answer_what_was_unanswerable(retriever, memory):
    """A near-miss judged unanswerable ("referral bonus?") stops counting against an answer whose
    evidence comes from a document the examples were not judged with (an admin's upload)."""
    judged = KnownQuestions(memory.questions, memory.docs, memory.quotes, memory.answerable, index_docs=["faq/billing-faq.md"])
    selector = EvidenceSelector(retriever.embedder, GroundingModel.load(), known=judged)
    qvec = retriever.embedder.embed_query("how do I change my iCloud password?")
    _, before, _ = selector.known_nearest(qvec, "faq/billing-faq.md")
    _, after, _ = selector.known_nearest(qvec, "loyalty.md")
    assert before > 0.9 and after == 0.0
    assert judged.judged("faq/billing-faq.md") and not judged.judged("loyalty.md") and memory.judged("anything.md")


def test_another_companys_product_says_nothing_about_a_question_naming_none(retriever):
    """'how do i turn on two factor' is close to the example 'how to enable two factor on my facebook
    account', which is unanswerable only because of Facebook: it must not pull the question toward
    a hand-off, while a question that names a product is still compared with it."""
    from ragtune.grounding.answerability import ANSWERABLE_FEATURES, answerable_features
    from ragtune.grounding.evidence import corpus_stats_from

    memory = KnownQuestions(
        ["how to enable two factor on my facebook account", "how do i turn on dark mode", "enable 2fa"],
        ["", "", "faq/security-faq.md"],
        ["", "", "Two-factor authentication"],
        [0, 0, 1],
        kinds=["other_company", "out_of_scope", ""],
    )
    model = GroundingModel.load()
    selector = EvidenceSelector(retriever.embedder, model, known=memory)
    stats = corpus_stats_from(retriever.snapshot().chunks)
    column = ANSWERABLE_FEATURES.index("known_no")

    def known_no(question: str) -> tuple[float, float]:
        qvec = retriever.embedder.embed_query(question)
        ranked = selector.score(question, retriever.search(question).relevant(0.3)[:6])
        nearest = selector.known_nearest(qvec, ranked[0].hit.chunk.doc_id)
        x = answerable_features(question, ranked, stats, selector.word_vectors, model.brand, nearest, model.brand_threshold)
        return float(x[column]), nearest.no

    plain, closest = known_no("how do i turn on two factor")
    assert closest > 0.6 and plain < closest - 0.1  # the Facebook example is the closest, and is not read
    named, closest = known_no("how do i turn on two factor for my instagram")
    assert named == pytest.approx(closest) and named > 0.6
