"""Ingestion throughput, peak memory and re-ingest cost on the SciFact corpus (5,183 documents).

Run: .venv/bin/python bench/ingest_scifact.py [--data ../shared/data/scifact]
Writes each abstract as a .txt file (as an admin's folder would hold them), then times
1. the first ingest, 2. a re-ingest with nothing changed, 3. a re-ingest after editing one file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ingest.pipeline import run_ingest  # noqa: E402
from ingest.sources import scan_folder  # noqa: E402
from ragtune.embedding import Embedder  # noqa: E402
from ragtune.settings import load_settings  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/data/scifact")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-") as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        with open(args.data / "corpus.jsonl", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                (folder / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}\n", encoding="utf-8")
        settings = load_settings(environ={}, overrides={"data_dir": str(Path(tmp) / "data")})
        embedder = Embedder(settings.embedding)
        embedder.embed_query("warm up")  # model load is not ingestion work
        base_mb = peak_mb()

        def timed(label: str):
            t0 = time.perf_counter()
            items, failures = scan_folder(folder, settings.ingest)
            report = run_ingest(settings, items, failures, embedder=embedder)
            seconds = time.perf_counter() - t0
            print(
                json.dumps(
                    {
                        "run": label,
                        **report.summary(),
                        "wall_seconds_with_scan": round(seconds, 2),
                        "chunks_per_s": round(report.chunks_embedded / seconds, 1),
                        "peak_rss_mb": round(peak_mb()),
                    }
                ),
                flush=True,
            )
            return seconds

        first = timed("first")
        unchanged = timed("nothing changed")
        some = sorted(folder.iterdir())[100]
        some.write_text(some.read_text() + "\nAn added sentence about the study's limitations.\n")
        one = timed("one file changed")
        print(
            f"\nfirst ingest {first:.1f} s; re-ingest unchanged {unchanged:.2f} s ({100 * unchanged / first:.1f}% of first); "
            f"one file changed {one:.2f} s ({100 * one / first:.1f}%); peak RSS {peak_mb():.0f} MB (model loaded: {base_mb:.0f} MB)"
        )


if __name__ == "__main__":
    main()
