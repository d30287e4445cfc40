"""Evidence selection with the real embedding model over the bundled knowledge base, and the
numbered source ids the model sees."""

import pytest

from ragtune.answer import contract_shape
from ragtune.evidence import EvidenceSelector, split_sentences, split_with_headings
from ragtune.prompt import ContextChunk, build_messages, number_sources


def test_sentences_are_verbatim_and_fragments_join_the_next_one():
    text = "Yes. Switching from monthly to annual takes effect immediately.\nSwitching back takes effect at the end of the paid year."
    sentences = split_sentences(text)
    assert sentences == [
        "Yes. Switching from monthly to annual takes effect immediately.",
        "Switching back takes effect at the end of the paid year.",
    ]
    # A decimal point is not a sentence end; a short fragment at the end joins the sentence before it.
    assert split_sentences("Pro costs 9.99 EUR per month. Business costs more per user. Not Free.") == [
        "Pro costs 9.99 EUR per month.",
        "Business costs more per user. Not Free.",
    ]


def test_headings_left_inline_by_pdf_extraction_are_kept_apart():
    text = (
        "Refund policy\nAnnual plans\nIf you are not satisfied, you can cancel an annual plan within 30 days of the purchase and\n"
        "receive a full refund.\nMonthly plans\nMonthly plans can be cancelled at any time."
    )
    assert split_with_headings(text) == [
        (
            "Annual plans",
            "If you are not satisfied, you can cancel an annual plan within 30 days of the purchase and receive a full refund.",
        ),
        ("Monthly plans", "Monthly plans can be cancelled at any time."),
    ]


@pytest.mark.parametrize(
    ("question", "supporting"),
    [
        ("I forgot my vault passphrase, can you reset it?", "We cannot reset it."),
        ("what availability do you commit to for business plans", "99.9% monthly availability"),
        ("how long does the password reset link work", "The reset link is valid for 1 hour."),
        ("do you sell my personal data", "We do not sell personal data"),
        ("how long are deleted files kept in the trash on business", "180 days on Business and Enterprise"),
    ],
)
def test_the_supporting_sentence_is_selected(retriever, question, supporting):
    hits = retriever.search(question).relevant(0.3)
    selected = EvidenceSelector(retriever.embedder).select(question, hits, max_sentences=3, margin=0.1)
    assert selected and supporting in " ".join(e.sentence for e in selected)
    for item in selected:  # verbatim by construction: every sentence occurs in its chunk
        assert item.sentence in " ".join(item.hit.chunk.text.split())
    assert selected[0].score >= max(e.score for e in selected)


def test_numbered_ids_map_back_and_the_prompt_lists_them():
    chunks = [
        ContextChunk("7f26486b63c3c0e58487", "Refund policy", "Annual plans", "Refunds within 30 days."),
        ContextChunk("aa11bb22cc33dd44ee55", "Pricing", "Pro", "9.99 EUR per month."),
    ]
    numbered = number_sources(chunks)
    assert [c.id for c in numbered.chunks] == ["S1", "S2"]
    assert numbered.ids == {"S1": "7f26486b63c3c0e58487", "S2": "aa11bb22cc33dd44ee55"}
    system = build_messages("refund?", numbered.chunks, [], "Acme")[0]["content"]
    assert "[id: S1] Refund policy > Annual plans" in system and "7f26486b" not in system
    # The contract in the prompt is generated from the Answer model, with the ids the grammar allows.
    assert contract_shape(["S1", "S2"]) in system and '"id": "S1" | "S2"' in system


def test_evidence_becomes_the_numbered_sources_of_the_prompt(retriever):
    from ragtune.evidence import evidence_chunks

    question = "how long does the password reset link work"
    selected = EvidenceSelector(retriever.embedder).select(question, retriever.search(question).relevant(0.3))
    numbered = number_sources(evidence_chunks(selected))
    assert [numbered.ids[c.id] for c in numbered.chunks] == [e.chunk_id for e in selected]
    system = build_messages(question, numbered.chunks, [], "Acme")[0]["content"]
    assert all(f"[id: S{i}]" in system and e.sentence in system for i, e in enumerate(selected, start=1))
