"""Company held-out questions: does the retriever rank the expected document first, or in the top 3?

`company_hits` ingests the knowledge folder into a fresh temporary index with the given embedding
settings (so a candidate embedder is measured without touching the live index) and asks every
in-scope held-out question through the hybrid retriever (what serves) and the dense side alone (the
embedder by itself, which the BM25 side can mask): hit@1, hit@3 and MRR@10 of the question's `doc`
at document level, and the query latency. The retriever deploy gate compares these figures.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.retrieval import doc_ranking
from ingest.pipeline import run_ingest
from ingest.sources import scan_folder
from ragtune.embedding import Embedder
from ragtune.errors import UserInputError
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Mode, Retriever
from ragtune.settings import EmbeddingSettings, Settings


def score_questions(retriever: Retriever, questions: list[dict[str, Any]], mode: Mode = "hybrid") -> dict[str, Any]:
    """hit@1/@3, MRR@10 and query latency of the in-scope questions' expected documents."""
    asked = [q for q in questions if q.get("kind", "in_scope") == "in_scope" and q.get("doc")]
    if not asked:
        raise UserInputError("no in-scope held-out question names its expected 'doc'")
    hits1 = hits3 = 0
    rr = 0.0
    latencies: list[float] = []
    missed: list[str] = []
    for q in asked:
        t0 = time.perf_counter()
        ranked = doc_ranking(retriever, q["question"], mode, depth=10)
        latencies.append((time.perf_counter() - t0) * 1000)
        rank = ranked.index(q["doc"]) + 1 if q["doc"] in ranked else None
        hits1 += rank == 1
        hits3 += rank is not None and rank <= 3
        rr += 1 / rank if rank else 0.0
        if rank is None or rank > 3:
            missed.append(q["question"])
    n = len(asked)
    return {
        "questions": n,
        "hit@1": round(hits1 / n, 4),
        "hit@3": round(hits3 / n, 4),
        "mrr@10": round(rr / n, 4),
        "query_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "missed@3": missed,
    }


def company_hits(settings: Settings, embedding: EmbeddingSettings, questions: list[dict], source: Path) -> dict[str, Any]:
    """Score `questions` over `source` ingested afresh with `embedding` (a temporary data dir)."""
    with tempfile.TemporaryDirectory(prefix="ragtune-company-") as tmp:
        run_settings = settings.model_copy(
            update={"data_dir": Path(tmp), "chroma": settings.chroma.model_copy(update={"url": None}), "embedding": embedding}
        )
        items, failures = scan_folder(Path(source), run_settings.ingest)
        embedder = Embedder(embedding)
        index = KnowledgeIndex(run_settings)
        run_ingest(run_settings, items, failures, source=str(source), embedder=embedder, index=index)
        retriever = Retriever(index, embedder, run_settings.retrieval)
        dense = score_questions(retriever, questions, "dense")
        return score_questions(retriever, questions) | {"model": embedding.model, "dense": dense}
