"""Ingest throughput per embedding backend, measured in interleaved rounds on a shared machine.

Run: .venv/bin/python bench/ingest_backends.py [--model FOLDER] [--docs 300] [--rounds 3]
     [--backends torch,onnx,onnx-int8,onnx-int8-static] [--student FOLDER --student-backends onnx,torch]

Each round ingests the first --docs SciFact abstracts (written as .txt files) into a fresh data dir
once per backend, one backend after the other, so every backend sees the same machine load; the
table gives each backend's median chunks/s over the rounds and its ratio to torch in the same round
(median), and the vectors' cosine to the fp32 ONNX ones (the same model) on those abstracts.
`onnx-int8-static` needs the model folder's calibration.jsonl (`ragtune train retriever` writes it;
for the bundled model pass --calibrate N to calibrate on N other SciFact abstracts). `--student` adds
rows for a second model (a distilled student, `ragtune train retriever distill`) in the same rounds,
its ratio to the first model's torch and its cosine to the first model's fp32 ONNX vectors. The
planted-instruction scan (which embeds every sentence again) is off unless --scan-planted: the
figures are chunking, embedding and indexing, as in the issue 12 and 20 runs.
Retrieval quality per backend: `ragtune eval retrieval DIR --split test --embedder ...` with
RAGTUNE_EMBEDDING__BACKEND set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import scan_folder  # noqa: E402
from ragtune.embedding import Embedder, resolve_model  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="embedding.model: the bundled one or a folder")
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnx,onnx-int8,onnx-int8-static")
    parser.add_argument("--calibrate", type=int, default=0, help="write a calibration.jsonl of N abstracts (after --docs)")
    parser.add_argument(
        "--scan-planted", action="store_true", help="also scan every sentence for planted instructions (embeds each one)"
    )
    parser.add_argument("--student", help="a second model folder measured in the same rounds (rows 'student <backend>')")
    parser.add_argument("--student-backends", default="onnx,onnx-int8-static")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.data / "corpus.jsonl", encoding="utf-8")]
    docs, spare = rows[: args.docs], rows[args.docs :]
    runs = [(b, b) for b in args.backends.split(",")]  # (row label, backend)
    if args.student:
        runs += [(f"student {b}", b) for b in args.student_backends.split(",")]
    backends = [label for label, _ in runs]
    with tempfile.TemporaryDirectory(prefix="ragtune-ingest-") as tmp:
        model = args.model
        if args.calibrate:  # a copy of the model folder with calibration texts the ingested docs are not among
            model = str(Path(tmp) / "model")
            shutil.copytree(resolve_model(args.model), model)
            with open(Path(model) / "calibration.jsonl", "w", encoding="utf-8") as handle:
                for row in spare[: args.calibrate]:
                    handle.write(json.dumps({"text": f"{row['title']}\n{row['text']}"}) + "\n")
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for row in docs:
            (folder / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}\n", encoding="utf-8")
        embedders = {}
        model_of = {label: (args.student if label.startswith("student ") else model) for label, _ in runs}
        for label, backend in runs:
            settings = load_settings(environ={}, overrides={"embedding": {"backend": backend, "model": model_of[label]}})
            embedders[label] = Embedder(settings.embedding)
            embedders[label].embed_query("warm up")  # model load and a first export are not ingest work
        rates: dict[str, list[float]] = {b: [] for b in backends}
        for r in range(args.rounds):
            for backend, engine in runs:
                settings = load_settings(
                    environ={},
                    overrides={
                        "data_dir": str(Path(tmp) / f"d{r}-{backend.replace(' ', '-')}"),
                        "embedding": {"backend": engine, "model": model_of[backend]},
                    },
                )
                t0 = time.perf_counter()
                items, failures = scan_folder(folder, settings.ingest)
                report = run_ingest(settings, items, failures, embedder=embedders[backend], scan_planted=args.scan_planted)
                rates[backend].append(report.chunks_embedded / (time.perf_counter() - t0))
                print(f"round {r + 1} {backend}: {rates[backend][-1]:.1f} chunks/s", file=sys.stderr, flush=True)
        texts = [f"{row['title']}\n{row['text']}" for row in docs[:200]]
        reference = embedders["onnx"].embed_documents(texts) if "onnx" in embedders else None
        print(f"model {args.model}, {args.docs} abstracts, {args.rounds} interleaved rounds\n")
        print("| backend | ingest chunks/s (median) | x torch (median of rounds) | cosine to fp32 ONNX, min / mean |")
        print("|---|---|---|---|")
        for backend in backends:
            ratio = (
                statistics.median(a / t for a, t in zip(rates[backend], rates["torch"], strict=True))
                if "torch" in rates
                else None
            )
            cosine = "-"
            if reference is not None:
                sims = np.sum(reference * embedders[backend].embed_documents(texts), axis=1)
                cosine = f"{sims.min():.4f} / {sims.mean():.4f}"
            ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
            print(f"| {backend} | {statistics.median(rates[backend]):.1f} | {ratio_text} | {cosine} |")


if __name__ == "__main__":
    main()
