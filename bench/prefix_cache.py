"""Prompt-eval time saved by keeping the prompts' static head in llama.cpp's KV cache (bundled model).

Run: .venv/bin/python bench/prefix_cache.py [--questions 12] [--rounds 3]   (after `ragtune ingest`)

Builds answer prompts of the served shape for the held-out questions of
train/examples/heldout.jsonl (the prompt builder's rules, three sources from the live index cut to
their first two sentences, the question; rendered and tokenized exactly as the engine does), then
decodes each prompt in the model process's code path twice, interleaved so both see the same
machine load: cold (nothing decoded: `llm.prefix_cache = false`) and warm (the head learned by
serve/engines/prefix_cache.py restored first, as after a request that started differently; back-to-back
answers get the same reuse from llama-cpp-python's own prefix match). Only the prompt is decoded
(`Llama.eval`), no generation, so the difference is the prompt-eval time alone. Printed: prompt
tokens, head tokens, median wall and CPU milliseconds (CPU: the process's user+sys time, less
sensitive to other work on a shared machine) cold and warm, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragtune.embedding import Embedder  # noqa: E402
from ragtune.index import KnowledgeIndex  # noqa: E402
from ragtune.prompt import ContextChunk, build_messages, number_sources  # noqa: E402
from ragtune.retriever import Retriever  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402
from serve.engines.llama_worker import load_model  # noqa: E402
from serve.engines.llamacpp import LlamaCppEngine, resolve_gguf  # noqa: E402
from serve.engines.prefix_cache import PrefixCache  # noqa: E402


def first_sentences(text: str, n: int = 2) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+", text.strip())[:n])


def prompts(settings, engine: LlamaCppEngine, n: int) -> list[list[int]]:
    rows = [json.loads(line) for line in (ROOT / "train/examples/heldout.jsonl").read_text().splitlines() if line.strip()]
    retriever = Retriever(KnowledgeIndex(settings), Embedder(settings.embedding), settings.retrieval)
    out = []
    for row in rows[:n]:
        hits = retriever.search(row["question"], top_k=3).hits
        chunks = [ContextChunk(h.chunk.id, h.chunk.title, h.chunk.section, first_sentences(h.chunk.text)) for h in hits]
        messages = build_messages(row["question"], number_sources(chunks).chunks, [], settings.chat.company_name)
        out.append(engine.prompt_ids(messages))
    return out


def decode(llm, tokens: list[int], cache: PrefixCache | None) -> tuple[float, float, int]:
    """(wall ms, CPU ms, tokens decoded) for decoding `tokens` cold (cache None) or after restoring the head."""
    llm.reset()
    wall, cpu = time.perf_counter(), time.process_time()  # the head's restore counts too
    skipped = cache.prepare(llm, tokens) if cache is not None else 0
    llm.eval(tokens[skipped:])
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, len(tokens) - skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings()
    gguf = resolve_gguf(settings.llm)
    engine = LlamaCppEngine(settings, gguf)
    ids = prompts(settings, engine, args.questions)
    llm = load_model({"path": str(gguf), "n_ctx": settings.llm.n_ctx, "threads": settings.llm.threads})
    # Learn the head as serving does: from two successive prompts.
    cache = PrefixCache()
    for tokens in ids[:2]:
        llm.reset()
        llm.eval(tokens)
        cache.learn(llm, tokens)
    assert cache.tokens, "no shared head between the first two prompts"
    load_before = os.getloadavg()[0]
    cold_wall, cold_cpu, warm_wall, warm_cpu = [], [], [], []
    for _ in range(args.rounds):
        for tokens in ids:
            w, c, _n = decode(llm, tokens, None)
            cold_wall.append(w)
            cold_cpu.append(c)
            w, c, _n = decode(llm, tokens, cache)
            warm_wall.append(w)
            warm_cpu.append(c)
    med = statistics.median
    print(
        f"{gguf.name}, {os.cpu_count()} cores, threads {settings.llm.threads or 'all'}, {len(ids)} prompts x {args.rounds} rounds, "
        f"load average {load_before:.1f} / {os.getloadavg()[0]:.1f}"
    )
    print("| prompt tokens (mean) | head tokens | cold wall / CPU ms | warm wall / CPU ms | saved wall / CPU |")
    print("|---|---|---|---|---|")
    print(
        f"| {statistics.mean(len(t) for t in ids):.0f} | {len(cache.tokens)} | {med(cold_wall):.0f} / {med(cold_cpu):.0f} "
        f"| {med(warm_wall):.0f} / {med(warm_cpu):.0f} | {1 - med(warm_wall) / med(cold_wall):.0%} / {1 - med(warm_cpu) / med(cold_cpu):.0%} |"
    )


if __name__ == "__main__":
    main()
