"""Embedding backends compared: torch (sentence-transformers) vs ONNX vs ONNX-int8.

Run: .venv/bin/python bench/embedding_backends.py [--docs 1000] [--queries 200] [--backends torch,onnx,onnx-int8]
For each backend, on the SciFact corpus (../shared/data/scifact):
1. ingest throughput: the first --docs abstracts written as .txt files and ingested into a fresh
   data dir (parse, chunk, embed, Chroma, BM25, publish), chunks per second;
2. query embedding latency, p50/p95 over --queries SciFact queries, one at a time;
3. the serving process: a fresh `python` that builds the app (create_app, engine none) over that
   index and answers one chat request: its RSS after the answer, its peak RSS, and the seconds
   from start to the answer.
Retrieval quality per backend comes from `bench/retrieval_scifact.py --set embedding.backend=NAME`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import scan_folder  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402

SERVE = """
import resource, sys, time
t0 = time.perf_counter()
from fastapi.testclient import TestClient
from ragtune.settings import load_settings
from serve.app import create_app
settings = load_settings(environ={"RAGTUNE_DATA_DIR": sys.argv[1], "RAGTUNE_LLM__ENGINE": "none",
                                  "RAGTUNE_EMBEDDING__BACKEND": sys.argv[2]})
with TestClient(create_app(settings)) as client:
    r = client.post("/v1/chat", json={"message": "Does vitamin D reduce the risk of fractures?"})
    assert r.status_code == 200, r.text
    ready = time.perf_counter() - t0
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:")) / 1024
print(ready, rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch" in sys.modules)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    args = parser.parse_args()
    rows = [
        json.loads(line) for line, _ in zip(open(args.data / "corpus.jsonl", encoding="utf-8"), range(args.docs), strict=False)
    ]
    queries = [
        json.loads(line)["text"]
        for line, _ in zip(open(args.data / "queries.jsonl", encoding="utf-8"), range(args.queries), strict=False)
    ]
    print(
        "| backend | ingest chunks/s | query embedding p50 / p95 | serving RSS after the answer / peak | serving start to first answer | torch loaded |"
    )
    print("|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="ragtune-emb-") as tmp:
            folder = Path(tmp) / "docs"
            folder.mkdir()
            for row in rows:
                (folder / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}\n", encoding="utf-8")
            data = Path(tmp) / "data"
            settings = load_settings(environ={}, overrides={"data_dir": str(data), "embedding": {"backend": backend}})
            embedder = Embedder(settings.embedding)
            embedder.embed_query("warm up")  # model load (and a first ONNX export) is not ingestion work
            t0 = time.perf_counter()
            items, failures = scan_folder(folder, settings.ingest)
            report = run_ingest(settings, items, failures, embedder=embedder)
            rate = report.chunks_embedded / (time.perf_counter() - t0)
            latencies = []
            for q in queries:
                t1 = time.perf_counter()
                embedder.embed_query(q)
                latencies.append((time.perf_counter() - t1) * 1000)
            out = subprocess.run([sys.executable, "-c", SERVE, str(data), backend], capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-3000:])
            ready, rss, peak, torch_loaded = out.stdout.split()[-4:]
            print(
                f"| {backend} | {rate:.1f} ({report.chunks_embedded} chunks) | {np.percentile(latencies, 50):.1f} / "
                f"{np.percentile(latencies, 95):.1f} ms | {float(rss):.0f} / {float(peak):.0f} MB | {float(ready):.1f} s | {torch_loaded} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
