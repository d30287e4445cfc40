"""Chat pipeline figures: latency without generation, streaming with the embedded model, JSON validity.

Run: .venv/bin/python bench/chat_pipeline.py [--tiny 200] [--smollm 20]
1. retrieval + prompt packing + validation latency (no token generation), p50/p95;
2. with the bundled SmolLM2-135M-Instruct (llama.cpp, CPU): time to first streamed token and total;
3. JSON validity: the share of answers that validate against the schema, over --tiny answers from
   the tiny random-weight GGUF the test suite builds and --smollm answers from SmolLM2, with how
   many needed the retry.
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

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import scan_folder  # noqa: E402
from ragtune.answer import parse_answer  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.errors import InvalidModelOutput  # noqa: E402
from ragtune.index import KnowledgeIndex  # noqa: E402
from ragtune.retriever import Retriever  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402
from serve.chat import ChatService  # noqa: E402
from serve.engines.counting import CountingEngine  # noqa: E402
from serve.engines.llamacpp import LlamaCppEngine, bundled_gguf  # noqa: E402
from serve.store import Database  # noqa: E402
from serve.store.conversations import ConversationStore  # noqa: E402

QUESTIONS = [
    "Can I get my money back if I cancel my yearly subscription?",
    "How much does the Business plan cost per user?",
    "I forgot my Vault passphrase, can you reset it?",
    "How long are deleted files kept in the trash?",
    "What are your support opening hours?",
    "The desktop app keeps crashing on startup, what can I do?",
    "What is the API rate limit?",
    "Do you sell my personal data?",
    "How do I share a file with someone outside my team?",
    "Which phones does the mobile app support?",
    "My payment failed, will my files be deleted?",
    "How do I export all my data?",
    "Is two-factor authentication available?",
    "Why is sync so slow?",
    "How do I restore an earlier version of a file?",
    "What happens when my free trial ends?",
    "Do students get a discount?",
    "Where are my files stored?",
    "What is the largest file I can upload?",
    "How do I remove a member from my team?",
]
CANNED = json.dumps(
    {"answer": "You can cancel within 30 days for a full refund.", "citations": [], "confidence": "high", "handoff": False}
)


def pct(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50):.1f} ms, p95 {np.percentile(values, 95):.1f} ms (n={len(values)})"


async def validity(service: ChatService, engine: CountingEngine, n: int, label: str) -> None:
    ok = retried = corrected = 0
    check_ms: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        service.settings.llm.seed = i
        before = engine.calls
        try:
            response = await service.answer(QUESTIONS[i % len(QUESTIONS)])
            parse_answer(json.dumps(response.answer_only().model_dump()))
            ok += response.mode == "generated"
            corrected += not response.verification.passed
            check_ms.append(response.timings_ms.get("evidence_ms", 0.0))
        except InvalidModelOutput:
            pass
        retried += engine.calls - before > 1
    print(
        f"JSON validity [{label}]: {ok}/{n} valid ({100 * ok / n:.1f}%), {retried} needed the retry, {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    if check_ms:
        print(
            f"verification [{label}]: {corrected}/{len(check_ms)} answers rejected; evidence selection {pct(check_ms)}",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", type=int, default=200)
    parser.add_argument("--smollm", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragtune-chatbench-") as tmp:
        # Generative mode: these figures are about the model's own replies (auto would replace rejected ones).
        settings = load_settings(
            environ={}, overrides={"data_dir": str(Path(tmp) / "data"), "chat": {"answer_mode": "generative"}}
        )
        embedder = Embedder(settings.embedding)
        items, failures = scan_folder(ROOT / "knowledge", settings.ingest)
        run_ingest(settings, items, failures, embedder=embedder)
        retriever = Retriever(KnowledgeIndex(settings), embedder, settings.retrieval)
        store = ConversationStore(Database.open(None, Path(tmp)))

        smol = LlamaCppEngine(settings, bundled_gguf())
        service = ChatService(settings, retriever, smol, store)
        await service.prepare("warm up")
        latencies = []
        for _ in range(5):
            for q in QUESTIONS:
                t0 = time.perf_counter()
                await service.prepare(q)
                parse_answer(CANNED)
                latencies.append((time.perf_counter() - t0) * 1000)
        print(f"pipeline without generation (retrieval + packing + validation): {pct(latencies)}", flush=True)

        ttft, total = [], []
        for q in QUESTIONS[:10]:
            t0 = time.perf_counter()
            first = None
            async for kind, _payload in service.stream(q):
                if kind == "delta" and first is None:
                    first = time.perf_counter()
            ttft.append((first - t0) * 1000)
            total.append((time.perf_counter() - t0) * 1000)
        print(f"SmolLM2-135M stream, time to first token: {pct(ttft)}", flush=True)
        print(f"SmolLM2-135M stream, total: {pct(total)}", flush=True)

        counting = CountingEngine(smol)
        await validity(ChatService(settings, retriever, counting, store), counting, args.smollm, "SmolLM2-135M-Instruct Q4_1")
        await smol.aclose()

        from tests.tiny_model import build_tiny_gguf

        tiny_settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"max_tokens": 384})})
        tiny = CountingEngine(LlamaCppEngine(tiny_settings, build_tiny_gguf(Path(tmp) / "tiny")))
        await validity(ChatService(tiny_settings, retriever, tiny, store), tiny, args.tiny, "tiny random-weight Llama")


if __name__ == "__main__":
    asyncio.run(main())
