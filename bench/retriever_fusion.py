"""One embedder on a BEIR split, the hybrid ranking under several retrieval variants on one index.

Run: .venv/bin/python bench/retriever_fusion.py data/beir/scifact --split test --embedder retriever-v1
     [--variants carried,configured,evidence] [--max-queries N] [--choose-fusion]

The corpus is ingested once with the embedder (as `ragtune eval retrieval --embedder` does) and the
judged queries are scored (`evaluation.retrieval.score_mode`: nDCG@10, recall@10/100, MRR@10, query
p50/p95) for each variant: `carried` fuses with the weights the embedder's folder carries (the
default, `retrieval.tuned_fusion`), `configured` with `retrieval.dense_weight/bm25_weight/rrf_k`,
`evidence` adds the evidence-selector second stage (`retrieval.evidence_rerank`) to `carried`.

`--choose-fusion` (a registered version) first does what `ragtune train retriever fusion VERSION`
does, on the index built here rather than a second one: the dev split's queries of the same folder
and the company dev pairs of the version's config give the candidates, `evaluation.fusion.choose_fusion`
picks the weights, the registry records them; then the test split is scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.fusion import candidates, choose_fusion, dev_candidates  # noqa: E402
from evaluation.retrieval import load_beir, score_mode  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import beir_items  # noqa: E402
from ragtune.embedders import EmbedderRegistry, Fusion, resolve_embedding  # noqa: E402
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
    parser.add_argument("--choose-fusion", action="store_true", help="choose and record the version's weights on dev data first")
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
        if args.choose_fusion:
            choose(settings, args, index, embedder, embedding)
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


def choose(settings, args, index, embedder, embedding) -> None:
    from train.retriever_config import RetrieverConfig
    from train.retriever_data import company_dev_pairs

    registry = EmbedderRegistry(Path(settings.data_dir))
    config = RetrieverConfig.model_validate(registry.get(args.embedder).config)
    _, queries, qrels = load_beir(args.dataset, "dev")
    retriever = Retriever(index, embedder, index.settings.retrieval)
    sets = {Path(args.dataset).name: candidates(retriever, [(queries[q], qrels[q]) for q in qrels if q in queries])}
    company = [(p.question, p.doc) for p in company_dev_pairs(config) if p.doc]
    sets |= dev_candidates(settings, embedding, [], company, Path(settings.ingest.source_dir))
    r = settings.retrieval
    chosen, evidence = choose_fusion(sets, Fusion(r.dense_weight, r.bm25_weight, r.rrf_k))
    registry.set_fusion(args.embedder, chosen, evidence)
    print(f"fusion for {args.embedder}: {chosen}; dev {evidence['dev_score']} {evidence['dev']}", file=sys.stderr)
    print(json.dumps({"fusion": evidence}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
