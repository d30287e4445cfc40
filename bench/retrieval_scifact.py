"""Retrieval quality and latency on SciFact (BEIR layout) for bm25, dense and hybrid.

Run: .venv/bin/python bench/retrieval_scifact.py [--data ../shared/data/scifact] [--split train]
Ingests the corpus once into a temporary index and scores the three modes on it. Prints one
JSON object per mode and a table; figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evaluation.retrieval import evaluate_retrieval  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument("--modes", default="bm25,dense,hybrid")
    parser.add_argument("--max-queries", type=int)
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override a setting, e.g. retrieval.rrf_k=20"
    )
    args = parser.parse_args()
    overrides: dict = {}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        overrides.setdefault(section, {})[field] = value
    settings = load_settings(environ={}, overrides=overrides)
    results = evaluate_retrieval(
        settings, args.data, split=args.split, modes=args.modes.split(","), max_queries=args.max_queries, progress=True
    )
    for figures in results.values():
        print(json.dumps(figures))
    print("\n| mode | nDCG@10 | R@10 | R@100 | MRR@10 | p50 ms | p95 ms |\n|---|---|---|---|---|---|---|")
    for m, f in results.items():
        print(
            f"| {m} | {f['ndcg@10']:.3f} | {f['recall@10']:.3f} | {f['recall@100']:.3f} | {f['mrr@10']:.3f} | {f['query_ms_p50']} | {f['query_ms_p95']} |"
        )
    first = next(iter(results.values()))
    print(f"\nindexed {first['docs']} docs / {first['chunks']} chunks in {first['index_seconds']} s")


if __name__ == "__main__":
    main()
