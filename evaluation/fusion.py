"""Fusion weights for an embedder, chosen on dev data only: the RRF of its dense ranking and BM25.

A tuned embedder's dense side is stronger than the base model's (on SciFact its dense nDCG@10 nears
BM25's), so the weights set for the base model (BM25 1.5, dense 1.0) undervalue it. `choose_fusion`
measures a grid of weights the way serving ranks and keeps the best on dev data:

- the BEIR dev split written by `ragtune train retriever` (`qrels/dev.tsv`: queries never trained on
  and disjoint from the test split), the whole corpus ingested into a fresh index with the embedder;
- the company dev pairs of the run's config (`examples_dev_share`), the knowledge folder ingested
  afresh, each pair's `doc` the relevant document.

Each query's dense and BM25 candidates (`retrieval.candidates` each, as serving takes them) are
fetched once and fused for every grid point with `ragtune.retriever.rrf`; a grid point scores the
mean over the dev sets of document-level nDCG@10 (the training run's dev score). Only the ratio
of the weights matters, so the dense weight stays 1. Ties go to the weights nearest the configured
ones. The held-out questions (`train/examples/heldout.jsonl`) and test splits are never read here.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from evaluation.retrieval import load_beir, ndcg_at
from ingest.pipeline import run_ingest
from ingest.sources import beir_items, scan_folder
from ragtune.embedders import Fusion
from ragtune.embedding import Embedder
from ragtune.errors import UserInputError
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever, rrf
from ragtune.settings import EmbeddingSettings, Settings

BM25_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
RRF_KS = (10, 30, 60)

# (dense chunk ids, bm25 chunk ids, chunk -> document, judged documents) per dev query
Candidates = list[tuple[list[str], list[str], dict[str, str], dict[str, int]]]


def candidates(retriever: Retriever, questions: list[tuple[str, dict[str, int]]]) -> Candidates:
    """Each question's dense and BM25 candidates, as a hybrid search takes them before fusing."""
    n = retriever.settings.candidates
    out: Candidates = []
    for question, judged in questions:
        dense = retriever.search(question, top_k=n, mode="dense").hits
        sparse = retriever.search(question, top_k=n, mode="bm25").hits
        doc_of = {h.chunk.id: h.chunk.doc_id for h in dense + sparse}
        out.append(([h.chunk.id for h in dense], [h.chunk.id for h in sparse], doc_of, judged))
    return out


def fused_ndcg(found: Candidates, fusion: Fusion) -> float:
    """Mean document-level nDCG@10 of the hybrid ranking with `fusion`."""
    total = 0.0
    for dense, sparse, doc_of, judged in found:
        scores = rrf([(dense, fusion.dense_weight), (sparse, fusion.bm25_weight)], fusion.rrf_k)
        ranked = sorted(scores, key=lambda c: scores[c], reverse=True)
        docs = list(dict.fromkeys(doc_of[c] for c in ranked))
        total += ndcg_at(docs, judged, 10)
    return total / max(len(found), 1)


def _fresh_retriever(
    settings: Settings, embedding: EmbeddingSettings, tmp: Path, items: Any, failures: Any, source: str, scan_planted: bool
) -> Retriever:
    run_settings = settings.model_copy(
        update={"data_dir": tmp, "chroma": settings.chroma.model_copy(update={"url": None}), "embedding": embedding}
    )
    embedder = Embedder(embedding)
    index = KnowledgeIndex(run_settings)
    run_ingest(run_settings, items, failures, source=source, embedder=embedder, index=index, scan_planted=scan_planted)
    return Retriever(index, embedder, run_settings.retrieval)


def dev_candidates(
    settings: Settings,
    embedding: EmbeddingSettings,
    beir_dev: list[Path],
    company_dev: list[tuple[str, str]],
    knowledge: Path,
) -> dict[str, Candidates]:
    """The candidates of every dev set: each BEIR folder's `dev` split, the company dev (question, doc) pairs."""
    sets: dict[str, Candidates] = {}
    for folder in beir_dev:
        corpus, queries, qrels = load_beir(folder, "dev")
        asked = [(queries[q], qrels[q]) for q in qrels if q in queries]
        if not asked:
            raise UserInputError(f"{folder}/qrels/dev.tsv judges no query of {folder}/queries.jsonl")
        with tempfile.TemporaryDirectory(prefix="ragtune-fusion-") as tmp:
            retriever = _fresh_retriever(settings, embedding, Path(tmp), list(beir_items(corpus)), [], str(corpus), False)
            sets[Path(folder).name] = candidates(retriever, asked)
    if company_dev:
        with tempfile.TemporaryDirectory(prefix="ragtune-fusion-") as tmp:
            items, failures = scan_folder(knowledge, settings.ingest)
            retriever = _fresh_retriever(settings, embedding, Path(tmp), items, failures, str(knowledge), True)
            sets["company"] = candidates(retriever, [(q, {doc: 1}) for q, doc in company_dev])
    if not sets:
        raise UserInputError("no dev data to choose fusion weights on: the config names no BEIR dev split or company pairs")
    return sets


def choose_fusion(sets: dict[str, Candidates], configured: Fusion) -> tuple[Fusion, dict[str, Any]]:
    """The grid point with the best mean dev nDCG@10 (ties: the nearest to `configured`), and the evidence."""
    grid = [Fusion(1.0, w, k) for k in RRF_KS for w in BM25_WEIGHTS]
    if configured not in grid:
        grid.append(configured)
    ratio = configured.bm25_weight / configured.dense_weight if configured.dense_weight else math.inf

    def distance(f: Fusion) -> tuple[float, int]:
        return (abs(math.log((f.bm25_weight + 1e-9) / (ratio * f.dense_weight + 1e-9))), abs(f.rrf_k - configured.rrf_k))

    scored = []
    for fusion in grid:
        per_set = {name: round(fused_ndcg(found, fusion), 4) for name, found in sets.items()}
        scored.append((round(sum(per_set.values()) / len(per_set), 4), per_set, fusion))
    best = min(scored, key=lambda s: (-s[0], distance(s[2])))
    at_configured = next(s for s in scored if s[2] == configured)
    evidence = {
        "metric": "mean over dev sets of hybrid nDCG@10",
        "dev_sets": {name: len(found) for name, found in sets.items()},
        "dev_score": best[0],
        "dev": best[1],
        "configured": {"dense_weight": configured.dense_weight, "bm25_weight": configured.bm25_weight, "rrf_k": configured.rrf_k},
        "configured_dev_score": at_configured[0],
        "configured_dev": at_configured[1],
        "grid": [{"bm25_weight": f.bm25_weight, "rrf_k": f.rrf_k, "dev_score": score} for score, _, f in scored],
    }
    return best[2], evidence
