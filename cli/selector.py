"""`ragtune train selector`: fit the grounding model (evidence selector, answerability, intent)
on the company's examples against the live index, and write it with its held-out report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ragtune.errors import UserInputError
from ragtune.settings import Settings

EXAMPLES = Path("train/examples")
MAX_FALSE_HANDOFF = 0.03
DEFAULT_PAIRS = [
    EXAMPLES / "knowledge_pairs.jsonl",
    EXAMPLES / "paraphrases.jsonl",
    EXAMPLES / "paraphrases_more.jsonl",
    EXAMPLES / "paraphrases_extra.jsonl",
    EXAMPLES / "paraphrases_twins.jsonl",
]
DEFAULT_HANDOFF = [EXAMPLES / "handoff.jsonl", EXAMPLES / "handoff_more.jsonl"]
DEFAULT_QUESTIONS = [
    EXAMPLES / "heldout.jsonl",
    EXAMPLES / "casual.jsonl",
    Path("bench/answer_tuning.jsonl"),
    Path("bench/answer_tuning_v2.jsonl"),
]
DEFAULT_WORDS = EXAMPLES / "product_names.txt"
HELP = (
    "Fit the grounding model (which sentence answers, whether to hand off, the customer's intent) on the company's "
    "examples against the live index; report selection and hand-off figures on a held-out share."
)


def add_step(step) -> None:
    s = step("selector", HELP)
    s.add_argument(
        "--pairs", type=Path, nargs="+", default=DEFAULT_PAIRS, help="question -> quote pairs (JSONL: question, doc, quote)"
    )
    s.add_argument(
        "--handoff", type=Path, nargs="+", default=DEFAULT_HANDOFF, help="questions to hand off, with their kind (JSONL)"
    )
    s.add_argument(
        "--questions",
        type=Path,
        nargs="+",
        default=DEFAULT_QUESTIONS,
        help="questions with kind in_scope / out_of_scope / near_miss (JSONL)",
    )
    s.add_argument(
        "--words", type=Path, default=DEFAULT_WORDS, help="words labelled brand / word (another company's product or not)"
    )
    s.add_argument("--intents-csv", type=Path, help="a support corpus with intent labels (Bitext layout: instruction, intent)")
    s.add_argument("--holdout", type=float, default=0.3, help="share of every set held out for the report (default 0.3)")
    s.add_argument("--seed", type=int, default=13)
    s.add_argument(
        "--max-false-handoff",
        type=float,
        default=MAX_FALSE_HANDOFF,
        help="share of answerable training questions (out of fold) the hand-off threshold may hand off "
        f"(default {MAX_FALSE_HANDOFF}: held-out data runs about 2 points above it)",
    )
    s.add_argument("--out", type=Path, help="where to write the model (default: <data_dir>/grounding/grounding.json)")


def selector(args: argparse.Namespace, settings: Settings) -> int:
    from ragtune.embedding import Embedder
    from ragtune.index import KnowledgeIndex
    from ragtune.retriever import Retriever
    from train.selector import train
    from train.selector_data import data_hash, load_data

    if not 0 < args.max_false_handoff < 0.5:
        raise UserInputError(f"--max-false-handoff {args.max_false_handoff}: give a share between 0 and 0.5, e.g. 0.03")
    if not 0 < args.holdout < 0.9:
        raise UserInputError(f"--holdout {args.holdout}: give a share between 0 and 0.9, e.g. 0.3")
    files = [*args.pairs, *args.handoff, *args.questions, args.words] + ([args.intents_csv] if args.intents_csv else [])
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise UserInputError(f"not found: {', '.join(missing)}")
    index = KnowledgeIndex(settings)
    manifest = index.current_manifest()
    if manifest is None:
        raise UserInputError(f"no index in {settings.data_dir}: run `ragtune ingest` first (the model is fitted against it)")
    try:
        data = load_data(args.pairs, args.handoff, args.questions, args.intents_csv, args.words)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    if len(data.pairs) < 20:
        raise UserInputError(f"{len(data.pairs)} question -> quote pairs: give at least 20 (--pairs)")
    retriever = Retriever(index, Embedder(settings.embedding), settings.retrieval)
    result = train(
        retriever,
        data,
        settings.retrieval.min_relevance,
        settings.chat.evidence_chunks,
        holdout=args.holdout,
        seed=args.seed,
        max_false_handoff=args.max_false_handoff,
        progress=lambda message: print(message, flush=True),
    )
    result.model.report |= {
        "data_hash": data_hash(files),
        "files": [str(p) for p in files],
        "index_version": manifest.version,
    }
    out = args.out or Path(settings.data_dir) / "grounding" / "grounding.json"
    result.model.save(out)
    print(json.dumps(result.report, indent=1))
    print(f"written to {out}; serve it with chat.grounding_model={out} (RAGTUNE_CHAT__GROUNDING_MODEL)")
    # The follow-up model reads this selector's scores: it is fitted again on the new one.
    print(f"then fit its follow-up model: RAGTUNE_CHAT__GROUNDING_MODEL={out} ragtune train followups --out {out}")
    return 0
