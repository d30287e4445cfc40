"""Base vs tuned retriever on a BEIR split: nDCG@10, recall, MRR and query latency per mode.

Run: .venv/bin/python bench/retriever_scifact.py data/beir/scifact --split test --embedders base,retriever-v1
     [--modes hybrid,dense,bm25] [--set embedding.backend=onnx-int8-static]

For each embedder (`base`, a registered `retriever-vN`, or a model folder; as `ragtune eval retrieval
--embedder`) one fresh index of the corpus is built and every mode is scored on it, exactly as
`ragtune eval retrieval DIR --split SPLIT --mode MODE --embedder NAME` scores one mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.retrieval import evaluate_retrieval  # noqa: E402
from ragtune.embedders import resolve_embedding  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--embedders", default="base")
    parser.add_argument("--modes", default="hybrid,dense,bm25")
    parser.add_argument("--set", action="append", default=[], help="section.field=value (repeatable)")
    args = parser.parse_args()
    overrides: dict = {}
    for item in args.set:
        key, value = item.split("=", 1)
        section, field = key.split(".", 1)
        overrides.setdefault(section, {})[field] = value
    settings = load_settings(overrides=overrides or None)
    print("| embedder | mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | query p50 / p95 | index s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.embedders.split(","):
        run = settings.model_copy(update={"embedding": resolve_embedding(settings, name)})
        results = evaluate_retrieval(run, args.dataset, split=args.split, modes=args.modes.split(","))  # type: ignore[arg-type]
        for mode, r in results.items():
            print(
                f"| {name} | {mode} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} | "
                f"{r['query_ms_p50']} / {r['query_ms_p95']} ms | {r['index_seconds']} |",
                flush=True,
            )
        print(json.dumps({name: results}), file=sys.stderr)


if __name__ == "__main__":
    main()
