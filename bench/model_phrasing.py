"""What the model adds in auto mode: the share of answerable questions it phrases, their facts
against the extractive answers to the same questions, and latency (issue 17, docs/benchmarks.md).

Run (after `ragtune ingest`; the settings are the checkout's own, so the shipped adapter serves):
    .venv/bin/python bench/model_phrasing.py train/examples/heldout.jsonl --variants tuned,extractive
Variants: tuned (the default: bundled base + shipped adapter, chat.min_model_pass_rate as set),
tuned-asked (the same, asked on every answer), base-asked (the base alone, asked on every answer),
extractive. Questions: a held-out file (`question`, `kind`, `fact`, `doc`) or a bench answer set.
--json FILE keeps every answer with the evidence it was checked against, for reading the phrased
ones (invented content is judged by a person, not by this script).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.answer_sets import Question, load_set  # noqa: E402
from evaluation.answers import score  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.index import KnowledgeIndex  # noqa: E402
from ragtune.retriever import Retriever  # noqa: E402
from ragtune.settings import Settings, load_settings  # noqa: E402
from serve.chat import ChatService  # noqa: E402
from serve.engines import create_engine  # noqa: E402
from serve.store import Database  # noqa: E402
from serve.store.conversations import ConversationStore  # noqa: E402

KINDS = {"in_scope": "in_scope", "near_miss": "near_scope", "out_of_scope": "out_of_scope"}


def questions_of(path: Path) -> list[Question]:
    first = json.loads(path.read_text().splitlines()[0])
    if "fact" in first or first.get("kind") == "near_miss":  # train/examples/heldout.jsonl layout
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [
            Question(
                id=f"h{i}",
                kind=KINDS[r["kind"]],
                question=r["question"],
                expected_paths=[r["doc"]] if r.get("doc") else [],
                facts=[r["fact"]] if r.get("fact") else [],
            )
            for i, r in enumerate(rows)
        ]
    return load_set(path).questions


def variant_settings(settings: Settings, variant: str) -> Settings:
    llm, chat = settings.llm, settings.chat
    if variant == "extractive":
        chat = chat.model_copy(update={"answer_mode": "extractive"})
    elif variant in ("tuned-asked", "base-asked"):
        chat = chat.model_copy(update={"answer_mode": "auto", "min_model_pass_rate": 0.0})
    if variant == "base-asked":
        llm = llm.model_copy(update={"adapter": "none"})
    return settings.model_copy(update={"llm": llm, "chat": chat})


async def run(settings: Settings, questions: list[Question]) -> list[dict[str, Any]]:
    retriever = Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
    engine = create_engine(settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ConversationStore(Database.open(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", Path(tmp)))
        service = ChatService(settings, retriever, engine, store)
        try:
            if engine is not None:
                await service.engine_ready()
            for q in questions:
                t0 = time.perf_counter()
                response = await service.answer(q.question, history=[])
                body = response.model_dump()
                row = score(q, body, None, time.perf_counter() - t0)
                row |= {
                    "model": body.get("model"),
                    "total_ms": body["timings_ms"].get("total_ms"),
                    "verification": body.get("verification"),
                    "evidence": [e["sentence"] for e in body["context"]["evidence"]],
                    "prompt_tokens": body["usage"]["prompt_tokens"],
                }
                row.pop("form", None)
                rows.append(row)
        finally:
            if engine is not None:
                await engine.aclose()
            store.db.close()
    return rows


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def quantile(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("questions", type=Path)
    parser.add_argument("--variants", default="tuned,extractive")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--kinds", help="only questions of these kinds (comma-separated, e.g. in_scope)")
    args = parser.parse_args()
    settings = load_settings()
    questions = questions_of(args.questions)
    if args.kinds:
        questions = [q for q in questions if q.kind in args.kinds.split(",")]
    reports = {v: asyncio.run(run(variant_settings(settings, v), questions)) for v in args.variants.split(",")}
    extractive = {r["id"]: r for r in reports.get("extractive", [])}
    print(f"{len(questions)} questions from {args.questions}, {sum(q.kind == 'in_scope' for q in questions)} answerable\n")
    print(
        "| variant | model | answerable phrased (passed verification) | fact accuracy, phrased | same questions, "
        "extractive | fact accuracy, all answerable | p50 | p95 | prompt tokens (phrased, mean) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, rows in reports.items():
        answerable = [r for r in rows if r["kind"] == "in_scope" and r.get("fact") is not None]
        phrased = [r for r in answerable if r["mode"] == "generated"]
        same = [extractive[r["id"]] for r in phrased if r["id"] in extractive]
        ms = [r["total_ms"] for r in rows if r.get("total_ms") is not None]
        tokens = [r["prompt_tokens"] for r in phrased]
        p50, p95 = quantile(ms, 0.5), quantile(ms, 0.95)
        print(
            f"| {variant} | {rows[0].get('model') if rows else '-'} | {len(phrased)}/{len(answerable)} "
            f"({pct(len(phrased) / len(answerable) if answerable else None)}) "
            f"| {sum(r['fact'] for r in phrased)}/{len(phrased)} | {sum(r['fact'] for r in same)}/{len(same)} "
            f"| {pct(sum(r['fact'] for r in answerable) / len(answerable) if answerable else None)} "
            f"| {'-' if p50 is None else f'{p50 / 1000:.2f} s'} | {'-' if p95 is None else f'{p95 / 1000:.2f} s'} "
            f"| {round(sum(tokens) / len(tokens)) if tokens else '-'} |"
        )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1, default=str))


if __name__ == "__main__":
    main()
