"""Disk use stays flat across killed runs and pruned versions (Chroma leaves segment folders)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import scan_folder
from ragtune.index import KnowledgeIndex

from ..conftest import ROOT

pytestmark = pytest.mark.slow  # kills ingest runs and measures the disk

BULK = 300  # one-chunk documents: three embedding batches, so the kill lands mid-run


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def segment_folders(chroma: Path) -> set[str]:
    return {p.name for p in chroma.iterdir() if p.is_dir()}


def make_corpus(folder: Path, docs: int, tag: str) -> None:
    """Short one-chunk documents: many embedding batches for little embedding time."""
    folder.mkdir(exist_ok=True)
    for i in range(docs):
        (folder / f"doc-{i}.txt").write_text(
            f"Topic {tag} {i}\n\nThe storage quota of plan {tag}-{i} is {i} GB per user, billed monthly.\n"
        )


def ingest(settings, folder, embedder):
    return run_ingest(settings, *scan_folder(folder, settings.ingest), embedder=embedder, source=str(folder))


def kill_mid_ingest(settings, folder: Path) -> None:
    """A real `ragtune ingest` subprocess, SIGKILLed as soon as its new collection is on disk
    (Chroma creates the segment folder at the first add; more batches follow)."""
    chroma = Path(settings.data_dir) / "chroma"
    before = segment_folders(chroma)
    before_version = KnowledgeIndex(settings).current_version()
    # PYTHONPATH: the code under test, not whichever ragtune is installed in the environment.
    env = dict(os.environ, RAGTUNE_DATA_DIR=str(settings.data_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "ingest", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not segment_folders(chroma) - before:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill; give it more work"
    assert segment_folders(chroma) - before, "killed before it wrote anything; the leak was not exercised"
    assert KnowledgeIndex(settings).current_version() == before_version, "the run published before the kill"


def test_pruned_versions_leave_no_segment_folders(settings, tmp_path, embedder):
    folder = tmp_path / "kb"
    make_corpus(folder, 5, "a")
    index = KnowledgeIndex(settings)
    chroma = Path(settings.data_dir) / "chroma"
    for round_ in range(4):  # each round publishes a new version and prunes the oldest
        (folder / "doc-0.txt").write_text(f"Round {round_}\n\nThe storage quota changed in round {round_}.\n")
        assert ingest(settings, folder, embedder).published
    live = {index.manifest(v).collection for v in index.list_versions()}
    assert len(live) == settings.ingest.keep_versions == len(index.store.names())
    # One vector segment folder per live collection; the pruned versions' folders are gone.
    assert len(segment_folders(chroma)) == len(live)


def test_disk_use_is_flat_across_killed_runs(settings, tmp_path, embedder):
    folder = tmp_path / "kb"
    make_corpus(folder, 12, "base")
    index = KnowledgeIndex(settings)
    chroma = Path(settings.data_dir) / "chroma"
    ingest(settings, folder, embedder)
    # Warm up to the steady state: two full versions kept, and Chroma's SQLite file at its
    # high-water mark (three full versions' rows while a new one is built and the oldest not yet
    # pruned), its freed pages reused afterwards.
    for warm in range(3):
        make_corpus(folder / "bulk", BULK, f"warm{warm}")
        ingest(settings, folder, embedder)
    steady = tree_size(chroma)

    sizes = []
    for cycle in range(3):
        make_corpus(folder / "bulk", BULK, f"cycle{cycle}")  # new content: every run has embedding to do
        kill_mid_ingest(settings, folder)
        report = ingest(settings, folder, embedder)  # the retry publishes and prunes
        assert report.published and len(report.updated) == BULK
        live = {index.manifest(v).collection for v in index.list_versions()}
        assert set(index.store.names()) == live
        assert len(segment_folders(chroma)) == len(live)  # the killed run's segment folder is gone
        sizes.append(tree_size(chroma))
    # Each kill used to leave one segment folder behind (an index's worth of disk at real scale):
    # the size must stay within half of one such folder of the steady state.
    leak_unit = min(tree_size(chroma / name) for name in segment_folders(chroma))
    print(f"chroma folder: {steady} bytes at steady state, {sizes} after each kill and retry; one segment folder: {leak_unit}")
    assert all(abs(size - steady) < leak_unit / 2 for size in sizes), (steady, sizes, leak_unit)


def test_pruning_keeps_the_published_chain_whatever_the_ids_sort_as(settings, tmp_path, embedder, monkeypatch):
    """Versions built within one second get ids that sort at random; the kept ones must be the
    current version and its parent, not the two largest ids."""
    ids = iter(["v9-late-id-first", "v5-middle", "v1-smallest-last"])  # each new id sorts *before* the last
    monkeypatch.setattr("ingest.pipeline.new_version_id", lambda: next(ids))
    folder = tmp_path / "kb"
    make_corpus(folder, 3, "a")
    index = KnowledgeIndex(settings)
    published = []
    for round_ in range(3):
        (folder / "doc-0.txt").write_text(f"Round {round_}\n\nThe storage quota changed in round {round_}.\n")
        published.append(ingest(settings, folder, embedder).version)
    assert index.current_version() == published[-1] == "v1-smallest-last"
    assert set(index.list_versions()) == {published[-1], published[-2]}
    assert set(index.store.names()) == {index.store.collection_name(v) for v in published[-2:]}
