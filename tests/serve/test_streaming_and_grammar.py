import json

import pytest

from serve.answer_text import AnswerTextExtractor
from serve.engines.grammar import answer_grammar


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_extractor_yields_the_decoded_answer_text_in_pieces(step):
    text = 'Line "one"\nüñí \\ done 😀'  # escapes (a surrogate pair too, with ensure_ascii) cut at every place
    raw = json.dumps({"answer": text, "sources": ["S1"]}, ensure_ascii=step % 2 == 0)
    extractor = AnswerTextExtractor()
    out = "".join(extractor.feed(raw[i : i + step]) for i in range(0, len(raw), step))
    assert out == text


def test_extractor_skips_wrapping_and_shows_nothing_for_what_is_not_answer_text():
    extractor = AnswerTextExtractor()
    pieces = ["Sure! Here", " it is:\n```json\n", '{"answer": "Yes', ', we do."', ', "sources": []}\n```']
    assert [extractor.feed(p) for p in pieces] == ["", "", "Yes", ", we do.", ""]
    extractor = AnswerTextExtractor()
    assert extractor.feed('{"sources": [], "answer": 7}') == "" and extractor.feed("no object at all") == ""


def test_grammar_bounds_strings_and_lists_the_ids(tiny_gguf):
    from llama_cpp import LlamaGrammar

    text = answer_grammar(["S1", "S2"], 1024)
    # The model's whole job: the answer text, then the ids of the sources it used; nothing else.
    assert 'root ::= "{" ws "\\"answer\\":" ws answer "," ws "\\"sources\\":" ws sources "}"' in text
    assert '"\\"S1\\"" | "\\"S2\\""' in text and "char{1,1200}" in text
    assert "citations" not in text and "confidence" not in text and "handoff" not in text
    # A smaller max_tokens shrinks the bounds, so a model writing up to them still closes the JSON.
    assert "char{1,1200}" not in answer_grammar(["S1", "S2"], 384)
    tight = answer_grammar(["S1", "S2"], 384, tight=True)
    assert "{0,0}" in tight  # one source at most
    assert 'sources ::= "[" "]"' in answer_grammar([], 384)  # nothing to name: an empty list only
    LlamaGrammar.from_string(text, verbose=False)  # llama.cpp parses both
    LlamaGrammar.from_string(tight, verbose=False)


def test_tight_grammar_always_closes_within_max_tokens(tiny_gguf):
    """A random-weight model under the tight grammar still ends with a valid reply: the bound holds."""
    from llama_cpp import Llama, LlamaGrammar

    from ragtune.answer import parse_reply

    llm = Llama(model_path=str(tiny_gguf), n_ctx=1024, verbose=False, seed=1)
    messages = [{"role": "system", "content": "Sources: [id: S1] x"}, {"role": "user", "content": "q?"}]
    for seed in range(8):
        out = llm.create_chat_completion(
            messages=messages,
            max_tokens=200,
            temperature=1.5,
            seed=seed,
            grammar=LlamaGrammar.from_string(answer_grammar(["S1"], 200, tight=True), verbose=False),
        )
        assert out["choices"][0]["finish_reason"] == "stop"
        reply = parse_reply(out["choices"][0]["message"]["content"])
        assert set(reply.sources) <= {"S1"}


def test_a_broken_grammar_is_refused_before_llama_cpp_sees_it():
    from serve.engines.grammar import GrammarError, check_grammar

    good = answer_grammar(["S1", "S2"], 160)
    assert check_grammar(good) == good
    broken = [
        good.replace('"\\"answer\\":"', '"\\"answer\\":', 1),  # an unterminated string literal
        good.replace("char ::=", "chars ::="),  # a rule used but never defined
        good.replace("root ::=", "start ::="),  # no root
        good.replace("char{1,", "char{9999,", 1),  # bounds the wrong way round
        good + 'extra ::= ("a"\n',  # an unbalanced parenthesis
    ]
    for text in broken:
        assert text != good
        with pytest.raises(GrammarError):
            check_grammar(text)


def _evidence(*sentences):
    from ragtune.documents import Chunk, Hit
    from ragtune.grounding.evidence import Evidence

    chunks = [Chunk(f"c{i // 2}", "d.md", " ".join(sentences), "T", "", 0) for i in range(len(sentences))]
    return [
        Evidence(hit=Hit(chunk=c, score=1.0, relevance=0.5), sentence=s, score=0.9 - i / 10)
        for i, (c, s) in enumerate(zip(chunks, sentences, strict=False))
    ]


def test_citations_come_from_the_evidence_mapped_back_from_short_ids():
    from ragtune.prompt import ContextChunk, number_sources
    from serve.citations import evidence_citations, model_cited

    evidence = _evidence("Refunds within 30 days.", "After 30 days, no refund.", "The trial lasts 14 days.")
    sources = number_sources([ContextChunk(e.chunk_id, "T", "", e.sentence) for e in evidence])
    cited, dropped = model_cited(["S3", "S7"], sources, evidence)
    assert [e.sentence for e in cited] == ["The trial lasts 14 days."] and dropped == ["S7"]
    assert [(c.id, c.quote) for c in evidence_citations(cited)] == [("c1", "The trial lasts 14 days.")]
    # Citing nothing that exists means citing all the evidence; two sentences of one chunk share a citation.
    cited, _ = model_cited([], sources, evidence)
    assert [(c.id, c.quote) for c in evidence_citations(cited)] == [
        ("c0", "Refunds within 30 days. After 30 days, no refund."),
        ("c1", "The trial lasts 14 days."),
    ]
