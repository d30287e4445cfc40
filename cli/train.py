"""`ragtune train ...`: the operator path from examples to a deployed model, wired from `train/`.

prepare -> run -> eval -> export -> deploy (and --rollback). Only wiring lives here; the work is in
`train/` (which imports the core only) and, for answers through the chat pipeline, in
`evaluation/model_quality.py`. Heavy imports happen inside the handlers so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli import followups as cli_followups
from cli import selector as cli_selector
from ragtune.errors import UserInputError
from ragtune.settings import Settings

EXAMPLES = """examples:
  ragtune train prepare --config train/configs/cpu-smollm2.yaml
  ragtune train run --config train/configs/cpu-smollm2.yaml          # --resume after an interruption
  ragtune train eval data/train/runs/cpu-smollm2
  ragtune train export data/train/runs/cpu-smollm2 --modelfile Modelfile
  ragtune train deploy ragtune-v1                                    # gated on answer quality; --force to override
  ragtune train deploy --rollback
  ragtune train models
  ragtune train selector --intents-csv ../shared/data/bitext/train.csv --out ragtune/grounding/data/grounding.json"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="Tune the answer model: prepare data, LoRA run, eval, export to GGUF, deploy.",
        description="Tune the answer model for the company's tone and the JSON answer format.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tsub = p.add_subparsers(dest="train_command", metavar="STEP")

    def step(name: str, help_text: str) -> argparse.ArgumentParser:
        return tsub.add_parser(
            name, help=help_text, description=help_text, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
        )

    s = step("prepare", "Build the SFT dataset (grounded + no-answer records) against the live index.")
    s.add_argument("--config", dest="train_config", type=Path, required=True, help="training config (YAML)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s = step("validate", "Check a dataset file (train.jsonl / eval.jsonl) record by record.")
    s.add_argument("file", type=Path)
    s.add_argument(
        "--config", dest="train_config", type=Path, help="count tokens with this config's base tokenizer and max_length"
    )
    s = step("run", "Train the LoRA adapter (unsloth on CUDA, transformers + peft elsewhere).")
    s.add_argument("--config", dest="train_config", type=Path, required=True, help="training config (YAML)")
    s.add_argument(
        "--resume", action="store_true", help="continue an interrupted (or time-budget-stopped) run from its last checkpoint"
    )
    s.add_argument("--max-minutes", type=float, help="override the config's time budget for this invocation")
    s.add_argument("--dataset", type=Path, help="dataset folder (default: the config's data.output)")
    s = step("eval", "Base vs tuned: raw llama.cpp (no grammar) on the eval split, and the chat pipeline on held-out questions.")
    s.add_argument("run", type=Path, help="run directory")
    s.add_argument("--limit", type=int, default=40, help="eval-split records for the raw test (default 40)")
    s.add_argument("--questions", type=Path, help="held-out questions (default: the config's data.heldout)")
    s.add_argument("--question-limit", type=int, help="only the first N held-out questions (a smoke run)")
    s.add_argument("--modes", default="raw,pipeline", help="raw, pipeline or both (default)")
    s.add_argument("--base-gguf", type=Path, help="GGUF of the base model (default: the config's base_model when it is a GGUF)")
    s = step(
        "export", "Merge, convert to GGUF with llama.cpp's converter, quantize, write the Modelfile, check parity, register."
    )
    s.add_argument("run", type=Path)
    s.add_argument("--quantization", help="override export.quantization (q4_k_m, q8_0, f16, f32, ...)")
    s.add_argument("--lora-only", action="store_true", help="export the adapter alone as a GGUF LoRA")
    s.add_argument("--modelfile", type=Path, help="also write the Modelfile here, with FROM ./models/ragtune.gguf")
    s = step("deploy", "Switch the chat API to a model version (no restart); refuses a worse one unless --force.")
    s.add_argument("version", nargs="?")
    s.add_argument("--rollback", action="store_true", help="go back to the version that served before")
    s.add_argument("--force", action="store_true", help="deploy even if the answer-quality eval is worse")
    s.add_argument("--questions", type=Path, default=Path("train/examples/heldout.jsonl"), help="held-out questions for the gate")
    step("models", "List the registered model versions and the one serving.")
    cli_selector.add_step(step)
    cli_followups.add_step(step)
    from cli import train_retriever

    train_retriever.add_parser(tsub)


def _config(path: Path):
    from train.config import load_config

    return load_config(path)


def _run_config(run: Path):
    if not (run / "config.yaml").is_file():
        raise UserInputError(f"{run} is not a run directory (no config.yaml): give the folder `ragtune train run` wrote")
    return _config(run / "config.yaml")


def _retriever(settings: Settings):
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever

    return Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from cli.training_output import quiet_training_output

    quiet_training_output()  # before transformers, TRL, peft or datasets is imported
    handler = {
        "prepare": prepare,
        "validate": validate,
        "run": run,
        "eval": evaluate,
        "export": export,
        "deploy": deploy,
        "models": models,
        "selector": cli_selector.selector,
        "followups": cli_followups.followups,
        "retriever": _retriever_step,
    }.get(args.train_command or "")
    if handler is None:
        raise UserInputError(
            "say which step: ragtune train prepare|validate|run|eval|export|deploy|models|selector|followups|retriever (see --help)"
        )
    return handler(args, settings)


def _retriever_step(args, settings: Settings) -> int:
    from cli.train_retriever import cmd_retriever

    return cmd_retriever(args, settings)


def prepare(args, settings: Settings) -> int:
    from ragtune.index import KnowledgeIndex
    from train.preflight import check_examples_indexed, require_training_packages

    config = _config(args.train_config)
    require_training_packages("prepare")
    # Before the long pass: every document the examples cite must be in the live index.
    check_examples_indexed(KnowledgeIndex(settings), list(config.data.examples))
    from ragtune.progress import RichProgress
    from train.dataset import format_summary
    from train.dataset import prepare as build
    from train.model import load_tokenizer

    retriever = _retriever(settings)
    tokenizer = load_tokenizer(config.base_model, config.chat_template)
    with RichProgress() as progress:
        summary = build(config, retriever, tokenizer, settings.chat.company_name, progress)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary) + f"\nwritten to {config.data.output}")
    return 0


def validate(args, settings: Settings) -> int:
    from train.dataset import validate_file

    tokenizer = max_length = None
    if args.train_config:
        from train.model import load_tokenizer
        from train.preflight import require_training_packages

        require_training_packages("validate")
        config = _config(args.train_config)
        tokenizer, max_length = load_tokenizer(config.base_model, config.chat_template), config.max_length
    count = validate_file(args.file, settings.chat.company_name, tokenizer, max_length)
    print(f"{args.file}: {count} records, all valid")
    return 0


def run(args, settings: Settings) -> int:
    from train.preflight import require_training_packages
    from train.run import run as train_run

    config = _config(args.train_config)
    require_training_packages("run")
    if args.max_minutes is not None:
        config = config.model_copy(update={"max_minutes": args.max_minutes})
    info = train_run(config, args.dataset, resume=args.resume)
    print(json.dumps(info, indent=1))
    return 0


def evaluate(args, settings: Settings) -> int:
    from evaluation.model_quality import pipeline_fingerprint, pipeline_responses
    from ragtune.progress import RichProgress
    from train.evaluate import Candidate, format_table
    from train.evaluate import evaluate as run_eval
    from train.model import resolve_base
    from train.preflight import require_training_packages
    from train.sources import read_heldout

    config = _run_config(args.run)
    require_training_packages("eval")
    adapter = args.run / "export" / "adapter" / "adapter.gguf"
    tuned = sorted((args.run / "export").glob("model-*.gguf"), key=lambda p: ("f16" in p.name or "f32" in p.name, p.name))
    if not tuned and not adapter.is_file():
        raise UserInputError(f"{args.run}/export holds no GGUF: run `ragtune train export {args.run}` first")
    base = args.base_gguf
    if base is None:
        folder, gguf = resolve_base(config.base_model)
        if gguf is None:
            raise UserInputError(
                "the base model is not a GGUF: pass --base-gguf (convert it with `ragtune train export` of a zero-step run)"
            )
        base = Path(folder) / gguf
    records = []
    eval_file = config.data.output / "eval.jsonl"
    if eval_file.is_file():
        records = [json.loads(line) for line in eval_file.read_text().splitlines() if line.strip()][: args.limit]
    questions = read_heldout(args.questions or config.data.heldout) if (args.questions or config.data.heldout) else []
    if args.question_limit is not None:
        questions = questions[: args.question_limit]
    retriever = _retriever(settings)
    embedder = retriever.embedder
    modes = tuple(m.strip() for m in args.modes.split(","))
    with RichProgress() as progress:
        # A lora_only export is measured as it is served: the adapter over the base, with its prompt.
        candidate = Candidate(base, adapter) if adapter.is_file() else Candidate(tuned[0])
        report = run_eval(
            {"base": Candidate(base), "tuned": candidate},
            records,
            questions,
            args.run / "eval",
            settings.llm,
            lambda model, qs: pipeline_responses(settings, model.gguf, qs, retriever, model.adapter),
            lambda texts: embedder.embed_documents(texts),
            settings.llm.max_tokens,
            progress,
            modes,
            pipeline_variant=f"answer_mode={settings.chat.answer_mode}",
            company=settings.chat.company_name,
            fingerprint=pipeline_fingerprint(settings, questions, retriever),
        )
    from train.run import loss_chart

    loss_chart(args.run / "metrics.jsonl", args.run / "loss.png")
    if args.question_limit is None:
        _record_eval(settings, args.run, report, base, args.questions or config.data.heldout)
        if adapter.is_file():
            _card_eval(adapter.parent / "card.json", report, args.questions or config.data.heldout)
    print(format_table(report))
    if args.question_limit is not None:  # a partial eval must not become the version's pass rate or gate figures
        print(f"(first {len(questions)} held-out questions only: not recorded in the model registry)")
    print(f"written to {args.run / 'eval'} (report.json, report.md); loss chart {args.run / 'loss.png'}")
    return 0


def _record_eval(settings: Settings, run: Path, report: dict, base: Path, questions: Path | None) -> None:
    """Store the tuned figures with its registry version, and let the deploy gate reuse the
    pipeline figures of both models when it would compute the same thing (same questions file,
    same evaluator)."""
    from evaluation.model_quality import OWN_EVALUATOR, evaluator_name
    from ragtune.registry import ModelRegistry
    from train.evaluate import quality_score

    registry = ModelRegistry(settings.data_dir)
    results = report["results"]
    reusable = questions is not None and "pipeline" in results.get("tuned", {}) and evaluator_name() == OWN_EVALUATOR
    key = _questions_key(questions, settings) if reusable and questions is not None else None

    def gate(figures: dict) -> dict:
        return figures | {"questions_key": key, "quality_score": quality_score(figures), "evaluator": OWN_EVALUATOR}

    # The newest version exported from this run is the one just evaluated (a resumed run exports again).
    exported = [v for v in registry.versions() if v.run_dir and Path(v.run_dir).resolve() == run.resolve()]
    if exported:
        latest = max(exported, key=lambda v: v.created_at)
        registry.update_eval(
            latest.version, results["tuned"] | ({"gate": gate(results["tuned"]["pipeline"])} if reusable else {})
        )
    if reusable and "pipeline" in results.get("base", {}):
        assert key is not None
        _baseline_cache(registry, base, key).write_text(json.dumps(gate(results["base"]["pipeline"]), indent=1))


def _card_eval(card_path: Path, report: dict, questions: Path | None) -> None:
    """Write the figures into the adapter's card: serving reads its pass rate (eval.pipeline.phrased_share)."""
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    results = report["results"]
    card["eval"] = results.get("tuned", {}) | {
        "questions": str(questions) if questions else None,
        "pipeline_variant": report.get("pipeline_variant"),
        "base": results.get("base", {}),
    }
    card_path.write_text(json.dumps(card, indent=1, default=str))


def _questions_key(path: Path, settings: Settings) -> str:
    """Gate figures are reused only for the same questions file and the same pipeline around the
    model (index version, settings, grounding model, answering code)."""
    from evaluation.model_quality import pipeline_fingerprint
    from train.evaluate import file_key
    from train.sources import read_heldout

    questions = read_heldout(path)
    return f"{file_key(path)}-{len(questions)}-{pipeline_fingerprint(settings, questions)}"


def _baseline_cache(registry, gguf: Path, key: str) -> Path:
    from train.evaluate import file_key

    registry.root.mkdir(parents=True, exist_ok=True)
    return registry.root / f"gate-{file_key(gguf)}-{key}.json"


def export(args, settings: Settings) -> int:
    from ragtune.registry import ModelRegistry
    from train.export import export as do_export
    from train.model import load_tokenizer
    from train.modelfile import check_parity, register_with_ollama, render_modelfile
    from train.preflight import require_training_packages

    config = _run_config(args.run)
    require_training_packages("export")
    quantization = args.quantization or config.export.quantization
    lora_only = args.lora_only or config.export.lora_only
    paths = do_export(
        args.run,
        config.base_model,
        quantization,
        lora_only,
        lora_outtype=config.export.lora_outtype,
        chat_template=config.chat_template,
    )
    if lora_only:
        from train.export import write_card

        card = write_card(args.run, config, Path(paths["lora"]))
        print(
            f"adapter {card['name']} for {card['base']} ({card['size_bytes'] / 1e6:.1f} MB, {card['prompt']} prompt): "
            f"{paths['lora']}\nmeasure it with `ragtune train eval {args.run}`; serve it with RAGTUNE_LLM__ADAPTER="
            f"{Path(paths['lora']).parent} (or copy that folder over ragtune/data/adapters/{card['name']})"
        )
        return 0
    gguf = Path(paths["gguf"])
    tokenizer = load_tokenizer(paths["hf"])
    company = settings.chat.company_name
    modelfile = render_modelfile(
        tokenizer,
        gguf.name,
        company,
        config.export.num_ctx,
        config.export.temperature,
        settings.llm.repeat_penalty,
        style=config.prompt,
    )
    parity = check_parity(tokenizer, gguf, modelfile, company)
    (gguf.parent / "Modelfile").write_text(modelfile)
    (gguf.parent / "parity.json").write_text(json.dumps(parity, indent=1))
    print(
        f"parity: {parity['canaries']} canary conversations render identically (HF template, GGUF template, Modelfile) "
        f"and tokenize to the same {parity['tokens_compared']} ids in HF and llama.cpp"
    )
    if args.modelfile:
        args.modelfile.write_text(modelfile.replace(f"FROM ./{gguf.name}", "FROM ./models/ragtune.gguf"))
    run_info = json.loads((args.run / "run.json").read_text()) if (args.run / "run.json").is_file() else {}
    report = args.run / "eval" / "report.json"
    figures = json.loads(report.read_text())["results"].get("tuned", {}) if report.is_file() else {}
    entry = ModelRegistry(settings.data_dir).register(
        gguf, config.base_model, run_info.get("dataset_hash"), json.loads(config.model_dump_json()), figures, args.run
    )
    print(f"registered {entry.version}: {entry.gguf}")
    register_with_ollama(gguf, modelfile, config.export.ollama_name, settings.ollama.host)
    print(f"deploy with: ragtune train deploy {entry.version}")
    return 0


def deploy(args, settings: Settings) -> int:
    from ragtune.registry import ModelRegistry

    registry = ModelRegistry(settings.data_dir)
    if args.rollback:
        previous = registry.rollback()
        print(f"rolled back: the chat API now answers with {previous.version if previous else 'the configured default model'}")
        return 0
    if not args.version:
        raise UserInputError("name the version to deploy (see `ragtune train models`), or pass --rollback")
    candidate = registry.get(args.version)
    if not args.force:
        _gate(settings, registry, candidate, args.questions)
    registry.deploy(candidate.version)
    print(f"deployed {candidate.version}: the chat API switches to it before its next answer (no restart)")
    return 0


def _gate(settings: Settings, registry, candidate, questions_path: Path) -> None:
    """Refuse a candidate that scores worse than the serving model on the held-out questions."""
    from evaluation.model_quality import answer_quality, evaluator_name
    from train.sources import read_heldout

    questions = read_heldout(questions_path)
    key = _questions_key(questions_path, settings)
    current = registry.current()
    serving_gguf = Path(current.gguf) if current else _default_gguf(settings)
    evaluator = evaluator_name()

    def figures_for(gguf: Path, version: str | None) -> dict:
        cache = _baseline_cache(registry, gguf, key)
        cached = (
            registry.get(version).eval.get("gate", {}) if version else (json.loads(cache.read_text()) if cache.is_file() else {})
        )
        if cached.get("questions_key") == key and cached.get("evaluator", evaluator) == evaluator:
            return cached
        result = answer_quality(settings, gguf, questions) | {"questions_key": key}
        if version:
            registry.update_eval(version, {"gate": result})
        else:
            cache.write_text(json.dumps(result, indent=1))
        return result

    new = figures_for(Path(candidate.gguf), candidate.version)
    old = figures_for(serving_gguf, current.version if current else None)
    name = current.version if current else f"the default model ({serving_gguf.name})"
    summary = ", ".join(
        f"{k} {new.get(k)} vs {old.get(k)}"
        for k in ("fact_accuracy", "citation_accuracy", "refusal_accuracy", "false_refusal_rate")
    )
    print(
        f"answer quality on {len(questions)} held-out questions ({new.get('evaluator')}): {candidate.version} {new['quality_score']} "
        f"vs {name} {old['quality_score']} ({summary})"
    )
    if new["quality_score"] < old["quality_score"]:
        raise UserInputError(
            f"{candidate.version} scores {new['quality_score']} against {old['quality_score']} for {name}; not deployed (use --force to override)"
        )


def _default_gguf(settings: Settings) -> Path:
    from serve.engines.llamacpp import resolve_gguf

    return resolve_gguf(settings.llm)


def models(args, settings: Settings) -> int:
    from ragtune.registry import ModelRegistry

    registry = ModelRegistry(settings.data_dir)
    current = registry.current()
    versions = registry.versions()
    if not versions:
        print(f"no model versions in {registry.root}: run `ragtune train export RUN`")
        return 0
    for v in versions:
        mark = "*" if current and current.version == v.version else " "
        score = v.eval.get("gate", {}).get("quality_score", v.eval.get("quality_score"))
        print(f"{mark} {v.version}  base {v.base_model}  dataset {v.dataset_hash}  quality {score}  {v.gguf}")
    return 0
