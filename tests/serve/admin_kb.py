"""Shared pieces of the admin API tests: a small knowledge folder of its own, settings over it, an
app composed the way `ragtune serve` composes it (the real FolderIngester from ingest/), and
helpers to build multipart bodies byte for byte and to wait for jobs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMALL_KB = {
    "billing/refunds.md": "# Refunds\n\nAnnual plans can be refunded within 30 days of the purchase date. "
    "Monthly plans are not refunded, but you can cancel them at any time from the billing page.\n",
    "faq/support-hours.md": "# Support hours\n\nOur support team answers chats from 8:00 to 20:00 Central European Time "
    "on weekdays. Weekend support is available by email only.\n",
    "products/vault.md": "# Vault\n\nVault is an encrypted folder that needs a second factor to open. "
    "Files in Vault are never shown in shared links.\n",
}
REFUND_QUESTION = "Within how many days can an annual plan be refunded?"
# The admin routes that write need an admin key, with or without other keys (issue 19.5): the admin
# tests configure one and send it (it opens the chat routes too).
ADMIN_KEY = "ak_8c1e5a9f3b7d2064e8a0c4f6b2d91e7c"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def write_kb(root: Path, files: dict[str, str] | None = None) -> Path:
    for doc_id, text in (files or SMALL_KB).items():
        path = root / doc_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def admin_environ(data_dir: Path, kb: Path, **extra: str) -> dict[str, str]:
    return {
        "RAGTUNE_DATA_DIR": str(data_dir),
        "RAGTUNE_INGEST__SOURCE_DIR": str(kb),
        "RAGTUNE_LLM__ENGINE": "none",
        "RAGTUNE_AUTH__ADMIN_KEYS": json.dumps([{"name": "ops", "key": ADMIN_KEY}]),
        # Every test client is one address (and one key), asking far more than 30 questions a minute (as tests/conftest.py).
        "RAGTUNE_LIMITS__REQUESTS_PER_ADDRESS": "0",
        "RAGTUNE_LIMITS__REQUESTS_PER_KEY": "0",
        **extra,
    }


def admin_test_client(app, **kwargs):
    """A TestClient over `app` that sends the admin key with every request."""
    from fastapi.testclient import TestClient

    return TestClient(app, headers=ADMIN_HEADERS | kwargs.pop("headers", {}), **kwargs)


def build_app(settings, embedder, *, ingester: bool = True, initial_ingest: bool = True):
    """The app as `ragtune serve` builds it (with llm.engine none: answers are the evidence sentences)."""
    from ingest.service import FolderIngester
    from ragtune.index import KnowledgeIndex
    from ragtune.progress import NullProgress
    from ragtune.retriever import Retriever
    from serve.app import create_app

    index = KnowledgeIndex(settings)
    if initial_ingest:
        FolderIngester(settings).run(Path(settings.ingest.source_dir), embedder=embedder, index=index, progress=NullProgress())
    retriever = Retriever(index, embedder, settings.retrieval)
    engine = {"engine": None} if settings.llm.engine == "none" else {}  # else the app builds the configured one
    return create_app(
        settings, retriever=retriever, warm_up=False, ingester=FolderIngester(settings) if ingester else None, **engine
    )


@pytest.fixture
def admin_kb(tmp_path) -> Path:
    return write_kb(tmp_path / "kb")


@pytest.fixture
def admin_settings(tmp_path, admin_kb):
    from ragtune.settings import load_settings

    return load_settings(environ=admin_environ(tmp_path / "data", admin_kb, RAGTUNE_INGEST__MAX_FILE_MB="0.5"))


@pytest.fixture
def admin_client(admin_settings, embedder):
    with admin_test_client(build_app(admin_settings, embedder)) as client:
        yield client


def wait_job(client, job_id: str, timeout_s: float = 180.0, headers: dict[str, str] | None = None) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/admin/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s: {job}")


def multipart(parts: list[tuple[str, bytes]], field: str = "files", **fields: str) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body written byte for byte, so a hostile file name reaches the server
    exactly as sent (an HTTP client library may clean names up on its own)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for key, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    for name, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        out.write(b'Content-Disposition: form-data; name="' + field.encode() + b'"; filename="' + name.encode() + b'"\r\n')
        out.write(b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def docx_bytes(text: str) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx(inflated_mb: int = 40) -> bytes:
    """A zip with a docx's part names whose document part inflates ~1000:1 (a decompression bomb)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", b"\0" * (inflated_mb * 1048576))
    return out.getvalue()


def folder_state(root: Path) -> dict[str, bytes]:
    """Every file below root (hidden ones too) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def live_server(app):
    """The app under a real uvicorn on 127.0.0.1, in a thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)


# ---- a real server in another process (for kills) ----------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_env(environ: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    return env | environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def start_server(environ: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """`ragtune serve` in its own process; returns once /readyz answers."""
    import httpx

    handle = open(log, "wb")  # noqa: SIM115 - the child writes to it until it is killed
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=subprocess_env(environ),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
