"""Sweeping the segment folders Chroma leaves behind, checked against Chroma's own catalogue."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from ragtune.vectorstore import VectorStore


def folders(path: Path) -> set[str]:
    return {p.name for p in path.iterdir() if p.is_dir()}


def filled(store: VectorStore, name: str) -> None:
    store.create(name)
    vectors = np.random.default_rng(0).random((20, 8), dtype=np.float32)
    store.add(name, [f"c{i}" for i in range(20)], vectors, [{"doc_id": "d"}] * 20)


def test_sweep_removes_only_folders_no_segment_refers_to(settings, tmp_path):
    store = VectorStore(settings.chroma, Path(settings.data_dir))
    filled(store, "ragtune_keep")
    filled(store, "ragtune_drop")
    chroma = Path(settings.data_dir) / "chroma"
    both = folders(chroma)
    assert len(both) == 2
    store.drop("ragtune_drop")
    assert folders(chroma) == both  # Chroma's delete_collection leaves the folder behind
    (chroma / "not-a-segment").mkdir()  # not ours to judge: only UUID-named folders are candidates

    removed = store.sweep_orphans()
    assert len(removed) == 1 and removed[0] in both
    assert folders(chroma) == (both - set(removed)) | {"not-a-segment"}
    # The kept collection still answers from its folder.
    assert store.query("ragtune_keep", np.ones(8, dtype=np.float32), 3)


def test_sweep_removes_nothing_when_the_catalogue_cannot_be_read(settings, tmp_path):
    store = VectorStore(settings.chroma, Path(settings.data_dir))
    chroma = Path(settings.data_dir) / "chroma"
    stray = chroma / str(uuid.uuid4())
    stray.mkdir()
    (chroma / "chroma.sqlite3").rename(chroma / "moved.sqlite3")
    try:
        assert store.sweep_orphans() == []
        assert stray.is_dir()
    finally:
        (chroma / "moved.sqlite3").rename(chroma / "chroma.sqlite3")
