"""Answer quality and latency per answer mode, with the bundled SmolLM2 model and the bundled knowledge/.

Run: .venv/bin/python bench/answer_quality.py [--questions bench/answer_questions.jsonl] [--modes auto,generative,extractive]
Ingests knowledge/ into a temporary data dir, then runs `evaluate_answers` (what `ragtune eval answers`
runs) once per mode with one shared llama.cpp engine, and prints one Markdown table row per mode,
then a second table with the issue-16 measures (hand-offs, conversations, judged form).
Add --json FILE to keep every answer for inspection. A file with conversations (the v2 sets) runs
them too; bench/answer_reporting.jsonl is for reporting only (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.answers import evaluate_answers, load_set  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import scan_folder  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402
from serve.engines.llamacpp import LlamaCppEngine, bundled_gguf  # noqa: E402


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=ROOT / "bench" / "answer_questions.jsonl")
    parser.add_argument("--modes", default="auto,generative,extractive")
    parser.add_argument("--json", type=Path, help="write every mode's full report here")
    args = parser.parse_args()
    questions = load_set(args.questions)
    with tempfile.TemporaryDirectory(prefix="ragtune-answerbench-") as tmp:
        settings = load_settings(environ={}, overrides={"data_dir": str(Path(tmp) / "data")})
        items, failures = scan_folder(ROOT / "knowledge", settings.ingest)
        run_ingest(settings, items, failures, embedder=Embedder(settings.embedding))
        engine = LlamaCppEngine(settings, bundled_gguf())
        turns = sum(len(c.turns) for c in questions.conversations)
        print(
            f"{len(questions.questions)} questions and {len(questions.conversations)} conversations ({turns} turns) "
            f"from {args.questions.name}; model {engine.name}\n"
        )
        print(
            "| mode | fact accuracy | citation accuracy | retrieval hit | false hand-offs | out-of-scope refused | near-miss refused "
            "| schema valid | debris | injections resisted | answered by | verification rejections | p50 | p95 |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        reports = {}
        for mode in args.modes.split(","):
            t0 = time.perf_counter()
            report = evaluate_answers(settings, questions, mode=mode, engine=engine if mode != "extractive" else None)
            reports[mode] = report
            s = report["summary"]
            print(
                f"| {mode} | {pct(s['fact_accuracy'])} | {pct(s['citation_accuracy'])} | {pct(s['retrieval_hit'])} "
                f"| {pct(s['false_handoffs'])} | {pct(s['out_of_scope_refused'])} | {pct(s['near_scope_refused'])} "
                f"| {pct(s['schema_valid'])} | {s['debris']} | {pct(s['injection_resisted'])} "
                f"| {', '.join(f'{k} {v}' for k, v in sorted(s['modes'].items()))} "
                f"| {', '.join(f'{k} {v}' for k, v in sorted(s['rejections'].items())) or '-'} "
                f"| {s['latency_s'].get('p50', 0):.2f} s | {s['latency_s'].get('p95', 0):.2f} s |",
                flush=True,
            )
            print(f"<!-- {mode}: {time.perf_counter() - t0:.0f} s, errors {s['errors']} -->", flush=True)
        print(
            "\n| mode | refusals (out of scope + near miss) | hand-off precision / recall | yes/no direct | follow-ups right "
            "| fact in 1st sentence | no fragments | no off-topic | no repeats | no filler |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for mode, report in reports.items():
            s, form = report["summary"], report["summary"]["form"]
            conv = s["conversations"] or {}
            print(
                f"| {mode} | {pct(s['refusals'])} | {pct(s['handoff']['precision'])} / {pct(s['handoff']['recall'])} "
                f"| {pct(s['yes_no_direct'])} | {pct(conv.get('follow_ups_right'))} | {pct(form['fact_first_sentence'])} "
                f"| {pct(form['no_fragments'])} | {pct(form['no_off_topic'])} | {pct(form['no_repeats'])} | {pct(form['no_filler'])} |"
            )
        if args.json:
            args.json.write_text(json.dumps(reports, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
