"""The jobs table: one ingest slot across processes, progress, and jobs left by dead processes,
on SQLite and on a real Postgres (the `pgserver` wheel)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from serve.store import Database
from serve.store.jobs import JobStore, Owner


@pytest.fixture(params=["sqlite", "postgres"])
def open_db(request, tmp_path):
    """Opens connections to one fresh database (several of them stand for several processes)."""
    opened: list[Database] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")

    def open_one() -> Database:
        db = Database.open(url, tmp_path)
        opened.append(db)
        return db

    yield open_one
    for db in opened:
        db.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_one_ingest_slot_progress_and_outcome(open_db):
    store = JobStore(open_db())
    store.ensure()
    me = Owner.here()
    job, ours = store.claim("upload", me, {"documents": ["a.md"]})
    assert ours and job["status"] == "queued" and job["request"] == {"documents": ["a.md"]}
    assert abs(job["created_at"] - time.time()) < 5  # whole seconds survive (Postgres's REAL would blur a minute)
    holder, ours = store.claim("ingest", me)
    assert not ours and holder["job_id"] == job["job_id"]

    store.start(job["job_id"])
    store.progress(job["job_id"], 3, 10, "embed", "embedding 10 chunks")
    store.progress(job["job_id"], 5, 10, "embed")  # no detail: the last one stays
    running = store.get(job["job_id"])
    assert running["status"] == "running" and running["progress"] == {"done": 5, "total": 10, "stage": "embed"}
    assert running["detail"] == "embedding 10 chunks"

    store.finish(job["job_id"], "succeeded", "published v2", {"version": "v2", "failed": []})
    store.finish(job["job_id"], "failed", "too late")  # an ended job stays as it ended
    done = store.get(job["job_id"])
    assert done["status"] == "succeeded" and done["result"] == {"version": "v2", "failed": []} and done["finished_at"]
    assert store.holder() is None and store.last_finished()["job_id"] == job["job_id"]
    second, ours = store.claim("ingest", me)
    assert ours and [j["job_id"] for j in store.recent()] == [second["job_id"], job["job_id"]]
    assert store.counts() == {"succeeded": 1, "queued": 1}


def test_concurrent_claims_from_several_processes_admit_exactly_one(open_db):
    stores = [JobStore(open_db()) for _ in range(6)]
    stores[0].ensure()
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def claim(store: JobStore) -> None:
        barrier.wait()
        results.append(store.claim("ingest", Owner.here())[1])

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]


def test_jobs_of_dead_processes_are_reaped_and_live_ones_kept(open_db):
    store = JobStore(open_db())
    store.ensure()
    me = Owner.here()

    def left_by(owner: Owner) -> str:
        job, ours = store.claim("ingest", owner)
        assert ours
        store.start(job["job_id"])
        # Several leftovers at once (each from another time): move it off the slot so the next claim gets in.
        store.db.execute("UPDATE jobs SET slot = job_id WHERE job_id = ?", (job["job_id"],))
        return job["job_id"]

    killed = left_by(Owner(me.host, dead_pid(), "a1b2c3d4"))
    restarted = left_by(Owner(me.host, me.pid, "0ther000"))  # this pid, an earlier app: a restarted container
    elsewhere = left_by(Owner("another-host", 1, "feedbeef"))
    silent = left_by(Owner("silent-host", 1, "deadbeef"))
    store.db.execute("UPDATE jobs SET heartbeat_at = ? WHERE job_id = ?", (time.time() - 600, silent))
    mine = left_by(me)

    assert sorted(store.reap(me, stale_s=60)) == sorted([killed, restarted, silent])
    for job_id in (killed, restarted, silent):
        job = store.get(job_id)
        assert job["status"] == "failed" and job["detail"].startswith("interrupted")
    assert "stopped" in store.get(killed)["detail"] and "heartbeat" in store.get(silent)["detail"]
    assert store.get(elsewhere)["status"] == "running" and store.get(mine)["status"] == "running"


@pytest.mark.slow
def test_the_admin_api_keeps_its_jobs_in_a_postgres_store(pg_url, admin_settings, embedder):

    from tests.serve.admin_kb import admin_test_client, build_app, multipart, wait_job

    settings = admin_settings.model_copy(update={"store": admin_settings.store.model_copy(update={"url": pg_url})})
    with admin_test_client(build_app(settings, embedder)) as client:
        facts = " ".join(f"Widget {i} weighs {i * 3} grams and ships in box {i % 17}." for i in range(3000))
        body, headers = multipart([("catalogue.md", f"# Catalogue\n\n{facts}".encode())])
        job = client.post("/v1/admin/documents", content=body, headers=headers).json()
        busy = client.post("/v1/admin/ingest")  # while the catalogue is embedded
        assert busy.status_code == 409 and busy.json()["job_id"] == job["job_id"]
        done = wait_job(client, job["job_id"])
        assert done["status"] == "succeeded" and done["result"]["added"] == ["catalogue.md"]
        assert client.get("/v1/admin/stats").json()["last_ingest"]["job_id"] == job["job_id"]
    rows = Database.open(pg_url, settings.data_dir).execute(
        "SELECT status, done, total FROM jobs WHERE job_id = ?", (job["job_id"],)
    )
    assert rows == [("succeeded", done["progress"]["done"], done["progress"]["total"])]
