"""Faults under a running server: a Chroma server that goes away and comes back, a data directory
that is read-only or full while an ingest runs, a model server that dies mid-answer. Each answers a clear error that names the problem
and its fix, keeps the previous index version serving, leaves nothing behind, and heals without a
restart once the fault is cleared. Real components: a `chroma run` server, the embedded Chroma, a
read-only bind mount and a 20 MB tmpfs (mounting needs root, as this machine's tests run), and
llama-cpp-python's OpenAI-compatible server killed while it streams an answer."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cli.main import main
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever
from ragtune.settings import load_settings
from serve.app import create_app
from tests.serve.admin_kb import REFUND_QUESTION, admin_environ, admin_test_client, build_app, live_server, wait_job, write_kb
from tests.serve.conftest import with_store
from tests.serve.test_openai_engine import LlamaServer, openai_settings

pytestmark = pytest.mark.slow  # starts and kills servers, fills file systems

CHROMA = Path(sys.executable).with_name("chroma")
GADGET = "# Gadget\n\nThe Gadget Pro charges fully in 42 minutes with the bundled charger.\n"
GADGET_QUESTION = "How long does the Gadget Pro take to charge?"


class ChromaServer:
    """A real `chroma run` on a fixed port and folder, so it can be stopped and started again."""

    def __init__(self, folder: Path):
        self.folder = folder
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        command = [str(CHROMA), "run", "--path", str(self.folder), "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"the Chroma server on {self.url} did not come up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture
def chroma(tmp_path) -> Iterator[ChromaServer]:
    if not CHROMA.exists():
        pytest.fail(f"{CHROMA} is missing: the chromadb package installs it")
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server
    server.stop()


def ask(client: TestClient, question: str = REFUND_QUESTION):
    return client.post("/v1/chat", json={"message": question})


def cited_paths(response) -> set[str]:
    return {s["path"] for s in response.json()["sources"] if s["cited"]}


def test_an_unreachable_chroma_server_is_a_clear_503_and_service_resumes_when_it_is_back(
    chroma, tmp_path, embedder, monkeypatch, capsys
):
    kb = write_kb(tmp_path / "kb")
    environ = admin_environ(tmp_path / "data", kb, RAGTUNE_CHROMA__URL=chroma.url)
    settings = load_settings(environ=environ)
    with admin_test_client(build_app(settings, embedder)) as client:
        first = ask(client)
        assert first.status_code == 200 and cited_paths(first) == {"billing/refunds.md"}
        version = first.json()["index_version"]

        chroma.stop()
        down = ask(client)
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "VectorStoreUnavailable"
        assert chroma.url in down.json()["detail"] and "chroma.url" in down.json()["detail"]
        assert "Traceback" not in down.text and "httpx" not in down.text
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert "chroma.url" in ready.json()["detail"]

        # Ingests fail naming the setting: through the admin API and the CLI.
        (kb / "products/gadget.md").write_text(GADGET)
        job = wait_job(client, client.post("/v1/admin/ingest").json()["job_id"])
        assert job["status"] == "failed" and f"Chroma server at {chroma.url} (chroma.url)" in job["detail"], job
        monkeypatch.setenv("RAGTUNE_CHROMA__URL", chroma.url)
        capsys.readouterr()
        assert main(["--data-dir", str(tmp_path / "data"), "ingest", str(kb)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("ragtune ingest: error: the Chroma server at") and "chroma.url" in error
        assert "\n" not in error  # one line, no traceback

        # A server started while Chroma is down starts, and says why it is not ready.
        late = Retriever(KnowledgeIndex(settings), embedder, settings.retrieval)
        with admin_test_client(create_app(settings, engine=None, retriever=late, warm_up=False)) as fresh:
            assert fresh.get("/readyz").status_code == 503 and ask(fresh).status_code == 503

            chroma.start()  # the same port and folder: both servers recover without a restart
            for c in (client, fresh):
                again = ask(c)
                assert again.status_code == 200 and again.json()["index_version"] == version, again.text
                assert cited_paths(again) == {"billing/refunds.md"}
                assert c.get("/readyz").json()["status"] == "ready"

        job = wait_job(client, client.post("/v1/admin/ingest").json()["job_id"])
        assert job["status"] == "succeeded" and job["result"]["added"] == ["products/gadget.md"], job
        assert cited_paths(ask(client, GADGET_QUESTION)) == {"products/gadget.md"}


# ---- the data directory ------------------------------------------------------------------------
def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed: {done.stderr.strip()}")


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True)  # a file still open in it: detach now, free when closed


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` made read-only: a read-only bind mount over itself (EROFS, as a disk remounted read-only
    after errors); without root, the write bits cleared."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
        return
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,bind,ro", str(path))
        yield
    finally:
        # Writable again as a disk is after a remount: a file opened while it was read-only (the
        # Chroma store the refused ingest opened) is written through this mount until it is closed,
        # so the mount turns writable before it is detached.
        _mount("-o", "remount,bind,rw", str(path))
        _umount(path)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 20 MB tmpfs: a data directory that can really fill up."""
    if os.geteuid() != 0:  # a failure, not a skip: a skipped fault test would prove nothing
        pytest.fail("a small file system needs `mount` (root): run the tests as root (CI does), or deselect with -m 'not root'")
    folder = tmp_path / "data"
    folder.mkdir()
    _mount("-t", "tmpfs", "-o", "size=20m", "tmpfs", str(folder))
    yield folder
    _umount(folder)


def fill(folder: Path) -> Path:
    """Write a file until the disk refuses a byte more."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while handle.write(b"\0" * 65536):
            pass
    with open(filler, "ab", buffering=0) as handle, pytest.raises(OSError, match="No space left"):
        handle.write(b"\0")
    return filler


def files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every file below folder with its size (the conversation store's files left out: chat writes them)."""
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(("conversations.sqlite3", *skip))
    }


def test_a_read_only_data_dir_fails_the_ingest_with_its_fix_and_the_previous_version_serves(tmp_path, embedder, capsys):
    kb = write_kb(tmp_path / "kb")
    data = tmp_path / "data"
    # The conversation store lives elsewhere (as with store.url on Postgres): this test is about the index.
    settings = load_settings(environ=admin_environ(data, kb, RAGTUNE_STORE__URL=f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    with admin_test_client(build_app(settings, embedder)) as client:
        version = ask(client).json()["index_version"]
        (kb / "products/gadget.md").write_text(GADGET)
        before = files(data)
        with read_only(data):
            refused = client.post("/v1/admin/ingest")  # refused before a job starts: the index lock cannot be taken
            assert refused.status_code == 503 and refused.json()["error"] == "StorageError", refused.text
            assert f"the data directory {data} is not writable" in refused.json()["detail"]
            assert "make it writable" in refused.json()["detail"]
            capsys.readouterr()
            assert main(["--data-dir", str(data), "ingest", str(kb)]) == 2
            error = capsys.readouterr().err.strip()
            assert error.startswith(f"ragtune ingest: error: the data directory {data} is not writable") and "\n" not in error
            assert error.endswith(f"nothing was published, {version} still serves")
            served = ask(client, GADGET_QUESTION)
            assert served.status_code == 200 and served.json()["index_version"] == version
            assert "products/gadget.md" not in cited_paths(served)
        assert files(data) == before
        job = wait_job(client, client.post("/v1/admin/ingest").json()["job_id"])
        assert job["status"] == "succeeded" and job["result"]["added"] == ["products/gadget.md"], job
        assert cited_paths(ask(client, GADGET_QUESTION)) == {"products/gadget.md"}


@pytest.mark.root
def test_a_full_data_dir_fails_the_ingest_with_its_fix_leaves_nothing_and_the_next_ingest_completes(
    small_disk, tmp_path, embedder
):
    kb = write_kb(tmp_path / "kb")
    settings = load_settings(environ=admin_environ(small_disk, kb, RAGTUNE_STORE__URL=f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    with admin_test_client(build_app(settings, embedder)) as client:
        version = ask(client).json()["index_version"]
        (kb / "products/gadget.md").write_text(GADGET)
        before = files(small_disk)
        filler = fill(small_disk)
        for _ in range(2):  # a failure repeated leaves no more behind than one
            job = wait_job(client, client.post("/v1/admin/ingest").json()["job_id"])
            assert job["status"] == "failed", job
            assert "no space left" in job["detail"] and "free space there" in job["detail"], job
            assert job["detail"].endswith(f"nothing was published, {version} still serves")
            served = ask(client, GADGET_QUESTION)
            assert served.status_code == 200 and served.json()["index_version"] == version
            assert files(small_disk, skip=("filler",)) == before
        assert [v["version"] for v in client.get("/v1/admin/versions").json()["versions"]] == [version]

        filler.unlink()
        job = wait_job(client, client.post("/v1/admin/ingest").json()["job_id"], timeout_s=60)
        assert job["status"] == "succeeded" and job["result"]["added"] == ["products/gadget.md"], job
        answer = ask(client, GADGET_QUESTION)
        assert answer.json()["index_version"] == job["result"]["version"] and cited_paths(answer) == {"products/gadget.md"}


@pytest.mark.root
def test_a_full_disk_under_the_conversation_store_is_a_503_that_says_so_until_space_is_freed(small_disk, tmp_path, embedder):
    """The default store is a SQLite file in the data directory: a chat it cannot record is refused
    (503, saying why), and answers resume once there is space, without a restart."""
    settings = load_settings(environ=admin_environ(small_disk, write_kb(tmp_path / "kb")))
    with admin_test_client(build_app(settings, embedder)) as client:
        assert ask(client).status_code == 200
        filler = fill(small_disk)
        full = ask(client)
        assert full.status_code == 503 and full.json() == {
            "detail": "the conversation store (sqlite) is not usable: database or disk is full",
            "error": "StoreUnavailable",
        }
        filler.unlink()
        assert ask(client).status_code == 200


# ---- the model server dies mid-answer ---------------------------------------------------------
def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_a_model_server_dying_mid_stream_ends_the_stream_with_an_error_and_auto_mode_answers_extractively(
    serve_settings, tiny_gguf, tmp_path, retriever, monkeypatch
):
    """Killed after the first words of an answer have reached the client: the stream ends with an
    `error` event (503, saying what happened), never an `answer`. In auto mode the same death costs
    the customer the phrasing, not the answer: the extractive one, marked 'unavailable'."""
    server = LlamaServer(tiny_gguf, tmp_path)
    generative = with_store(openai_settings(serve_settings, server.url), f"sqlite:///{tmp_path / 'a.sqlite3'}")
    auto = generative.model_copy(
        update={"chat": generative.chat.model_copy(update={"answer_mode": "auto", "min_model_pass_rate": 0.0})}
    )
    auto = with_store(auto, f"sqlite:///{tmp_path / 'b.sqlite3'}")
    question = {"message": "How do I reset my password?"}
    try:
        with (
            live_server(create_app(generative, retriever=retriever, warm_up=False)) as url,
            TestClient(create_app(auto, retriever=retriever, warm_up=False)) as auto_client,
        ):
            assert httpx.get(f"{url}/readyz").json()["mode"] == "generated"
            assert auto_client.get("/readyz").json()["mode"] == "generated"
            # The death strikes between two readiness checks: both apps have just seen the engine up, and
            # from now on they do not ask again. (Set before the first check, a long interval would skip
            # that check too on a machine up for less than it: the service's monotonic clock starts near 0.)
            monkeypatch.setattr("serve.chat.READY_CHECK_SECONDS", 3600.0)
            received = ""
            with httpx.stream("POST", f"{url}/v1/chat", json=question | {"stream": True}, timeout=120) as response:
                assert response.status_code == 200
                for piece in response.iter_text():
                    received += piece
                    if server.process.poll() is None and '"text": "' in received.split("event: delta", 1)[-1]:
                        server.process.kill()  # the answer has begun to arrive
            events = sse_events(received)
            kinds = [kind for kind, _ in events]
            assert kinds[0] == "delta" and kinds[-1] == "error" and "answer" not in kinds, received
            error = events[-1][1]
            assert error["status"] == 503 and error["error"] == "ModelUnavailable" and error["detail"], error
            assert "Traceback" not in received

            body = auto_client.post("/v1/chat", json=question).json()
            assert body["mode"] == "extractive" and body["answer_mode"] == "auto" and body["model"] is None
            assert body["verification"] == {"checked": False, "passed": None, "reasons": ["unavailable"], "fallback": True}
            assert body["citations"] and {c["id"] for c in body["citations"]} <= {s["id"] for s in body["sources"]}
            streamed = sse_events(auto_client.post("/v1/chat", json=question | {"stream": True}).text)
            assert [kind for kind, _ in streamed] == ["delta", "answer"]
            assert streamed[-1][1]["mode"] == "extractive" and streamed[-1][1]["verification"]["reasons"] == ["unavailable"]
    finally:
        server.stop()
