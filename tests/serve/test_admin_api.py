"""The admin API over a real knowledge folder, real ingestion (the FolderIngester `ragtune serve`
wires in), real Chroma and the real embedding model: uploads, replace, delete, jobs, versions and
rollback, stats, and what it refuses."""

from __future__ import annotations

import io
import socket
import zipfile

import pytest
from fastapi.testclient import TestClient

from tests.serve.admin_kb import (
    REFUND_QUESTION,
    admin_test_client,
    build_app,
    docx_bytes,
    folder_state,
    live_server,
    multipart,
    wait_job,
    zip_bomb_docx,
)

LOYALTY = (
    b"# Loyalty programme\n\nThe Zephyr loyalty programme gives 7 bonus credits for every friend you refer. "
    b"Credits expire after twelve months.\n"
)
GIFTS = b"Gift cards\n\nGift cards for Northwind Cloud are sold in amounts of 25, 50 and 100 euros and never expire.\n"


def chat(client, message: str) -> dict:
    response = client.post("/v1/chat", json={"message": message})
    assert response.status_code == 200, response.text
    return response.json()


def post_files(client, files: list[tuple[str, bytes]], **fields: str):
    body, headers = multipart(files, **fields)
    return client.post("/v1/admin/documents", content=body, headers=headers)


def cited_paths(answer: dict) -> set[str]:
    return {s["path"] for s in answer["sources"] if s["cited"]}


def test_uploaded_documents_are_ingested_and_answer_chat(admin_client, admin_kb):
    before = admin_client.get("/v1/admin/stats").json()
    body, headers = multipart([("loyalty.md", LOYALTY), ("gift-cards.txt", GIFTS)], folder="offers")
    response = admin_client.post("/v1/admin/documents", content=body, headers=headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "upload" and job["status"] in ("queued", "running")
    assert job["request"]["documents"] == ["offers/gift-cards.txt", "offers/loyalty.md"]

    done = wait_job(admin_client, job["job_id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert sorted(result["added"]) == ["offers/gift-cards.txt", "offers/loyalty.md"] and result["published"]
    assert result["previous"] == before["index_version"] and result["version"] != before["index_version"]
    assert done["progress"]["stage"] == "embed" and done["progress"]["done"] == done["progress"]["total"] > 0
    # Written whole, where `ragtune ingest` reads, and nothing else (no temporary left).
    assert (admin_kb / "offers/loyalty.md").read_bytes() == LOYALTY and (admin_kb / "offers/gift-cards.txt").read_bytes() == GIFTS
    assert not [p for p in admin_kb.rglob(".*")]

    answer = chat(admin_client, "How many bonus credits do I get for referring a friend to the Zephyr loyalty programme?")
    assert answer["index_version"] == result["version"]
    assert "offers/loyalty.md" in cited_paths(answer) and "7 bonus credits" in answer["answer"]

    docs = {d["doc_id"]: d for d in admin_client.get("/v1/admin/documents").json()["documents"]}
    assert docs["offers/loyalty.md"]["status"] == "indexed" and docs["offers/loyalty.md"]["chunks"] >= 1
    assert docs["billing/refunds.md"]["status"] == "indexed"
    stats = admin_client.get("/v1/admin/stats").json()
    assert stats["documents"] == before["documents"] + 2 and stats["index_version"] == result["version"]
    assert stats["last_ingest"]["job_id"] == job["job_id"] and stats["last_ingest"]["status"] == "succeeded"
    assert admin_client.get("/v1/admin/jobs").json()["jobs"][0]["job_id"] == job["job_id"]


def _plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "not a word document")
    return out.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

HOSTILE = [
    pytest.param("../escape.md", LOYALTY, 422, "climbs out", id="parent-traversal"),
    pytest.param("../../../../tmp/escape.md", LOYALTY, 422, "climbs out", id="deep-traversal"),
    pytest.param("/etc/cron.d/escape.md", LOYALTY, 422, "absolute path", id="absolute-path"),
    pytest.param("C:/Windows/escape.md", LOYALTY, 422, "absolute path", id="drive-path"),
    pytest.param("C:\\evil14.md", LOYALTY, 422, "absolute path", id="windows-drive-path"),
    pytest.param("offers/escape.md", LOYALTY, 422, "holds a folder", id="folder-in-name"),
    pytest.param(".hidden.md", LOYALTY, 422, "hidden", id="hidden-file"),
    pytest.param("CON.md", LOYALTY, 422, "device name", id="windows-device"),
    pytest.param("bell\x07.md", LOYALTY, 422, "control", id="control-char"),
    pytest.param("invoice\u202edm.txt", LOYALTY, 422, "invisible", id="right-to-left-override"),
    pytest.param("setup.exe", b"MZ\x90\x00" + b"\0" * 64, 415, "unsupported file type", id="program"),
    pytest.param("no-extension", LOYALTY, 415, "unsupported file type", id="no-extension"),
    pytest.param("manual.pdf", b"This is plain text pretending to be a PDF.", 422, "not a PDF", id="text-as-pdf"),
    pytest.param(
        "invoice.pdf", b"MZ\x90\x00" + b"\0" * 196 + b"%PDF-1.7\n", 422, "a Windows program", id="program-with-pdf-header-inside"
    ),
    pytest.param("policy.docx", _plain_zip(), 422, "lacks", id="plain-zip-as-docx"),
    pytest.param("policy.docx", b"just some text", 422, "zip container", id="text-as-docx"),
    pytest.param("bomb.docx", zip_bomb_docx(), 422, "decompression bomb", id="zip-bomb-as-docx"),
    pytest.param("photo.md", PNG, 422, "PNG image", id="png-as-markdown"),
    pytest.param("big.md", b"word " * 120_000, 413, "ingest.max_file_mb", id="over-max-file-mb"),
    pytest.param("empty.txt", b"  \n", 422, "empty", id="empty"),
    pytest.param("latin.txt", b"caf\xc3\xa9 \xe9t\xe9", 422, "UTF-8", id="damaged-utf8"),
    pytest.param("deep.ipynb", b"[" * 100_000 + b"]" * 100_000, 422, "nested too deeply", id="json-bomb-as-notebook"),
]


@pytest.mark.parametrize(("name", "data", "status", "reason"), HOSTILE)
def test_hostile_uploads_are_refused_and_nothing_is_written(admin_client, admin_kb, name, data, status, reason):
    before, jobs_before = folder_state(admin_kb), admin_client.get("/v1/admin/jobs").json()["jobs"]
    version = admin_client.get("/v1/admin/stats").json()["index_version"]
    body, headers = multipart([(name, data)])
    response = admin_client.post("/v1/admin/documents", content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert reason in payload["detail"] and payload["rejected"][0]["file"] == name
    assert folder_state(admin_kb) == before  # nothing written, not even a temporary
    assert admin_client.get("/v1/admin/jobs").json()["jobs"] == jobs_before  # no ingest started
    assert admin_client.get("/v1/admin/stats").json()["index_version"] == version


def test_one_refused_file_refuses_the_whole_request(admin_client, admin_kb):
    before = folder_state(admin_kb)
    body, headers = multipart([("loyalty.md", LOYALTY), ("../escape.md", GIFTS), ("fake.pdf", b"hello")])
    response = admin_client.post("/v1/admin/documents", content=body, headers=headers)
    assert response.status_code == 422
    payload = response.json()
    assert [r["file"] for r in payload["rejected"]] == ["../escape.md", "fake.pdf"]
    assert "nothing of the 3 files was written" in payload["detail"]
    assert folder_state(admin_kb) == before


def test_upload_limits_and_conflicts(admin_client, admin_settings, admin_kb):
    # An existing document is replaced with PUT, not silently overwritten by POST.
    body, headers = multipart([("refunds.md", LOYALTY)], folder="billing")
    response = admin_client.post("/v1/admin/documents", content=body, headers=headers)
    assert response.status_code == 409 and "PUT /v1/admin/documents/billing/refunds.md" in response.json()["detail"]
    # A folder outside the knowledge folder is refused like a name.
    body, headers = multipart([("x.md", LOYALTY)], folder="../outside")
    assert admin_client.post("/v1/admin/documents", content=body, headers=headers).status_code == 422
    # The request body as a whole is held to server.max_upload_mb before it is read.
    limit = int(admin_settings.server.max_upload_mb * 1048576)
    response = admin_client.post("/v1/admin/documents", content=b"x" * (limit + 1), headers=headers)
    assert response.status_code == 413 and "server.max_upload_mb" in response.json()["detail"]
    # No files at all, or text where files belong.
    body, headers = multipart([], other="1")
    response = admin_client.post("/v1/admin/documents", content=body, headers=headers)
    assert response.status_code == 400 and "field `files`" in response.json()["detail"]
    body, headers = multipart([], files="just text")
    assert admin_client.post("/v1/admin/documents", content=body, headers=headers).status_code == 400
    assert admin_client.post("/v1/admin/documents", json={"files": ["a.md"]}).status_code == 400
    assert not (admin_kb / "billing/x.md").exists() and not (admin_kb.parent / "outside").exists()


def test_a_pdf_that_does_not_parse_fails_its_job_with_the_reason(admin_client, admin_kb):
    broken = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nthis is no pdf body at all\n"
    body, headers = multipart([("broken.pdf", broken), ("loyalty.md", LOYALTY)])
    response = admin_client.post("/v1/admin/documents", content=body, headers=headers)
    assert response.status_code == 202
    job = wait_job(admin_client, response.json()["job_id"])
    assert job["status"] == "failed" and "broken.pdf" in job["detail"] and "PDF" in job["detail"]
    # The rest was ingested and published; the server keeps serving.
    assert job["result"]["published"] and job["result"]["added"] == ["loyalty.md"]
    assert [f["doc"] for f in job["result"]["failed"]] == ["broken.pdf"]
    answer = chat(admin_client, "How many bonus credits do I get for referring a friend?")
    assert answer["index_version"] == job["result"]["version"] and "loyalty.md" in cited_paths(answer)
    docs = {d["doc_id"]: d for d in admin_client.get("/v1/admin/documents").json()["documents"]}
    assert docs["broken.pdf"]["status"] == "failed" and "PDF" in docs["broken.pdf"]["reason"]
    assert admin_client.get("/v1/admin/stats").json()["failures"][0]["doc"] == "broken.pdf"
    assert 'ragtune_ingest_jobs_total{outcome="failed"} 1.0' in admin_client.get("/metrics").text


def test_replace_and_delete(admin_client, admin_kb):
    v1 = admin_client.get("/v1/admin/stats").json()["index_version"]
    assert "30 days" in chat(admin_client, REFUND_QUESTION)["answer"]
    new = b"# Refunds\n\nAnnual plans can be refunded within 45 days of the purchase date. Monthly plans are not refunded.\n"
    body, headers = multipart([("anything.md", new)], field="file")
    response = admin_client.put("/v1/admin/documents/billing/refunds.md", content=body, headers=headers)
    assert response.status_code == 202, response.text
    job = wait_job(admin_client, response.json()["job_id"])
    assert job["status"] == "succeeded" and job["kind"] == "replace" and job["result"]["updated"] == ["billing/refunds.md"]
    assert (admin_kb / "billing/refunds.md").read_bytes() == new
    answer = chat(admin_client, REFUND_QUESTION)
    assert answer["index_version"] == job["result"]["version"] != v1
    assert "45 days" in answer["answer"] and "30 days" not in answer["answer"]

    # Replacing with content of another type, or a document that is not there, is refused.
    body, headers = multipart([("x.md", docx_bytes("a word file"))], field="file")
    response = admin_client.put("/v1/admin/documents/billing/refunds.md", content=body, headers=headers)
    assert response.status_code == 422 and (admin_kb / "billing/refunds.md").read_bytes() == new
    response = admin_client.put("/v1/admin/documents/billing/nope.md", content=body, headers=headers)
    assert response.status_code == 404

    response = admin_client.delete("/v1/admin/documents/faq/support-hours.md")
    assert response.status_code == 202
    job = wait_job(admin_client, response.json()["job_id"])
    assert job["status"] == "succeeded" and job["result"]["removed"] == ["faq/support-hours.md"]
    assert not (admin_kb / "faq/support-hours.md").exists()
    answer = chat(admin_client, "When does the support team answer chats?")
    assert "faq/support-hours.md" not in {s["path"] for s in answer["sources"]}
    assert "faq/support-hours.md" not in {d["doc_id"] for d in admin_client.get("/v1/admin/documents").json()["documents"]}

    assert admin_client.delete("/v1/admin/documents/faq/support-hours.md").status_code == 404
    response = admin_client.delete("/v1/admin/documents/%2E%2E/%2E%2E/etc/passwd")
    assert response.status_code == 404 and "is not a document id" in response.json()["detail"]


def test_versions_and_rollback_change_what_chat_answers(admin_client):
    v1 = admin_client.get("/v1/admin/stats").json()["index_version"]
    new = b"# Refunds\n\nAnnual plans can be refunded within 60 days of the purchase date.\n"
    body, headers = multipart([("refunds.md", new)], field="file")
    job = wait_job(
        admin_client, admin_client.put("/v1/admin/documents/billing/refunds.md", content=body, headers=headers).json()["job_id"]
    )
    v2 = job["result"]["version"]
    versions = admin_client.get("/v1/admin/versions").json()["versions"]
    assert [(v["version"], v["current"]) for v in versions] == [(v2, True), (v1, False)]
    assert versions[0]["parent"] == v1 and versions[0]["documents"] == 3 and versions[0]["chunks"] >= 3
    assert "60 days" in chat(admin_client, REFUND_QUESTION)["answer"]

    response = admin_client.post(f"/v1/admin/versions/{v1}/activate")
    assert response.status_code == 200 and response.json()["version"] == v1 and response.json()["current"]
    answer = chat(admin_client, REFUND_QUESTION)
    assert answer["index_version"] == v1 and "30 days" in answer["answer"]
    assert admin_client.get("/v1/admin/stats").json()["index_version"] == v1

    response = admin_client.post(f"/v1/admin/versions/{v2}/activate")
    assert response.status_code == 200
    assert chat(admin_client, REFUND_QUESTION)["index_version"] == v2
    response = admin_client.post("/v1/admin/versions/v20990101T000000-abcdef/activate")
    assert response.status_code == 404 and v1 in response.json()["detail"]


@pytest.mark.slow
def test_a_second_ingest_while_one_runs_is_a_409_naming_it(admin_client, admin_settings, admin_kb):
    # A document long enough that embedding it takes a while (many chunks).
    sentences = " ".join(
        f"Fact number {i} says that widget {i} weighs {i * 3} grams and ships in box {i % 17}." for i in range(3000)
    )
    big = ("# Widget catalogue\n\n" + sentences).encode()
    assert len(big) < admin_settings.ingest.max_file_mb * 1048576
    body, headers = multipart([("catalogue.md", big)])
    first = admin_client.post("/v1/admin/documents", content=body, headers=headers).json()

    for response in (
        admin_client.post("/v1/admin/ingest"),
        admin_client.delete("/v1/admin/documents/products/vault.md"),
        post_files(admin_client, [("x.md", LOYALTY)]),
        admin_client.post(f"/v1/admin/versions/{admin_client.get('/v1/admin/stats').json()['index_version']}/activate"),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "Conflict" and response.json()["job_id"] == first["job_id"]
    assert (admin_kb / "products/vault.md").exists() and not (admin_kb / "x.md").exists()
    assert admin_client.get("/v1/admin/stats").json()["running_job"] == first["job_id"]

    assert wait_job(admin_client, first["job_id"])["status"] == "succeeded"
    second = admin_client.post("/v1/admin/ingest")
    assert second.status_code == 202
    job = wait_job(admin_client, second.json()["job_id"])
    assert job["status"] == "succeeded" and job["result"]["published"] is False  # nothing changed since


def test_an_ingest_running_outside_the_api_is_a_409_too(admin_client, admin_settings):
    from ragtune.index import KnowledgeIndex

    with KnowledgeIndex(admin_settings).lock():  # what `ragtune ingest` holds while it runs
        response = admin_client.post("/v1/admin/ingest")
        assert response.status_code == 409 and response.json()["job_id"] is None
        assert "ragtune ingest" in response.json()["detail"]
    assert admin_client.post("/v1/admin/ingest").status_code == 202


def test_without_an_ingester_writes_answer_503_and_reads_work(admin_settings, embedder):
    with admin_test_client(build_app(admin_settings, embedder, ingester=False)) as client:
        for response in (
            client.post("/v1/admin/ingest"),
            post_files(client, [("x.md", LOYALTY)]),
            client.delete("/v1/admin/documents/products/vault.md"),
        ):
            assert response.status_code == 503 and "without an ingester" in response.json()["detail"]
        assert client.get("/v1/admin/versions").status_code == 200
        assert client.get("/v1/admin/documents").json()["documents"][0]["status"] == "indexed"
        assert client.get("/v1/admin/jobs/nope").status_code == 404


def test_the_admin_routes_need_an_admin_key(admin_settings, embedder, admin_kb):
    from ragtune.settings import AuthSettings

    widget, admin = "wk_5d0e8b3a71c94f26e0a8d4b2c6f1937e", "ak_0c6f2e9a4d8b1735c9e0a2f4b6d8e1a3"
    auth = AuthSettings.model_validate(
        {
            "widget_keys": [{"name": "shop", "key": widget, "origins": ["https://shop.example"]}],
            "admin_keys": [{"name": "ops", "key": admin}],
        }
    )
    before = folder_state(admin_kb)
    with TestClient(build_app(admin_settings.model_copy(update={"auth": auth}), embedder)) as client:
        body, headers = multipart([("loyalty.md", LOYALTY)])
        for key, status in ((None, 401), ("wk_not-a-key-this-server-knows-at-all", 401), (widget, 403)):
            auth_header = {"Authorization": f"Bearer {key}"} if key else {}
            assert client.get("/v1/admin/stats", headers=auth_header).status_code == status
            assert client.post("/v1/admin/documents", content=body, headers=headers | auth_header).status_code == status
            assert client.delete("/v1/admin/documents/products/vault.md", headers=auth_header).status_code == status
            assert client.post("/v1/admin/models/ragtune-v1/deploy", headers=auth_header).status_code == status
        assert (
            folder_state(admin_kb) == before and client.get("/v1/admin/jobs", headers={"X-API-Key": admin}).json()["jobs"] == []
        )
        # The widget key still chats; the admin key does everything.
        assert (
            client.post("/v1/chat", json={"message": REFUND_QUESTION}, headers={"Authorization": f"Bearer {widget}"}).status_code
            == 200
        )
        response = client.post("/v1/admin/documents", content=body, headers=headers | {"Authorization": f"Bearer {admin}"})
        assert response.status_code == 202
        job = wait_job(client, response.json()["job_id"], headers={"X-API-Key": admin})
        assert job["status"] == "succeeded" and job["result"]["added"] == ["loyalty.md"]


def test_an_upload_without_an_admin_key_is_refused_before_its_body_is_read(admin_settings, embedder):
    """Refused on its headers: a client without the key cannot make the server take in (and spool
    to disk) server.max_upload_mb of body first."""
    from ragtune.settings import AuthSettings

    auth = AuthSettings.model_validate({"admin_keys": [{"name": "ops", "key": "ak_0c6f2e9a4d8b1735c9e0a2f4b6d8e1a3"}]})
    with live_server(build_app(admin_settings.model_copy(update={"auth": auth}), embedder)) as url:
        host, port = url.removeprefix("http://").split(":")
        declared = int(admin_settings.server.max_upload_mb * 1048576) - 1  # allowed by the body limit
        head = (
            f"POST /v1/admin/documents HTTP/1.1\r\nHost: {host}\r\ncontent-type: multipart/form-data; boundary=x\r\n"
            f"content-length: {declared}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head + b"--x\r\n" + b"a" * 4096)  # a sliver of the declared body, then nothing
            answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 401"), answer[:200]
