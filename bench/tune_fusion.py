"""Grid over the fusion settings (rrf_k, dense/bm25 weights, candidates) on one SciFact index.

Run: .venv/bin/python bench/tune_fusion.py [--data ../shared/data/scifact] [--split train]
Tune on the train split only; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evaluation.retrieval import load_beir, score_mode  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import beir_items  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.index import KnowledgeIndex  # noqa: E402
from ragtune.retriever import Retriever  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument("--keep", type=Path, help="reuse/keep the index in this folder")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--rrf-k", default="10,20,40,60")
    parser.add_argument("--bm25-weight", default="1.0,1.5,2.0")
    args = parser.parse_args()
    corpus, queries, qrels = load_beir(args.data, args.split)
    judged = [q for q in qrels if q in queries]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="ragtune-tune-"))
    overrides: dict = {"data_dir": str(folder)}
    if args.chunk_size:
        overrides["chunking"] = {"chunk_size": args.chunk_size}
    settings = load_settings(environ={}, overrides=overrides)
    embedder = Embedder(settings.embedding)
    index = KnowledgeIndex(settings)
    run_ingest(settings, beir_items(corpus), embedder=embedder, index=index)
    ks = [int(x) for x in args.rrf_k.split(",")]
    weights = [float(x) for x in args.bm25_weight.split(",")]
    print(f"{run_ingest.__name__}: chunk_size={settings.chunking.chunk_size}", flush=True)
    for k, bw, cand in itertools.product(ks, weights, [50]):
        rs = settings.retrieval.model_copy(update={"rrf_k": k, "bm25_weight": bw, "candidates": cand})
        figures = score_mode(Retriever(index, embedder, rs), "hybrid", queries, qrels, judged)
        print(
            f"rrf_k={k:3d} bm25_weight={bw:.1f} candidates={cand:3d}  ndcg@10={figures['ndcg@10']:.4f} recall@100={figures['recall@100']:.4f} p50={figures['query_ms_p50']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
