import json

import pytest

from serve.chat import AnswerTextExtractor
from serve.engines.grammar import answer_grammar


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_extractor_yields_the_decoded_answer_text_in_pieces(step):
    text = 'Line "one"\nüñí \\ done'
    raw = json.dumps({"answer": text, "citations": [], "confidence": "low", "handoff": True}, ensure_ascii=step % 2 == 0)
    extractor = AnswerTextExtractor()
    out = "".join(extractor.feed(raw[i:i + step]) for i in range(0, len(raw), step))
    assert out == text


def test_grammar_bounds_strings_and_lists_the_ids(tiny_gguf):
    from llama_cpp import LlamaGrammar

    text = answer_grammar(["abc", "def"], 1024)
    assert '"\\"abc\\"" | "\\"def\\""' in text and "char{1,1200}" in text
    # A smaller max_tokens shrinks the bounds, so a model writing up to them still closes the JSON.
    assert "char{1,1200}" not in answer_grammar(["abc", "def"], 384)
    tight = answer_grammar(["abc", "def"], 384, tight=True)
    assert "{0,0}" in tight  # one citation at most
    LlamaGrammar.from_string(text, verbose=False)  # llama.cpp parses both
    LlamaGrammar.from_string(tight, verbose=False)


def test_tight_grammar_always_closes_within_max_tokens(tiny_gguf):
    """A random-weight model under the tight grammar still ends with valid JSON: the bound holds."""
    from llama_cpp import Llama, LlamaGrammar

    from ragtune.answer import parse_answer

    llm = Llama(model_path=str(tiny_gguf), n_ctx=1024, verbose=False, seed=1)
    messages = [{"role": "system", "content": "Sources: [id: abc] x"}, {"role": "user", "content": "q?"}]
    for seed in range(8):
        out = llm.create_chat_completion(
            messages=messages, max_tokens=200, temperature=1.5, seed=seed,
            grammar=LlamaGrammar.from_string(answer_grammar(["abc"], 200, tight=True), verbose=False),
        )
        assert out["choices"][0]["finish_reason"] == "stop"
        parse_answer(out["choices"][0]["message"]["content"])


def test_citations_are_checked_against_the_chunks_given():
    from ragtune.answer import Citation
    from ragtune.documents import Chunk, Hit
    from serve.citations import check_citations

    chunk = Chunk("c1", "d.md", "Refunds take 5 to 10 business days. Annual plans can be refunded within 30 days.", "Refunds", "", 0)
    given = {"c1": Hit(chunk=chunk, score=1.0, relevance=0.8)}
    check = check_citations(
        [Citation(id="c1", quote="within 30 days"), Citation(id="c1", quote="dup"), Citation(id="zz", quote="x")], given, "30 days"
    )
    assert [c.quote for c in check.kept] == ["within 30 days"] and check.dropped == ["zz"]
    kept = check_citations([Citation(id="c1", quote="https://made.up/quote")], given, "You have 30 days for annual plans.").kept
    assert kept[0].quote == "Annual plans can be refunded within 30 days."


def _hits(*texts):
    from ragtune.documents import Chunk, Hit

    return {f"c{i}": Hit(chunk=Chunk(f"c{i}", "d.md", t, "T", "", i), score=1.0, relevance=0.5) for i, t in enumerate(texts)}


def test_a_citation_that_does_not_support_the_answer_is_moved_to_the_one_that_does():
    from ragtune.answer import Citation
    from serve.citations import check_citations

    given = _hits("Refunds within 30 days.", "The trial lasts 14 days.", "Support is open 9 to 5.")
    support = {"c0": 0.72, "c1": 0.31, "c2": 0.65}
    wrong = [Citation(id="c1", quote="The trial lasts 14 days.")]
    check = check_citations(wrong, given, "Refunds within 30 days.", support, margin=0.1)
    assert [c.id for c in check.kept] == ["c0"] and check.moved == [{"from": "c1", "to": "c0"}]
    assert check.kept[0].quote == "Refunds within 30 days."  # the quote comes from the new chunk

    # Wrong then right: the wrong one folds into the right one. Right then wrong: the wrong one goes
    # to the next chunk that supports the answer (c2 is within the margin), never to an unsupported one.
    both = [Citation(id="c1", quote=""), Citation(id="c0", quote="")]
    assert [c.id for c in check_citations(both, given, "a", support).kept] == ["c0"]
    assert [c.id for c in check_citations(both[::-1], given, "a", support).kept] == ["c0", "c2"]
    tight = {"c0": 0.72, "c1": 0.31, "c2": 0.40}
    check = check_citations(both[::-1], given, "a", tight)
    assert [c.id for c in check.kept] == ["c0"] and check.moved == [{"from": "c1", "to": None}]

    # Within the margin the model's choice stands; no support figures, nothing is moved.
    assert [c.id for c in check_citations([Citation(id="c2", quote="")], given, "a", support).kept] == ["c2"]
    assert [c.id for c in check_citations(wrong, given, "a", None).kept] == ["c1"]
    # A confident answer that cites nothing gets its best source.
    check = check_citations([], given, "a", support, cite_if_none=True)
    assert [c.id for c in check.kept] == ["c0"] and check.moved == [{"from": None, "to": "c0"}]
