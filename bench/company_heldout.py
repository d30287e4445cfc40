"""Company held-out questions: hit@1/@3 and MRR@10 of the expected document per embedder, with and
without the second stage (the evidence selector reordering the fused top chunks).

Run: .venv/bin/python bench/company_heldout.py --embedders base,retriever-v1 [--stages fused,evidence]
     [--questions train/examples/heldout.jsonl] [--knowledge knowledge]

Each embedder's index is the knowledge folder ingested afresh (as `ragtune train retriever eval`); a
tuned version is fused with the weights it carries (`retrieval.tuned_fusion`). Nothing is recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.company import company_hits  # noqa: E402
from ragtune.embedders import resolve_embedding  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402
from train.sources import read_heldout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedders", default="base")
    parser.add_argument("--stages", default="fused,evidence")
    parser.add_argument("--questions", type=Path, default=ROOT / "train/examples/heldout.jsonl")
    parser.add_argument("--knowledge", type=Path, default=ROOT / "knowledge")
    parser.add_argument("--no-tuned-fusion", action="store_true", help="fuse every embedder with the configured weights")
    args = parser.parse_args()
    settings = load_settings()
    questions = read_heldout(args.questions)
    print("| embedder | stage | hybrid hit@1 | hybrid hit@3 | MRR@10 | query p50 | missed@3 |")
    print("|---|---|---|---|---|---|---|")
    for name in args.embedders.split(","):
        for stage in args.stages.split(","):
            retrieval = settings.retrieval.model_copy(
                update={"evidence_rerank": stage == "evidence", "tuned_fusion": not args.no_tuned_fusion}
            )
            run = settings.model_copy(update={"retrieval": retrieval})
            r = company_hits(run, resolve_embedding(settings, name), questions, args.knowledge)
            print(
                f"| {name} | {stage} | {r['hit@1']:.3f} | {r['hit@3']:.3f} | {r['mrr@10']:.3f} | {r['query_ms_p50']} ms | "
                f"{'; '.join(r['missed@3'])} |",
                flush=True,
            )
            print(json.dumps({"embedder": name, "stage": stage, **r}), file=sys.stderr)


if __name__ == "__main__":
    main()
