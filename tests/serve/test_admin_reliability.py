"""Re-ingesting under load and being killed: chat never fails and every answer comes from one
whole index version; a server killed mid-ingest or mid-upload leaves the previous version serving,
its job marked interrupted, nothing half-written in the knowledge folder, and the next ingest
completes. Real HTTP on loopback; the killed servers are real `ragtune serve` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from ragtune.index import KnowledgeIndex
from ragtune.settings import load_settings
from tests.serve.admin_kb import (
    ADMIN_HEADERS,
    REFUND_QUESTION,
    ROOT,
    admin_environ,
    admin_test_client,
    build_app,
    folder_state,
    free_port,
    live_server,
    multipart,
    start_server,
    subprocess_env,
    wait_job,
    write_kb,
)

pytestmark = pytest.mark.slow  # kills real server processes mid-ingest and mid-upload


def catalogue(n: int) -> bytes:
    """A document of many chunks: embedding it takes a while."""
    facts = " ".join(f"Fact number {i} says that widget {i} weighs {i * 3} grams and ships in box {i % 17}." for i in range(n))
    return ("# Widget catalogue\n\n" + facts).encode()


def chunk_ids(settings, version: str) -> set[str]:
    return {c.id for c in KnowledgeIndex(settings).read_chunks(version)}


def test_reingest_while_clients_chat_fails_no_chat_and_each_answer_has_one_version(admin_settings, embedder):
    # Four clients from one address ask far more than a person would: no rate limit here.
    limits = admin_settings.limits.model_copy(update={"requests_per_key": 0, "requests_per_address": 0, "streams_per_key": 0})
    app = build_app(admin_settings.model_copy(update={"limits": limits}), embedder)
    answers: list[dict] = []
    failures: list[str] = []
    stop = threading.Event()

    def chatter(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120, headers=ADMIN_HEADERS) as client:
            while not stop.is_set():
                started = time.time()
                try:
                    response = client.post("/v1/chat", json={"message": REFUND_QUESTION})
                except httpx.HTTPError as exc:
                    failures.append(f"client {n}: {exc!r}")
                    continue
                if response.status_code != 200:
                    failures.append(f"client {n}: {response.status_code} {response.text[:300]}")
                    continue
                body = response.json()
                answers.append(
                    {
                        "client": n,
                        "started": started,
                        "version": body["index_version"],
                        "ids": {s["id"] for s in body["sources"]} | {c["id"] for c in body["citations"]},
                        "answer": body["answer"],
                    }
                )

    def wait_for(condition, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline and not failures, failures[:3]
            time.sleep(0.05)

    with live_server(app) as url:
        admin = httpx.Client(base_url=url, timeout=120, headers=ADMIN_HEADERS)
        v1 = admin.get("/v1/admin/stats").json()["index_version"]
        chunks = {v1: chunk_ids(admin_settings, v1)}
        threads = [threading.Thread(target=chatter, args=(n,), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(answers) >= 8)

        # 1: the answer changes (30 -> 45 days); 2: a long ingest (many chunks to embed) under load.
        new = b"# Refunds\n\nAnnual plans can be refunded within 45 days of the purchase date. Monthly plans are not refunded.\n"
        body, headers = multipart([("refunds.md", new)], field="file")
        job2 = wait_job(
            admin, admin.put("/v1/admin/documents/billing/refunds.md", content=body, headers=headers).json()["job_id"]
        )
        v2 = job2["result"]["version"]
        chunks[v2] = chunk_ids(admin_settings, v2)
        wait_for(lambda: sum(a["version"] == v2 for a in answers) >= 8)
        body, headers = multipart([("catalogue.md", catalogue(1500))])
        job3 = wait_job(admin, admin.post("/v1/admin/documents", content=body, headers=headers).json()["job_id"])
        v3 = job3["result"]["version"]
        chunks[v3] = chunk_ids(admin_settings, v3)
        wait_for(lambda: all(sum(a["version"] == v3 and a["client"] == n for a in answers) >= 2 for n in range(4)))
        stop.set()
        for t in threads:
            t.join(120)
        admin.close()

    assert job2["status"] == job3["status"] == "succeeded" and job3["result"]["chunks_embedded"] >= 20
    assert not failures, failures[:5]
    during = [a for a in answers if job3["started_at"] <= a["started"] <= job3["finished_at"]]
    assert len(during) >= 4, "the clients must have been chatting while the long ingest ran"
    for a in answers:
        assert a["version"] in chunks, a
        assert a["ids"] and a["ids"] <= chunks[a["version"]], "every source and citation comes from the version named"
        assert ("30 days" in a["answer"]) == (a["version"] == v1) and ("45 days" in a["answer"]) == (a["version"] != v1)
    order = {v1: 1, v2: 2, v3: 3}
    for n in range(4):  # each client's answers never go back to an older version
        seen = [order[a["version"]] for a in answers if a["client"] == n]
        assert seen == sorted(seen)


def _ingest_cli(environ: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "ingest"],
        cwd=ROOT,
        env=subprocess_env(environ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_server_killed_mid_ingest_previous_version_serves_and_next_ingest_completes(tmp_path, embedder):
    kb = write_kb(tmp_path / "kb")
    environ = admin_environ(tmp_path / "data", kb)
    settings = load_settings(environ=environ)
    _ingest_cli(environ)
    v1 = KnowledgeIndex(settings).current_version()
    port = free_port()
    server = start_server(environ, port, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=ADMIN_HEADERS) as client:
            body, headers = multipart([("catalogue.md", catalogue(3000))])
            response = client.post("/v1/admin/documents", content=body, headers=headers)
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            deadline = time.monotonic() + 120
            while True:
                job = client.get(f"/v1/admin/jobs/{job_id}").json()
                if job["status"] == "running" and job["progress"]["stage"] == "embed":
                    break
                assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
                time.sleep(0.02)
        assert job["progress"]["done"] < job["progress"]["total"], "the kill must land while chunks are being embedded"
        os.kill(server.pid, signal.SIGKILL)
    finally:
        server.kill()
        server.wait()
    index = KnowledgeIndex(settings)
    assert index.current_version() == v1  # nothing was published
    assert len(index.store.names()) == 2  # but the killed run left its half-filled Chroma collection

    with admin_test_client(build_app(settings, embedder, initial_ingest=False)) as client:
        job = client.get(f"/v1/admin/jobs/{job_id}").json()
        assert job["status"] == "failed" and job["detail"].startswith("interrupted") and job["finished_at"]
        answer = client.post("/v1/chat", json={"message": REFUND_QUESTION}).json()
        assert answer["index_version"] == v1 and "30 days" in answer["answer"]
        docs = {d["doc_id"]: d["status"] for d in client.get("/v1/admin/documents").json()["documents"]}
        assert docs["catalogue.md"] == "pending" and docs["billing/refunds.md"] == "indexed"

        response = client.post("/v1/admin/ingest")
        assert response.status_code == 202, response.text  # the killed job's slot was freed
        done = wait_job(client, response.json()["job_id"])
        assert done["status"] == "succeeded" and done["result"]["added"] == ["catalogue.md"], done
        v2 = done["result"]["version"]
        answer = client.post("/v1/chat", json={"message": "How much does widget 1234 weigh?"}).json()
        assert answer["index_version"] == v2 and "catalogue.md" in {s["path"] for s in answer["sources"]}
        # The killed run's leftovers are gone.
        assert sorted(index.list_versions()) == sorted([v1, v2])
        assert sorted(p.name for p in index.versions_dir.iterdir()) == sorted([v1, v2])
        assert sorted(index.store.names()) == sorted(index.store.collection_name(v) for v in (v1, v2))


def test_server_killed_mid_upload_writes_nothing_and_serves_on(tmp_path, embedder):
    kb = write_kb(tmp_path / "kb")
    environ = admin_environ(tmp_path / "data", kb)
    settings = load_settings(environ=environ)
    _ingest_cli(environ)
    v1 = KnowledgeIndex(settings).current_version()
    before = folder_state(kb)
    port = free_port()
    server = start_server(environ, port, tmp_path / "server.log")
    try:
        body, headers = multipart([("catalogue.md", catalogue(3000)), ("loyalty.md", b"# Loyalty\n\nSeven credits.\n")])
        head = (
            f"POST /v1/admin/documents HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: {headers['content-type']}\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + body[: len(body) // 2])
            time.sleep(0.5)  # the server is reading the body
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
    finally:
        server.kill()
        server.wait()
    assert folder_state(kb) == before  # not a byte of the upload, not even a temporary

    with admin_test_client(build_app(settings, embedder, initial_ingest=False)) as client:
        answer = client.post("/v1/chat", json={"message": REFUND_QUESTION}).json()
        assert answer["index_version"] == v1 and "30 days" in answer["answer"]
        assert client.get("/v1/admin/jobs").json()["jobs"] == []  # the upload never got as far as a job
        done = wait_job(client, client.post("/v1/admin/ingest").json()["job_id"])
        assert done["status"] == "succeeded" and done["result"]["published"] is False and done["result"]["failed"] == []


def test_temporaries_of_a_killed_upload_are_swept_at_start(admin_settings, admin_kb, embedder):
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = admin_kb / "faq" / f".ragtune-upload.{host}.{dead.pid}.0badf00d"
        in_flight = admin_kb / "faq" / f".ragtune-upload.{host}.{alive.pid}.00c0ffee"
        for path in (stale, in_flight):
            path.write_bytes(b"# half an upl")
        with admin_test_client(build_app(admin_settings, embedder)) as client:
            assert not stale.exists() and in_flight.exists()  # another live process's upload is left alone
            docs = {d["doc_id"] for d in client.get("/v1/admin/documents").json()["documents"]}
            assert not any(".ragtune-upload" in d for d in docs)
    finally:
        alive.kill()
        alive.wait()
