"""Embedding throughput on one thread: teacher vs distilled student, torch vs ONNX, interleaved rounds.

Run: .venv/bin/python bench/embed_one_thread.py STUDENT_FOLDER [--docs 300] [--rounds 3]

The first --docs SciFact abstracts embedded as documents by each (model, backend) on one thread
(torch.set_num_threads(1); onnxruntime intra-op threads 1), one after the other per round, so the
figure is CPU work per text and a busy shared machine moves every row alike. No chunking or index:
bench/ingest_backends.py measures the whole ingest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragtune.embedding import resolve_model  # noqa: E402
from ragtune.onnx_embedding import OnnxEncoder, default_cache_dir, export_onnx  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("student")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    rows = [json.loads(line) for line in open(args.data / "corpus.jsonl", encoding="utf-8")][: args.docs]
    texts = [f"{r['title']}\n{r['text']}" for r in rows]
    runs = {}
    for name, folder in (("teacher", Path(resolve_model("all-MiniLM-L6-v2"))), ("student", Path(args.student))):
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        runs[f"{name} torch"] = lambda ts, m=model: m.encode(ts, batch_size=32, normalize_embeddings=True)
        onnx = OnnxEncoder(folder, export_onnx(folder, default_cache_dir()), threads=1)
        runs[f"{name} onnx"] = lambda ts, e=onnx: e.encode(ts, 32)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        for name, encode in runs.items():
            t0 = time.perf_counter()
            encode(texts)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
            print(f"round {r + 1} {name}: {rates[name][-1]:.1f} texts/s", file=sys.stderr, flush=True)
    print("| model, backend (1 thread) | texts/s (median) | x teacher torch (median of rounds) |")
    print("|---|---|---|")
    for name in runs:
        ratio = statistics.median(a / t for a, t in zip(rates[name], rates["teacher torch"], strict=True))
        print(f"| {name} | {statistics.median(rates[name]):.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
