"""One answer from a model process like serving's, and its peak memory (docs/benchmarks.md, Gemma vs SmolLM2).

The serving worker's `load_model` with a base GGUF, a LoRA adapter and the adapter card's chat
template (for a base with none), one greedy answer to a short-prompt question over three sources.
Run it alternately for two adapters to compare them on a machine whose load moves:
    PYTHONPATH=. .venv/bin/python bench/adapter_answer.py BASE.gguf ADAPTER_DIR
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragtune.adapters import read_adapter  # noqa: E402
from ragtune.prompt import ContextChunk, build_messages  # noqa: E402
from serve.engines.llama_worker import load_model  # noqa: E402

CHUNKS = [
    ContextChunk("S1", "Pricing", "Plans", "The Pro plan costs 9.99 EUR per month or 99 EUR per year."),
    ContextChunk("S2", "Storage", "Free", "The Free plan includes 250 GB of storage."),
    ContextChunk("S3", "Refunds", "Annual", "Annual plans can be refunded within 30 days of purchase."),
]


def main() -> None:
    base, adapter_dir = sys.argv[1], sys.argv[2]
    adapter = read_adapter(Path(adapter_dir))
    spec = {"path": base, "lora_path": str(adapter.path), "n_ctx": 4096, "threads": 1, "seed": 0}
    llm = load_model(spec | {"chat_template": adapter.chat_template})
    messages = build_messages("How much is the Pro plan per year?", CHUNKS, [], "Acme Cloud", "short")
    t0 = time.perf_counter()
    out = llm.create_chat_completion(messages=messages, max_tokens=96, temperature=0.0, seed=0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    answer = out["choices"][0]["message"]["content"]
    print(
        json.dumps(
            {
                "adapter": adapter.name,
                "answer": answer,
                "usage": out["usage"],
                "seconds": round(seconds, 2),
                "peak_rss_mb": round(peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
