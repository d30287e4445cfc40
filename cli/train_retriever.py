"""`ragtune train retriever ...`: tune the embedder, register it, deploy it into a new index version.

    ragtune train retriever --config C     mine pairs, train, select on dev, save, register retriever-vN
    ragtune train retriever eval V         company held-out hit@1/@3: V against what ingests now
    ragtune train retriever deploy V       gate on hit@3 (hybrid and dense), re-embed the knowledge folder into a new index
                                           version (the old one serves until it is published), point to V
    ragtune train retriever deploy --rollback
    ragtune train retriever fusion V       choose V's RRF weights on dev data (done after training too), record them
    ragtune train retriever models
    ragtune train retriever distill --config C   a shallower student of the embedder (faster ingest), registered

Wiring only: the training is `train/retriever.py`, the registry `ragtune/embedders.py`, the held-out
figures `evaluation/company.py`, the re-embedding the ingest pipeline.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ragtune.errors import UserInputError
from ragtune.settings import EmbeddingSettings, Settings

EXAMPLES = """examples:
  ragtune train retriever --config train/configs/retriever-minilm.yaml
  ragtune train retriever eval retriever-v1
  ragtune eval retrieval data/beir/scifact --split test --embedder retriever-v1
  ragtune train retriever deploy retriever-v1          # gated on company hit@3; --force to override
  ragtune train retriever deploy --rollback
  ragtune train retriever fusion retriever-v1          # re-choose its fusion weights on dev data
  ragtune train retriever models
  ragtune train retriever distill --config train/configs/distill-minilm.yaml"""


def add_parser(tsub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    help_text = "Tune the retrieval embedder on your pairs, register it, deploy it into a new index version."
    p = tsub.add_parser("retriever", help=help_text, description=help_text, epilog=EXAMPLES, formatter_class=fmt)
    p.add_argument(
        "--config", dest="retriever_config", type=Path, help="retriever run config (YAML); trains when no step is given"
    )
    p.add_argument("--max-minutes", type=float, help="override the config's time budget")
    rsub = p.add_subparsers(dest="retriever_command", metavar="STEP")
    s = rsub.add_parser(
        "eval", help="company held-out hit@1/@3: a version against the serving embedder", epilog=EXAMPLES, formatter_class=fmt
    )
    s.add_argument("version")
    s.add_argument("--questions", type=Path, default=Path("train/examples/heldout.jsonl"), help="held-out questions")
    s.add_argument("--json", action="store_true")
    s = rsub.add_parser(
        "deploy", help="re-embed the knowledge folder with a version (gated), or --rollback", epilog=EXAMPLES, formatter_class=fmt
    )
    s.add_argument("version", nargs="?")
    s.add_argument("--rollback", action="store_true", help="go back to the embedder that served before")
    s.add_argument("--force", action="store_true", help="deploy even if the company held-out hit@3 is lower")
    s.add_argument("--questions", type=Path, default=Path("train/examples/heldout.jsonl"), help="held-out questions for the gate")
    s = rsub.add_parser(
        "fusion",
        help="choose a version's fusion weights (RRF, BM25 vs dense) on the dev data of its run; the retriever uses them",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    s.add_argument("version", help="a registered version, or 'base' (with --dry-run: what dev data would pick for it)")
    s.add_argument("--dry-run", action="store_true", help="print the choice, record nothing")
    rsub.add_parser("models", help="list the registered retriever versions and the one ingesting")
    s = rsub.add_parser(
        "distill", help="train a shallower student of the embedder and register it", epilog=EXAMPLES, formatter_class=fmt
    )
    s.add_argument("--config", dest="distill_config", type=Path, help="distillation config (YAML)")


def cmd_retriever(args: argparse.Namespace, settings: Settings) -> int:
    command = args.retriever_command
    if command is None:
        if args.retriever_config is None:
            raise UserInputError(
                "give a config to train (`ragtune train retriever --config FILE`) or a step: eval, deploy, models"
            )
        return run(args, settings)
    from cli.train_distill import distill

    steps = {"eval": evaluate, "deploy": deploy, "fusion": fusion, "models": models, "distill": distill}
    return steps[command](args, settings)


def _registry(settings: Settings):
    from ragtune.embedders import EmbedderRegistry

    return EmbedderRegistry(Path(settings.data_dir))


def _live_retriever(settings: Settings):
    from ragtune.embedders import effective_embedding
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever

    index = KnowledgeIndex(settings)
    if index.current_version() is None:
        return None
    return Retriever(index, Embedder(effective_embedding(settings)), settings.retrieval)


def _store_file(settings: Settings) -> Path | None:
    url = settings.store.url
    if url is None:
        return Path(settings.data_dir) / "conversations.sqlite3"
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def run(args, settings: Settings) -> int:
    from ragtune.embedders import VERSION_PREFIX
    from train.retriever import onnx_parity, train
    from train.retriever_config import load_retriever_config
    from train.retriever_data import assemble

    config = load_retriever_config(args.retriever_config)
    if args.max_minutes is not None:
        config = config.model_copy(update={"max_minutes": args.max_minutes})
    root_base = config.base_model
    if config.base_model.startswith(VERSION_PREFIX):  # tuning a registered version further
        entry = _registry(settings).get(config.base_model)
        config, root_base = config.model_copy(update={"base_model": entry.model_dir}), entry.base_model
    skip = _handoff_texts(settings)
    data = assemble(config, _live_retriever(settings), _store_file(settings), skip)
    info = train(config, data, settings.retrieval, settings.embedding)
    registry = _registry(settings)
    entry = registry.register(
        config.run_dir / "model",
        root_base,
        info["dataset_hash"],
        json.loads(config.model_dump_json()),
        {"dev_base": info["dev_base"], "dev_selected": info["dev_selected"]},
        config.run_dir,
    )
    texts = [e.positive for e in data.examples[:24]] + [e.query for e in data.examples[:8]]
    parity = onnx_parity(Path(entry.model_dir), _onnx_cache(settings.embedding), texts)
    if parity["min_cosine"] < 0.9999:
        raise UserInputError(f"the ONNX export of {entry.version} disagrees with torch (min cosine {parity['min_cosine']})")
    registry.update_eval(entry.version, {"onnx_parity": parity})
    info |= {"version": entry.version, "model_dir": entry.model_dir, "onnx_parity": parity}
    if data.dev:  # without dev data the configured weights stay (nothing to choose on)
        chosen, evidence = _choose_fusion(settings, config, entry.model_dir)
        registry.set_fusion(entry.version, chosen, evidence)
        info["fusion"] = asdict(chosen) | evidence
        print(_fusion_line(entry.version, chosen, evidence))
    (config.run_dir / "run.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ("version", "wall_s", "peak_rss_mb", "steps", "selected_step", "stopped")}, indent=1))
    print(
        f"dev score (mean nDCG@10, {config.select_on}): base {info['dev_base']['dev_score']} -> {info['dev_selected']['dev_score']}"
    )
    print(f"registered {entry.version}; next: ragtune train retriever eval {entry.version}")
    return 0


def _choose_fusion(settings: Settings, config: Any, model: str) -> tuple[Any, dict[str, Any]]:
    """Fusion weights for `model` chosen on the run's dev data (BEIR dev splits, company dev pairs)."""
    from evaluation.fusion import choose_fusion, dev_candidates
    from ragtune.embedders import Fusion
    from train.retriever_data import company_dev_pairs

    embedding = settings.embedding.model_copy(update={"model": model})
    company = [(p.question, p.doc) for p in company_dev_pairs(config) if p.doc]
    sets = dev_candidates(settings, embedding, [b.output for b in config.data.beir], company, _source(settings))
    r = settings.retrieval
    return choose_fusion(sets, Fusion(r.dense_weight, r.bm25_weight, r.rrf_k))


def _fusion_line(name: str, chosen: Any, evidence: dict[str, Any]) -> str:
    return (
        f"fusion for {name}: dense {chosen.dense_weight} / bm25 {chosen.bm25_weight}, rrf_k {chosen.rrf_k}: dev "
        f"{evidence['dev_score']} {evidence['dev']} (configured {evidence['configured']['bm25_weight']} / "
        f"k {evidence['configured']['rrf_k']}: {evidence['configured_dev_score']} {evidence['configured_dev']})"
    )


def fusion(args, settings: Settings) -> int:
    """Choose (and record) a version's fusion weights on the dev data of the config it was trained with."""
    from train.retriever_config import RetrieverConfig

    registry = _registry(settings)
    if args.version == "base":
        if not args.dry_run:
            raise UserInputError("the configured model carries no fusion weights: set retrieval.* or pass --dry-run")
        versions = [v for v in registry.versions() if v.config]
        if not versions:
            raise UserInputError("no registered version: its run's config names the dev data; train one first")
        config, model = RetrieverConfig.model_validate(versions[-1].config), settings.embedding.model
    else:
        entry = registry.get(args.version)
        if "layers" in entry.config:
            raise UserInputError(f"{args.version} is a distilled student: it has no training dev data to choose weights on")
        config, model = RetrieverConfig.model_validate(entry.config), entry.model_dir
    chosen, evidence = _choose_fusion(settings, config, model)
    print(_fusion_line(args.version, chosen, evidence))
    if not args.dry_run:
        registry.set_fusion(args.version, chosen, evidence)
        print(f"recorded: searches of an index version embedded with {args.version} fuse with these weights")
    return 0


def _handoff_texts(settings: Settings) -> set[str]:
    """The hand-off texts the chat API answers with: a rated-up hand-off names no document."""
    from ragtune.grounding.messages import DEFAULTS, message

    chat = settings.chat
    kinds = ("no_answer", "person", "angry", "action", "other_company")
    return {message(k, lang, chat.support_contact, chat.messages) for lang in DEFAULTS for k in kinds if k in DEFAULTS[lang]}


def _onnx_cache(embedding: EmbeddingSettings) -> Path:
    from ragtune.onnx_embedding import default_cache_dir

    return Path(embedding.onnx_cache_dir).expanduser() if embedding.onnx_cache_dir else default_cache_dir()


def _source(settings: Settings) -> Path:
    from ragtune.index import KnowledgeIndex

    manifest = KnowledgeIndex(settings).current_manifest()
    if manifest is not None and manifest.source and Path(manifest.source).is_dir():
        return Path(manifest.source)
    return Path(settings.ingest.source_dir)


def _compare(settings: Settings, version: str, questions_path: Path) -> tuple[dict, dict, str]:
    """(candidate figures, serving figures, the serving embedder's name) on the held-out questions."""
    from evaluation.company import company_hits
    from ragtune.embedders import effective_embedding, version_embedding
    from train.sources import read_heldout

    questions = read_heldout(questions_path)
    source = _source(settings)
    current = _registry(settings).current()
    serving = effective_embedding(settings)
    new = company_hits(settings, version_embedding(settings, version), questions, source)
    old = company_hits(settings, serving, questions, source)
    name = current.version if current and serving.model == current.model_dir else f"base {settings.embedding.model}"
    return new, old, name


def _line(name: str, figures: dict[str, Any]) -> str:
    dense = figures["dense"]
    return (
        f"{name:>28}: hybrid hit@1 {figures['hit@1']:.3f}  hit@3 {figures['hit@3']:.3f}  mrr@10 {figures['mrr@10']:.3f}  "
        f"(dense alone: hit@3 {dense['hit@3']:.3f})  query p50 {figures['query_ms_p50']} ms  ({figures['questions']} questions)"
    )


def evaluate(args, settings: Settings) -> int:
    new, old, name = _compare(settings, args.version, args.questions)
    _registry(settings).update_eval(args.version, {"company": new | {"questions": str(args.questions)}})
    if args.json:
        print(json.dumps({args.version: new, name: old}, indent=1))
    else:
        print(_line(name, old))
        print(_line(args.version, new))
    return 0


def deploy(args, settings: Settings) -> int:
    registry = _registry(settings)
    if args.rollback:
        return rollback(settings)
    if not args.version:
        raise UserInputError("name the version to deploy (see `ragtune train retriever models`), or pass --rollback")
    registry.get(args.version)
    if not args.force:
        new, old, name = _compare(settings, args.version, args.questions)
        print(_line(name, old))
        print(_line(args.version, new))
        for side, a, b in (("hybrid", new, old), ("dense", new["dense"], old["dense"])):
            if a["hit@3"] < b["hit@3"]:
                raise UserInputError(
                    f"{args.version} finds the expected document in the {side} top 3 for {a['hit@3']:.3f} of the held-out "
                    f"questions against {b['hit@3']:.3f} for {name}; not deployed (use --force to override)"
                )
    before = registry.pointer()
    registry.point_to(args.version)  # first, so an ingest that starts meanwhile embeds with it too
    try:
        version = _reembed(settings, args.version)
    except BaseException:
        registry.restore(before)
        raise
    print(f"deployed {args.version}: index version {version} embedded with it is published (the previous one served until now)")
    return 0


def _reembed(settings: Settings, version: str | None) -> str:
    """Ingest the knowledge folder with `version`'s embedder: a changed embedder rebuilds the index
    aside, and it is published atomically when complete."""
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.embedders import version_embedding
    from ragtune.embedding import Embedder
    from ragtune.progress import RichProgress

    source = _source(settings)
    items, failures = scan_folder(source, settings.ingest)
    with RichProgress() as progress:
        report = run_ingest(
            settings,
            items,
            failures,
            source=str(source),
            embedder=Embedder(version_embedding(settings, version)),
            progress=progress,
        )
    if report.failed:
        print(f"{len(report.failed)} documents failed to ingest: " + ", ".join(f.doc_id for f in report.failed))
    if report.version is None:
        raise UserInputError(f"the re-embedding of {source} published nothing")
    return report.version


def rollback(settings: Settings) -> int:
    """Back to the embedder that ingested before: a kept index version of its space is published at
    once; without one the knowledge folder is re-embedded (the current version serves meanwhile)."""
    from ragtune.embedders import version_embedding
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex

    registry = _registry(settings)
    if not registry.pointer().get("version"):
        raise UserInputError("nothing to roll back: no retriever version is deployed")
    previous = registry.previous()
    fingerprint = Embedder(version_embedding(settings, previous)).fingerprint()
    index = KnowledgeIndex(settings)
    kept = [v for v in index.lineage(settings.ingest.keep_versions) if index.manifest(v).embedding_fingerprint == fingerprint]
    registry.point_to(previous, rollback=True)
    if kept:
        with index.lock():
            index.publish(kept[0])
    # Catches up with documents changed since that version (costs only hashing when none did).
    published = _reembed(settings, previous)
    print(f"rolled back to {previous or 'the configured ' + settings.embedding.model}: index version {published} serves")
    return 0


def models(args, settings: Settings) -> int:
    registry = _registry(settings)
    current = registry.current()
    versions = registry.versions()
    if not versions:
        print(f"no retriever versions in {registry.root}: run `ragtune train retriever --config FILE`")
        return 0
    for v in versions:
        mark = "*" if current and current.version == v.version else " "
        dev = v.eval.get("dev_selected", {}).get("dev_score")
        company = v.eval.get("company", {})
        weights = (
            f"bm25 {v.fusion['bm25_weight']} / dense {v.fusion['dense_weight']}, k {v.fusion['rrf_k']}"
            if v.fusion
            else "configured"
        )
        print(
            f"{mark} {v.version}  base {v.base_model}  dev {dev}  company hit@3 {company.get('hit@3')}  fusion {weights}  {v.model_dir}"
        )
    if current is None:
        print(f"  (ingesting with the configured {settings.embedding.model})")
    return 0
