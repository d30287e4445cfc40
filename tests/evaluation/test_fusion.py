"""Fusion weights chosen on dev data: the grid's best mean nDCG@10 wins, ties go to the configured
weights, and the dev candidates come from fresh indexes of the dev split and the company dev pairs only."""

from __future__ import annotations

import json

import pytest

from evaluation.fusion import choose_fusion, dev_candidates, fused_ndcg
from ragtune.embedders import Fusion
from ragtune.errors import UserInputError
from tests.conftest import KNOWLEDGE

CONFIGURED = Fusion(1.0, 1.5, 10)


def _query(relevant: str, dense: list[str], bm25: list[str]):
    doc_of = {c: c.split("#")[0] for c in dense + bm25}
    return (dense, bm25, doc_of, {relevant: 1})


def test_a_dev_set_where_the_dense_side_is_right_chooses_a_light_bm25_weight():
    # The relevant document is dense's first and BM25's fourth; BM25's first three are wrong.
    found = [_query(f"d{i}", [f"d{i}#0", "x#0", "y#0", "z#0"], ["x#0", "y#0", "z#0", f"d{i}#0"]) for i in range(5)]
    chosen, evidence = choose_fusion({"dev": found}, CONFIGURED)
    assert chosen.bm25_weight < 1.0
    assert evidence["dev_score"] == 1.0 and evidence["configured_dev_score"] < 1.0
    assert fused_ndcg(found, chosen) > fused_ndcg(found, CONFIGURED)


def test_a_dev_set_where_bm25_is_right_keeps_bm25_heavy_and_a_tie_keeps_the_configured_weights():
    found = [_query("d", ["x#0", "y#0", "z#0", "d#0"], ["d#0", "x#0", "y#0", "z#0"])]
    chosen, _ = choose_fusion({"dev": found}, CONFIGURED)
    assert chosen.bm25_weight > 1.0
    same = [_query("d", ["d#0", "x#0"], ["d#0", "x#0"])]  # every weight ranks alike
    chosen, evidence = choose_fusion({"dev": same}, CONFIGURED)
    assert chosen == CONFIGURED and len(evidence["grid"]) == 24


def test_every_dev_set_counts_alike_in_the_score():
    good_for_dense = [_query("d", ["d#0", "x#0", "y#0", "z#0"], ["x#0", "y#0", "z#0", "d#0"])]
    good_for_bm25 = [_query("d", ["x#0", "y#0", "z#0", "d#0"], ["d#0", "x#0", "y#0", "z#0"])] * 3
    _, evidence = choose_fusion({"a": good_for_dense, "b": good_for_bm25}, CONFIGURED)
    best = evidence["dev"]
    assert evidence["dev_score"] == pytest.approx((best["a"] + best["b"]) / 2, abs=1e-4)


def _beir(folder, docs, queries, dev, test):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    for name, rows in (("dev", dev), ("test", test)):
        (folder / "qrels" / f"{name}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in rows))


def test_dev_candidates_come_from_fresh_indexes_of_the_dev_split_and_the_company_dev_pairs(settings, tmp_path):
    docs = {
        "a": "Vitamin D deficiency is linked to bone loss in older adults.",
        "b": "Aspirin lowers the risk of a second heart attack.",
        "c": "Regular exercise improves sleep quality in adults.",
    }
    queries = {"q1": "Does vitamin D affect bones?", "q2": "Does aspirin prevent heart attacks?", "q3": "exercise and sleep"}
    folder = tmp_path / "beir"
    _beir(folder, docs, queries, dev=[("q1", "a"), ("q2", "b")], test=[("q3", "c")])
    company = [("How is my data encrypted at rest?", "security-faq.md")]
    sets = dev_candidates(settings, settings.embedding, [folder], company, KNOWLEDGE / "faq")
    assert {name: len(found) for name, found in sets.items()} == {"beir": 2, "company": 1}  # q3 (test) never asked
    dense, bm25, doc_of, judged = sets["company"][0]
    assert judged == {"security-faq.md": 1} and "security-faq.md" in {doc_of[c] for c in dense}
    assert len(dense) == len(set(dense)) > len(bm25) > 0  # every chunk is a dense candidate, BM25 only matching ones
    vit_dense, _, vit_docs, _ = sets["beir"][0]
    assert vit_docs[vit_dense[0]] == "a"  # the real embedder ranks the vitamin D abstract first
    chosen, evidence = choose_fusion(sets, CONFIGURED)
    assert evidence["dev_sets"] == {"beir": 2, "company": 1} and isinstance(chosen, Fusion)
    with pytest.raises(UserInputError, match="no dev data"):
        dev_candidates(settings, settings.embedding, [], [], KNOWLEDGE / "faq")
