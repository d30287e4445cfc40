"""Re-ingestion with the real Chroma and the real packaged embedding model."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ingest.pipeline import run_ingest
from ingest.sources import scan_folder
from ragtune.embedding import Embedder
from ragtune.errors import UserInputError
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever

from ..conftest import ROOT

pytestmark = pytest.mark.slow  # ingests the whole knowledge base again and again, kills runs


class CountingEmbedder(Embedder):
    """The real embedder, counting how many chunks it was asked to embed."""

    def __init__(self, inner: Embedder, fail_after: int | None = None):
        super().__init__(inner.settings)
        self._model = inner.model
        self.embedded = 0
        self.fail_after = fail_after

    def embed_documents(self, texts, progress=False):
        if self.fail_after is not None and self.embedded >= self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        self.embedded += len(texts)
        return super().embed_documents(texts, progress)


def ingest(settings, folder, embedder):
    items, failures = scan_folder(folder, settings.ingest)
    return run_ingest(settings, items, failures, embedder=embedder, source=str(folder))


def stored_ids(index: KnowledgeIndex) -> tuple[set[str], set[str]]:
    """Chunk ids in the current version's file and in its Chroma collection."""
    manifest = index.current_manifest()
    in_file = {c.id for c in index.read_chunks(manifest.version)}
    in_chroma = set(index.store.get(manifest.collection).get(include=[])["ids"])
    return in_file, in_chroma


def test_reingest_edit_add_delete_leaves_exactly_the_right_chunks(settings, kb_copy, embedder):
    counting = CountingEmbedder(embedder)
    first = ingest(settings, kb_copy, counting)
    assert first.published and len(first.added) == 41 and not first.failed
    index = KnowledgeIndex(settings)
    old_trial_ids = set(index.current_manifest().documents["faq/free-trial.txt"].chunk_ids)
    removed_ids = set(index.current_manifest().documents["faq/mobile-app.md"].chunk_ids)

    (kb_copy / "faq/free-trial.txt").write_text(
        "Free trial\n\nEvery new account gets a 21-day free trial of the Business plan with 5 TB of storage.\n"
    )
    (kb_copy / "faq/gift-cards.md").write_text(
        "# Gift cards\n\n## Redeeming\n\nGift cards are redeemed under Settings > Billing > Redeem gift card.\n"
    )
    (kb_copy / "faq/mobile-app.md").unlink()
    counting.embedded = 0
    second = ingest(settings, kb_copy, counting)

    assert second.published and second.version != first.version
    assert (second.added, second.updated, second.removed) == (
        ["faq/gift-cards.md"],
        ["faq/free-trial.txt"],
        ["faq/mobile-app.md"],
    )
    assert len(second.unchanged) == 39
    assert counting.embedded == 2  # only the new and the edited document's chunks

    manifest = index.current_manifest()
    expected = {cid for doc in manifest.documents.values() for cid in doc.chunk_ids}
    in_file, in_chroma = stored_ids(index)
    assert in_file == in_chroma == expected
    assert not (old_trial_ids | removed_ids) & in_chroma
    assert "faq/mobile-app.md" not in manifest.documents

    retriever = Retriever(index, embedder, settings.retrieval)
    top = retriever.search("How long is the free trial?", top_k=3).hits[0].chunk
    assert top.doc_id == "faq/free-trial.txt" and "21-day" in top.text
    assert retriever.search("redeem a gift card", top_k=1).hits[0].chunk.doc_id == "faq/gift-cards.md"
    assert all(h.chunk.doc_id != "faq/mobile-app.md" for h in retriever.search("camera upload on iOS 16", top_k=10).hits)


def test_nothing_changed_costs_no_embedding_and_keeps_the_version(settings, kb_copy, embedder):
    counting = CountingEmbedder(embedder)
    first = ingest(settings, kb_copy, counting)
    counting.embedded = 0
    again = ingest(settings, kb_copy, counting)
    assert counting.embedded == 0
    assert not again.published and again.version == first.version
    assert len(again.unchanged) == 41


def test_failed_run_leaves_previous_version_serving_and_is_cleaned_up(settings, kb_copy, embedder):
    ingest(settings, kb_copy, embedder)
    index = KnowledgeIndex(settings)
    before = index.current_version()
    for i in range(5):
        (kb_copy / f"faq/new-{i}.md").write_text(f"# New {i}\n\nNew document number {i} about warranty claims.\n")
    crashing = CountingEmbedder(embedder, fail_after=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest(settings, kb_copy, crashing)

    assert index.current_version() == before
    retriever = Retriever(index, embedder, settings.retrieval)
    assert retriever.search("refund for an annual plan", top_k=1).hits[0].chunk.doc_id == "policies/refund-policy.pdf"
    # The crashed run removed its half-built collection and version folder itself.
    assert index.store.names() == [index.current_manifest().collection] and index.list_versions() == [before]
    assert sorted(p.name for p in index.versions_dir.iterdir()) == [before]

    report = ingest(settings, kb_copy, embedder)
    assert report.published and len(report.added) == 5
    live = {index.manifest(v).collection for v in index.list_versions()}
    assert set(index.store.names()) == live  # the half-built collection is gone


def test_killed_run_leaves_previous_version_serving(settings, kb_copy, embedder, tmp_path):
    ingest(settings, kb_copy, embedder)
    index = KnowledgeIndex(settings)
    before = index.current_version()
    for i in range(400):  # enough work that the kill lands mid-embedding
        (kb_copy / f"bulk/doc-{i}.txt").parent.mkdir(exist_ok=True)
        (kb_copy / f"bulk/doc-{i}.txt").write_text(f"Bulk {i}\n\n" + f"Paragraph about topic {i} and storage quotas. " * 20)
    # PYTHONPATH: the code under test, not whichever ragtune is installed in the environment.
    env = dict(os.environ, RAGTUNE_DATA_DIR=str(settings.data_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "ingest", str(kb_copy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.time() + 120
    for line in proc.stdout:
        if "embedding" in line or time.time() > deadline:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert index.current_version() == before
    retriever = Retriever(index, embedder, settings.retrieval)
    assert retriever.search("refund for an annual plan", top_k=1).hits[0].chunk.doc_id == "policies/refund-policy.pdf"
    report = ingest(settings, kb_copy, embedder)
    assert report.published and len(report.added) == 400


def test_corrupt_and_unsupported_files_are_reported_and_skipped(settings, kb_copy, embedder):
    (kb_copy / "policies/broken.pdf").write_bytes(b"%PDF-1.7\ngarbage that is not a pdf")
    (kb_copy / "faq/diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (kb_copy / "faq/empty.md").write_text("")
    report = ingest(settings, kb_copy, embedder)
    reasons = {f.doc_id: f.reason for f in report.failed}
    assert set(reasons) == {"policies/broken.pdf", "faq/diagram.png", "faq/empty.md"}
    assert "PDF" in reasons["policies/broken.pdf"]
    assert "unsupported" in reasons["faq/diagram.png"]
    assert report.published and len(report.added) == 41 and report.exit_code == 1


def test_a_document_corrupted_by_an_edit_keeps_its_previous_content(settings, kb_copy, embedder):
    ingest(settings, kb_copy, embedder)
    (kb_copy / "policies/refund-policy.pdf").write_bytes(b"%PDF-1.7\ntruncated upload")
    report = ingest(settings, kb_copy, embedder)
    assert [f.doc_id for f in report.failed] == ["policies/refund-policy.pdf"]
    assert report.kept_stale == ["policies/refund-policy.pdf"]
    assert "policies/refund-policy.pdf" in KnowledgeIndex(settings).current_manifest().documents


def test_changing_the_embedding_space_rebuilds_everything(settings, kb_copy, embedder):
    ingest(settings, kb_copy, embedder)
    changed = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"document_prefix": "passage: "})})
    counting = CountingEmbedder(Embedder(changed.embedding))
    counting._model = embedder.model
    report = ingest(changed, kb_copy, counting)
    assert report.rebuild_reason and "rebuilding" in report.rebuild_reason
    assert len(report.added) == 41 and counting.embedded == report.chunks_total


def test_empty_folder_is_a_user_error(settings, tmp_path, embedder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no readable documents"):
        ingest(settings, tmp_path / "empty", embedder)
    assert KnowledgeIndex(settings).current_version() is None


def test_too_large_file_is_reported_with_the_limit(settings, tmp_path, embedder):
    small = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"max_file_mb": 0.01})})
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.md").write_text("# Ok\n\nA short page about invoices.\n")
    (folder / "huge.txt").write_text("Huge\n\n" + "word " * 5000)
    report = ingest(small, folder, embedder)
    assert report.added == ["ok.md"]
    assert [(f.doc_id, "over the 0.01 MB limit" in f.reason) for f in report.failed] == [("huge.txt", True)]
