"""`ragtune eval retrieval`: ingest a BEIR-layout corpus into a fresh index and score retrieval.

Quality is measured at document level (chunks of one document count once, at their best rank),
as BEIR defines it: nDCG@10 with graded relevance, Recall@10/@100, MRR@10. Latency is measured in
a second pass with the serving configuration (top-10), so the figure is what a chat request pays.
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ingest.pipeline import run_ingest
from ingest.sources import beir_items
from ragtune.embedding import Embedder
from ragtune.errors import UserInputError
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Mode, Retriever
from ragtune.settings import Settings


def load_beir(folder: Path, split: str) -> tuple[Path, dict[str, str], dict[str, dict[str, int]]]:
    folder = Path(folder)
    corpus = folder / "corpus.jsonl"
    queries_path = folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for path in (corpus, queries_path, qrels_path):
        if not path.is_file():
            raise UserInputError(f"{path} is missing: a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    queries: dict[str, str] = {}
    with open(queries_path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if not row or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return corpus, queries, qrels


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    dcg = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(judged.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {d for d, r in judged.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    for i, doc in enumerate(ranked[:k]):
        if judged.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def doc_ranking(retriever: Retriever, query: str, mode: Mode, depth: int = 100) -> list[str]:
    """Documents in order of their best chunk, `depth` deep."""
    result = retriever.search(query, top_k=depth * 2, mode=mode)
    seen: dict[str, None] = {}
    for hit in result.hits:
        seen.setdefault(hit.chunk.doc_id, None)
    return list(seen)[:depth]


def evaluate_retrieval(
    settings: Settings,
    dataset: Path,
    split: str = "test",
    mode: Mode | None = None,
    max_queries: int | None = None,
    progress: bool = False,
    modes: list[Mode] | None = None,
) -> dict[str, Any]:
    """Score one mode (or several, sharing one index when `modes` is given)."""
    corpus, queries, qrels = load_beir(dataset, split)
    judged = [q for q in qrels if q in queries][: max_queries or None]
    if not judged:
        raise UserInputError(f"no query in {dataset}/queries.jsonl has judgements in qrels/{split}.tsv")
    with tempfile.TemporaryDirectory(prefix="ragtune-eval-") as tmp:
        run_settings = settings.model_copy(
            update={"data_dir": Path(tmp), "chroma": settings.chroma.model_copy(update={"url": None})}
        )
        embedder = Embedder(run_settings.embedding)
        index = KnowledgeIndex(run_settings)
        prog = None
        if progress:
            from ragtune.progress import RichProgress

            prog = RichProgress()
            prog.__enter__()
        try:
            started = time.perf_counter()
            report = run_ingest(
                run_settings,
                beir_items(corpus),
                source=str(corpus),
                embedder=embedder,
                index=index,
                progress=prog,
                scan_planted=False,  # an evaluation corpus is not served to customers
            )
            index_seconds = time.perf_counter() - started
            retriever = Retriever(index, embedder, run_settings.retrieval)
            results: dict[str, dict[str, Any]] = {}
            for m in modes or [mode or settings.retrieval.mode]:
                results[m] = score_mode(retriever, m, queries, qrels, judged, prog)
        finally:
            if prog is not None:
                prog.__exit__(None, None, None)
        for figures in results.values():
            figures.update(
                index_seconds=round(index_seconds, 2), docs=len(report.unchanged) + len(report.added), chunks=report.chunks_total
            )
        return results if modes else next(iter(results.values()))


def score_mode(retriever: Retriever, mode: Mode, queries, qrels, judged: list[str], prog=None) -> dict[str, Any]:
    """nDCG@10, recall@10/100, MRR@10 and query latency of one retrieval mode over the judged queries."""
    sums = {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    if prog:
        prog.start(f"eval {mode}", len(judged))
    for qid in judged:
        ranked = doc_ranking(retriever, queries[qid], mode)
        sums["ndcg@10"] += ndcg_at(ranked, qrels[qid], 10)
        sums["recall@10"] += recall_at(ranked, qrels[qid], 10)
        sums["recall@100"] += recall_at(ranked, qrels[qid], 100)
        sums["mrr@10"] += mrr_at(ranked, qrels[qid], 10)
        if prog:
            prog.advance(f"eval {mode}")
    latencies = []
    for qid in judged:  # the serving path: top_k from settings, timed end to end
        t0 = time.perf_counter()
        retriever.search(queries[qid], mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
    figures: dict[str, Any] = {k: round(v / len(judged), 4) for k, v in sums.items()}
    figures.update(
        query_ms_p50=round(float(np.percentile(latencies, 50)), 2),
        query_ms_p95=round(float(np.percentile(latencies, 95)), 2),
        mode=mode,
        queries=len(judged),
    )
    return figures


def format_report(report: dict[str, Any]) -> str:
    order = [
        "mode",
        "docs",
        "queries",
        "ndcg@10",
        "recall@10",
        "recall@100",
        "mrr@10",
        "index_seconds",
        "query_ms_p50",
        "query_ms_p95",
    ]
    return "\n".join(f"{key:>14}: {report[key]}" for key in order if key in report)
