"""The grounding model over the bundled knowledge index with the real embedding model: the
learned selector finds the answering unit, composition reads like an agent, answerability and
intent decide hand-offs (shipped weights: ragtune/grounding/data/grounding.json)."""

from dataclasses import replace

import numpy as np
import pytest

from ragtune.grounding.answerability import decide, other_products
from ragtune.grounding.compose import compose
from ragtune.grounding.evidence import EvidenceSelector, corpus_stats_from, evidence_chunks, top_evidence
from ragtune.grounding.features import SELECTOR_FEATURES
from ragtune.grounding.followup import Said
from ragtune.grounding.model import GroundingModel, Logistic
from ragtune.prompt import number_sources


@pytest.fixture(scope="module")
def grounding(retriever):
    model = GroundingModel.load()
    stats = corpus_stats_from(retriever.snapshot().chunks)
    selector = EvidenceSelector(retriever.embedder, model, lambda: stats)
    return model, stats, selector


def _read(retriever, grounding, question, said=()):
    model, stats, selector = grounding
    hits = retriever.search(question).relevant(0.3)[:6]
    ranked = selector.score(question, hits, said)
    decision = decide(model, question, ranked, stats, retriever.embedder.embed_query(question), question, selector.word_vectors)
    return ranked, decision


@pytest.mark.parametrize(
    ("question", "supporting"),
    [
        ("I forgot my vault passphrase, can you reset it?", "We cannot reset it."),
        ("how long does the password reset link work", "The reset link is valid for 1 hour."),
        ("do you sell my personal data", "We do not sell personal data"),
        ("how long is the free trial?", "14-day free trial"),
        ("how much is the extra 1 TB storage add-on", "4.99"),
    ],
)
def test_the_answering_unit_is_among_the_selected_evidence(retriever, grounding, question, supporting):
    ranked, decision = _read(retriever, grounding, question)
    selected = top_evidence(ranked, 3, grounding[0].support)
    assert not decision.handoff, decision
    assert supporting in " ".join(e.sentence for e in selected)
    for item in selected:  # verbatim by construction: every unit occurs in its chunk
        assert item.sentence in " ".join(item.hit.chunk.text.split())
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)
    assert 0.0 <= ranked[-1].score <= ranked[0].score <= 1.0


@pytest.mark.parametrize(
    ("question", "supporting"),
    [
        ("how long does the password reset link work", "The reset link is valid for 1 hour."),
        ("do you sell my personal data", "We do not sell personal data"),
    ],
)
def test_a_document_no_example_is_about_is_still_answered_from_its_own_sentence(retriever, grounding, question, supporting):
    # An admin's upload since the model was trained: no known question quotes it, so its units get no
    # `known` signal; the new-document selector scores them (the known one alone ranks another
    # document's unit first for both questions).
    model, _, selector = grounding
    hits = retriever.search(question).relevant(0.3)[:6]
    doc = selector.score(question, hits)[0].hit.chunk.doc_id
    best = selector.score(question, hits, hide_doc=doc)[0]
    assert best.hit.chunk.doc_id == doc and supporting in best.sentence
    assert model.selector_new is not None
    assert selector.new_units([doc, "no/such-doc.md"]).tolist() == [False, True]


def test_an_extractive_answer_has_no_preamble_and_a_table_row_reads_as_a_sentence(retriever, grounding):
    ranked, _ = _read(retriever, grounding, "how much is the extra 1 TB storage add-on")
    text, used = compose(top_evidence(ranked, 3, grounding[0].support))
    assert not text.startswith("Here is what") and "Add-on:" not in text and "4.99" in text
    assert used and all(u.sentence in " ".join(u.hit.chunk.text.split()) for u in used)


def test_a_procedure_comes_whole_and_what_was_said_is_not_repeated(retriever, grounding):
    question = "sync stopped working, how do i fix it"
    ranked, _ = _read(retriever, grounding, question)
    first, _ = compose(top_evidence(ranked, 3, grounding[0].support))
    assert "Restart the desktop app." in first and "\n1. " in f"\n{first}"  # the numbered steps, not one of them
    again, _ = _read(retriever, grounding, f"{question} i tried that, still stuck. what now?", Said([first]))
    second, _ = compose(top_evidence(again, 3, grounding[0].support), Said([first]))
    assert second and "Restart the desktop app." not in second


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("how do i reset my gmail password", "other_company"),
        ("I want to talk to a real person NOW", "person"),
        ("What is the boiling point of tungsten on Jupiter?", None),  # no evidence or low evidence
    ],
)
def test_questions_the_documents_cannot_answer_are_handed_off(retriever, grounding, question, reason):
    _, decision = _read(retriever, grounding, question)
    assert decision.handoff
    assert decision.reason == reason if reason else decision.reason in {"low_evidence", "no_evidence"}


def test_an_e_mail_address_or_a_contraction_is_not_another_company_s_product(retriever, grounding):
    model, stats, selector = grounding

    def named(question):
        hits = retriever.search(question).relevant(0.3)[:6]
        return other_products(model, question, selector.score(question, hits), stats, selector.word_vectors, "Northwind")

    assert named("how do i reset my gmail password") == ["gmail"]
    assert named("my gmail address jan@gmail.example can't sign in to northwind") == []  # the address, not the product
    assert named("can you just remove jan@ourfirm.example from our team for me") == []
    assert "i'd" not in named("i'd rather not use an authenticator app, can i use a physical usb security key instead?")


def test_a_question_the_documents_answer_surely_needs_a_sure_product_name_to_be_handed_off(retriever, grounding):
    model, stats, selector = grounding
    question = "i tether my laptop to my phone on the train, will the app blow my data plan on huge uploads?"
    hits = retriever.search(question).relevant(0.3)[:6]
    ranked = selector.score(question, hits)
    qvec = retriever.embedder.embed_query(question)

    known = selector.known_nearest(qvec, ranked[0].hit.chunk.doc_id)  # as the chat service reads it

    def decided(confident):
        return decide(model, question, ranked, stats, qvec, question, selector.word_vectors, "Northwind", known, confident)

    assert decided(1.0).reason == "other_company"  # "tether" looks like a product name (0.83)
    answered = decided(0.8)  # but the metered-connection unit answers the question surely
    assert not answered.handoff and answered.answerable >= 0.8
    # A question about another company's product stays one: "gmail" is surely a product name.
    gmail = "how do i reset my gmail password"
    ranked = selector.score(gmail, retriever.search(gmail).relevant(0.3)[:6])
    assert (
        decide(
            model,
            gmail,
            ranked,
            stats,
            retriever.embedder.embed_query(gmail),
            gmail,
            selector.word_vectors,
            "Northwind",
            confident=0.0,
        ).reason
        == "other_company"
    )


def test_an_account_action_is_handed_off_with_the_self_service_steps(retriever, grounding):
    _, decision = _read(retriever, grounding, "cancel my subscription now")
    assert decision.handoff and decision.reason == "action" and decision.with_steps
    _, asked = _read(retriever, grounding, "how do i cancel my subscription?")
    assert not asked.handoff  # asking how is not asking us to do it
    # A request to act that names nothing the documents know is still one, not "no answer found".
    ranked, bare = _read(retriever, grounding, "ok do it for me then")
    assert not ranked and bare.handoff and bare.reason == "action" and not bare.with_steps


def test_a_synonym_the_documents_do_not_use_is_not_a_reason_to_hand_off(retriever, grounding):
    _, decision = _read(retriever, grounding, "discount for educators?")
    assert not decision.handoff, decision.signals


def test_the_model_survives_a_round_trip_and_refuses_another_format(tmp_path):
    model = GroundingModel.load()
    path = tmp_path / "g.json"
    model.save(path)
    again = GroundingModel.load(path)
    x = np.ones((2, len(model.selector.features)))
    assert np.allclose(again.selector.prob(x), model.selector.prob(x), atol=1e-5)
    # A selector fitted before a signal was added reads the columns it was fitted on, by name.
    sel = model.selector
    fewer = Logistic(sel.features[:-1], sel.mean[:-1], sel.scale[:-1], sel.weights[:-1], sel.bias)
    older = replace(model, selector=fewer, selector_new=None)
    full = np.random.default_rng(1).normal(size=(3, len(SELECTOR_FEATURES)))
    assert np.allclose(older.unit_probs(full, np.zeros(3, bool)), older.selector.prob(full[:, : len(fewer.features)]))
    path.write_text('{"format": 99}')
    with pytest.raises(ValueError, match="retrain it"):
        GroundingModel.load(path)
    with pytest.raises(FileNotFoundError, match="ragtune train selector"):
        GroundingModel.load(tmp_path / "missing.json")


def test_evidence_becomes_the_numbered_sources_of_the_prompt(retriever, grounding):
    ranked, _ = _read(retriever, grounding, "how long does the password reset link work")
    selected = top_evidence(ranked, 3, grounding[0].support)
    numbered = number_sources(evidence_chunks(selected))
    assert [numbered.ids[c.id] for c in numbered.chunks] == [e.chunk_id for e in selected]


def _unit_of(chunk, position: int, score: float):
    from ragtune.documents import Hit
    from ragtune.grounding.evidence import Evidence
    from ragtune.grounding.text import Unit

    sentences = chunk.text.split(". ")
    text = sentences[position].rstrip(".") + "."
    return Evidence(
        hit=Hit(chunk=chunk, score=1.0, relevance=1.0), sentence=text, score=score, unit=Unit(text), position=position
    )


def _chunk(doc_id: str, text: str, section: str = "Section"):
    from ragtune.documents import Chunk

    return Chunk(id=doc_id, doc_id=doc_id, title=doc_id, section=section, position=0, text=text)


def test_the_answering_sentence_leads_unless_it_points_back_to_one_before_it():
    chunk = _chunk(
        "guides/migration.md",
        "The Migration assistant copies files from other providers. It copies up to 2 TB per day. "
        "Shared links are not carried over. Large accounts take a few days.",
    )
    # The best unit stands alone: it comes first, the others follow in the document's order.
    text, used = compose([_unit_of(chunk, 2, 0.9), _unit_of(chunk, 0, 0.6), _unit_of(chunk, 3, 0.55)])
    assert text.startswith("Shared links are not carried over.") and [e.position for e in used] == [2, 0, 3]
    # "It copies ..." needs the sentence that says what "it" is: that one leads.
    text, used = compose([_unit_of(chunk, 1, 0.9), _unit_of(chunk, 0, 0.6)])
    assert text.startswith("The Migration assistant copies") and [e.position for e in used] == [0, 1]


def test_a_further_sentence_that_refers_to_one_left_out_is_left_out_too():
    chunk = _chunk(
        "guides/trash.md",
        "Deleted files stay in the Trash for 30 days. Select the files and click Restore. "
        "They return to their original folder. There is no limit on restores.",
    )
    # "They return ..." after the 30 days: "they" would be the deleted files' days, so it is left out.
    text, used = compose([_unit_of(chunk, 0, 0.9), _unit_of(chunk, 2, 0.6), _unit_of(chunk, 3, 0.55)])
    assert "They return" not in text and [e.position for e in used] == [0, 3]
    # With the sentence it refers to in the answer it stays ("There is ..." never refers back).
    text, used = compose([_unit_of(chunk, 1, 0.9), _unit_of(chunk, 2, 0.6)])
    assert text == "Select the files and click Restore. They return to their original folder."
    # The best unit always answers, whatever it opens with.
    text, used = compose([_unit_of(chunk, 2, 0.9)])
    assert text == "They return to their original folder."


def test_an_answer_quoting_a_slide_s_speaker_notes_leaves_out_the_label():
    from ragtune.documents import NOTES_LABEL

    chunk = _chunk("products/release-notes.pptx", f"{NOTES_LABEL}The scanner reads text in English, German and French. It runs.")
    text, _ = compose([_unit_of(chunk, 0, 0.9)])
    assert text == "The scanner reads text in English, German and French."


def test_similarity_alone_brings_a_further_unit_of_another_document_only_for_a_two_part_question():
    from dataclasses import replace

    chunk = _chunk
    lead = replace(_unit_of(chunk("release-notes", "You can close a file request at any time."), 0, 0.8), dense=0.6)
    same = replace(_unit_of(chunk("release-notes", "The owner gets an email for every upload."), 0, 0.1), dense=0.55)
    other = replace(_unit_of(chunk("api-examples", "An unfinished session expires after 24 hours."), 0, 0.1), dense=0.55)
    likely = replace(_unit_of(chunk("sharing-faq", "Links on the Free plan expire after 7 days."), 0, 0.6), dense=0.3)
    ranked = [lead, same, other, likely]
    # Another document's unit the selector does not find likely stays out; a likely one comes in.
    assert top_evidence(ranked, 4, 0.5) == [lead, same, likely]
    assert top_evidence(ranked, 4, 0.5, across_documents=True) == [lead, same, other, likely]


def test_a_discount_question_asks_for_a_share_off_and_the_sentence_giving_one_holds_it():
    from ragtune.grounding.features import asked_kinds, holds
    from ragtune.grounding.text import Unit

    # "50% off" answers "is there a discount for teachers?" although it never says "discount".
    assert "percent" in asked_kinds("discount for educators?") and "percent" in asked_kinds("any reductions for charities")
    assert holds(Unit("Students and teachers get 50% off the Pro plan."), "percent")
    assert not holds(Unit("The discount is checked again every 12 months."), "percent")
    assert "percent" not in asked_kinds("how do I cancel my plan")
