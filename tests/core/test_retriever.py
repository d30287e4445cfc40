"""Hybrid retrieval over the bundled knowledge base, with the real model and real Chroma."""

import pytest

from ragtune.errors import UserInputError
from ragtune.retriever import rrf

QUESTIONS = [
    ("Can I get my money back if I cancel my yearly subscription?", "policies/refund-policy.pdf"),
    ("How much does the Business plan cost per user?", "products/pricing.html"),
    ("I forgot my Vault passphrase, can you reset it?", "products/vault.md"),
    ("How long are deleted files kept in the trash?", "policies/data-retention.docx"),
    ("What are your support opening hours?", "faq/support-hours.txt"),
    ("The desktop app keeps crashing on startup", "troubleshooting/desktop-app-crashes.docx"),
    ("What is the API rate limit?", "products/api.md"),
    ("Do you sell my personal data?", "policies/privacy-policy.docx"),
]


@pytest.mark.parametrize(("question", "doc"), QUESTIONS)
def test_hybrid_finds_the_right_document(retriever, question, doc):
    hits = retriever.search(question, top_k=3).hits
    assert doc in [h.chunk.doc_id for h in hits], [h.chunk.doc_id for h in hits]


def test_modes_rank_differently_and_report_their_sides(retriever):
    question = "API rate limit 600 requests"
    dense = retriever.search(question, mode="dense", top_k=5)
    bm25 = retriever.search(question, mode="bm25", top_k=5)
    hybrid = retriever.search(question, mode="hybrid", top_k=5)
    assert all(h.bm25_rank is None for h in dense.hits)
    assert all(h.dense_rank is None for h in bm25.hits)
    assert any(h.dense_rank and h.bm25_rank for h in hybrid.hits)
    assert hybrid.hits[0].chunk.doc_id == "products/api.md"
    assert {"embed_ms", "dense_ms", "bm25_ms"} <= set(hybrid.timings_ms)


def test_relevance_separates_on_topic_from_off_topic(retriever, knowledge_index):
    settings, _ = knowledge_index
    threshold = settings.retrieval.min_relevance
    on_topic = retriever.search("How do I reset my password?")
    off_topic = retriever.search("What is the boiling point of tungsten on Jupiter?")
    assert on_topic.relevant(threshold)
    assert off_topic.relevant(threshold) == []
    assert all(0.0 <= h.relevance <= 1.0 for h in on_topic.hits + off_topic.hits)


def test_metadata_filters_apply_to_both_sides(retriever):
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search("refund cancel plan", mode=mode, filters={"category": "faq"}, top_k=10).hits
        assert hits and all(h.chunk.category == "faq" for h in hits)
        hits = retriever.search("refund", mode=mode, filters={"doc_type": ["pdf", "docx"]}, top_k=10).hits
        assert hits and all(h.chunk.doc_type in ("pdf", "docx") for h in hits)


def test_unknown_filter_is_a_user_error(retriever):
    with pytest.raises(UserInputError, match="unknown filter 'colour'"):
        retriever.search("refund", filters={"colour": "red"})


def test_rrf_rewards_agreement():
    fused = rrf([(["a", "b", "c"], 1.0), (["b", "c", "a"], 1.0)], k=60)
    assert max(fused, key=fused.get) == "b"
    weighted = rrf([(["a", "b"], 3.0), (["b", "a"], 1.0)], k=60)
    assert max(weighted, key=weighted.get) == "a"


@pytest.mark.slow
def test_retriever_follows_a_newly_published_version(settings, kb_copy, embedder):
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever

    def ingest():
        items, failures = scan_folder(kb_copy, settings.ingest)
        return run_ingest(settings, items, failures, embedder=embedder)

    ingest()
    index = KnowledgeIndex(settings)
    retriever = Retriever(index, embedder, settings.retrieval)
    before = retriever.search("how long is the free trial")
    assert "14-day" in before.hits[0].chunk.text

    (kb_copy / "faq/free-trial.txt").write_text("Free trial\n\nEvery new account gets a 30-day free trial of the Pro plan.\n")
    assert ingest().updated == ["faq/free-trial.txt"]
    after = retriever.search("how long is the free trial")  # the same retriever object, no restart
    assert after.version != before.version and after.version == index.current_version()
    assert "30-day" in after.hits[0].chunk.text
    trial = [h.chunk.text for h in after.hits if h.chunk.doc_id == "faq/free-trial.txt"]
    assert trial and not any("14-day" in text for text in trial)  # the old chunk is gone


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory):
    """A real cross-encoder folder: the bundled MiniLM with a fresh (untrained) scoring head.

    No reranker model can be downloaded here; this one exercises the real CrossEncoder path
    (load, pairwise scoring, reordering) even though its scores carry no meaning.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ragtune.embedding import bundled_minilm_path

    source = bundled_minilm_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(source), num_labels=1)
    target = tmp_path_factory.mktemp("cross-encoder")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(target)
    return target


@pytest.mark.slow
def test_reranker_reorders_the_fused_candidates(knowledge_index, embedder, cross_encoder_dir):
    from ragtune.retriever import Retriever

    settings, index = knowledge_index
    plain = Retriever(index, embedder, settings.retrieval)
    config = settings.retrieval.model_copy(update={"reranker_model": str(cross_encoder_dir), "reranker_candidates": 12})
    reranking = Retriever(index, embedder, config)

    question = "How do I export all my data?"
    result = reranking.search(question, top_k=4)
    scores = [h.rerank_score for h in result.hits]
    assert len(result.hits) == 4 and None not in scores
    assert scores == sorted(scores, reverse=True)
    assert result.timings_ms["rerank_ms"] > 0
    # The reranker chooses among the fused top 12, not only the top 4 it returns.
    fused_top12 = [h.id for h in plain.search(question, top_k=12).hits]
    assert {h.id for h in result.hits} <= set(fused_top12)


def test_a_search_whose_version_is_pruned_under_it_answers_whole_from_the_next(tmp_path, embedder):
    """With ingest.keep_versions = 1 a re-ingest removes the version a running search started on;
    the search answers from the version that replaced it, not with an error."""
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever
    from ragtune.settings import load_settings

    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "refunds.md").write_text("# Refunds\n\nAnnual plans can be refunded within 30 days of purchase.\n")
    (kb / "vault.md").write_text("# Vault\n\nVault is an encrypted folder that needs a second factor to open.\n")
    settings = load_settings(environ={"RAGTUNE_DATA_DIR": str(tmp_path / "data"), "RAGTUNE_INGEST__KEEP_VERSIONS": "1"})
    index = KnowledgeIndex(settings)

    def ingest() -> str:
        report = run_ingest(settings, *scan_folder(kb, settings.ingest), embedder=embedder, index=index)
        return report.version

    v1 = ingest()

    class IngestsDuringFirstQuery:
        """The real embedder; its first query embedding waits for a whole re-ingest, which is how
        a search that started on v1 finds v1 gone when it reaches Chroma."""

        def __init__(self) -> None:
            self.versions: list[str] = []

        def fingerprint(self) -> str:  # the real embedder's vector space
            return embedder.fingerprint()

        def embed_query(self, text: str):
            if not self.versions:
                (kb / "refunds.md").write_text("# Refunds\n\nAnnual plans can be refunded within 45 days of purchase.\n")
                self.versions.append(ingest())
            return embedder.embed_query(text)

    hook = IngestsDuringFirstQuery()
    retriever = Retriever(index, hook, settings.retrieval)  # type: ignore[arg-type]
    retriever.snapshot()  # the search starts on v1
    result = retriever.search("How long can an annual plan be refunded?", top_k=2)
    v2 = hook.versions[0]
    assert v2 != v1 and index.list_versions() == [v2]  # v1 is gone from disk and from Chroma
    assert result.version == v2 and "45 days" in result.hits[0].chunk.text
    assert {h.chunk.id for h in result.hits} <= {c.id for c in index.read_chunks(v2)}


def test_the_evidence_selector_as_second_stage_reorders_only_the_fused_top(knowledge_index, embedder):
    """Off by default; on, the fused top `evidence_rerank_depth` chunks come back reordered by their
    best sentence's selector probability (the same chunks), the rest in fused order behind them."""
    from ragtune.grounding.evidence import EvidenceSelector, corpus_stats_from
    from ragtune.retriever import Retriever

    settings, index = knowledge_index
    question = "How long do I have to ask for a refund on an annual plan?"
    plain = Retriever(index, embedder, settings.retrieval)
    fused = plain.search(question, top_k=12).hits
    assert all(h.rerank_score is None for h in fused) and "evidence_rerank_ms" not in plain.search(question).timings_ms
    staged = Retriever(
        index, embedder, settings.retrieval.model_copy(update={"evidence_rerank": True, "evidence_rerank_depth": 6})
    )
    result = staged.search(question, top_k=12)
    head, tail = result.hits[:6], result.hits[6:]
    assert {h.id for h in head} == {h.id for h in fused[:6]} and [h.id for h in tail] == [h.id for h in fused[6:12]]
    scores = [h.rerank_score for h in head]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1 and "evidence_rerank_ms" in result.timings_ms
    # Each score is the best of the selector's probabilities for the chunk's own sentences.
    stats = corpus_stats_from(plain.snapshot().chunks)  # IDF over the searched version, as the stage takes it
    evidence = EvidenceSelector(embedder, stats=lambda: stats).score(question, fused[:6])
    best = {h.id: max(e.score for e in evidence if e.chunk_id == h.id) for h in fused[:6]}
    assert all(h.rerank_score == pytest.approx(best[h.id], abs=1e-6) for h in head)
