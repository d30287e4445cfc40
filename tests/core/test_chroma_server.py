"""The index against a real Chroma server (`chroma run`, shipped with the chromadb package)."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingest.pipeline import run_ingest
from ingest.sources import scan_folder
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever

from ..conftest import KNOWLEDGE

pytestmark = pytest.mark.slow  # starts a Chroma server

CHROMA = Path(sys.executable).with_name("chroma")


@pytest.fixture
def chroma_url(tmp_path):
    if not CHROMA.exists():
        pytest.fail(f"{CHROMA} is missing: the chromadb package installs it")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the Chroma server on {url} did not come up (exit status {proc.poll()})")
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_ingest_and_search_through_a_chroma_server(settings, chroma_url, embedder, tmp_path):
    settings = settings.model_copy(update={"chroma": settings.chroma.model_copy(update={"url": chroma_url})})
    folder = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE / "faq", folder / "faq")
    items, failures = scan_folder(folder, settings.ingest)
    first = run_ingest(settings, items, failures, embedder=embedder)
    assert not (Path(settings.data_dir) / "chroma").exists()  # nothing embedded locally

    (folder / "faq/free-trial.txt").write_text("Free trial\n\nThe free trial lasts 21 days.\n")
    items, failures = scan_folder(folder, settings.ingest)
    second = run_ingest(settings, items, failures, embedder=embedder)
    assert second.updated == ["faq/free-trial.txt"]

    index = KnowledgeIndex(settings)
    retriever = Retriever(index, embedder, settings.retrieval)
    top = retriever.search("how long is the free trial").hits[0].chunk
    assert top.doc_id == "faq/free-trial.txt" and "21 days" in top.text
    live = {index.manifest(v).collection for v in index.list_versions()}
    assert set(index.store.names()) == live and index.store.collection_name(first.version) in live
