"""One embedder on a BEIR split, the hybrid ranking under several retrieval variants on one index.

Run: .venv/bin/python bench/retriever_fusion.py data/beir/scifact --split test --embedder retriever-v1
     [--variants carried,configured,evidence] [--max-queries N]

The corpus is ingested once with the embedder (as `ragtune eval retrieval --embedder` does) and the
judged queries are scored (`evaluation.retrieval.score_mode`: nDCG@10, recall@10/100, MRR@10, query
p50/p95) for each variant: `carried` fuses with the weights the embedder's folder carries (the
default, `retrieval.tuned_fusion`), `configured` with `retrieval.dense_weight/bm25_weight/rrf_k`,
`evidence` adds the evidence-selector second stage (`retrieval.evidence_rerank`) to `carried`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.retrieval import load_beir, score_mode  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import beir_items  # noqa: E402
from ragtune.embedders import resolve_embedding  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.index import KnowledgeIndex  # noqa: E402
from ragtune.retriever import Retriever  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402

VARIANTS = {
    "carried": {"tuned_fusion": True},
    "configured": {"tuned_fusion": False},
    "evidence": {"tuned_fusion": True, "evidence_rerank": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--embedder", default="base")
    parser.add_argument("--variants", default="carried,configured")
    parser.add_argument("--max-queries", type=int)
    args = parser.parse_args()
    settings = load_settings()
    embedding = resolve_embedding(settings, args.embedder)
    corpus, queries, qrels = load_beir(args.dataset, args.split)
    judged = [q for q in qrels if q in queries][: args.max_queries or None]
    print("| embedder | variant | fusion (dense / bm25, k) | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | query p50 / p95 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="ragtune-fusion-bench-") as tmp:
        run = settings.model_copy(
            update={"data_dir": Path(tmp), "chroma": settings.chroma.model_copy(update={"url": None}), "embedding": embedding}
        )
        embedder = Embedder(embedding)
        index = KnowledgeIndex(run)
        run_ingest(run, list(beir_items(corpus)), source=str(corpus), embedder=embedder, index=index, scan_planted=False)
        for name in args.variants.split(","):
            retriever = Retriever(index, embedder, run.retrieval.model_copy(update=VARIANTS[name]))
            f = retriever.fusion_for(index.current_manifest())
            r = score_mode(retriever, "hybrid", queries, qrels, judged)
            print(
                f"| {args.embedder} | {name} | {f.dense_weight} / {f.bm25_weight}, {f.rrf_k} | {r['ndcg@10']:.4f} | "
                f"{r['recall@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} | {r['query_ms_p50']} / {r['query_ms_p95']} ms |",
                flush=True,
            )
            print(json.dumps({"embedder": args.embedder, "variant": name, **r}), file=sys.stderr)


if __name__ == "__main__":
    main()
