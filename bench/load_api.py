"""Load run against a real `ragtune serve` on loopback: many concurrent clients, half of them streaming.

Run: .venv/bin/python bench/load_api.py [--clients 50] [--duration 60] [--answer-mode auto|extractive]
                                         [--reingest] [--engine llamacpp|none]

It ingests the bundled knowledge/ (a private copy) into a fresh data dir, starts `python -m cli serve`
on a free port with the rate limits off (every client comes from 127.0.0.1), and lets --clients
clients ask the held-out and training questions about knowledge/ for --duration seconds, each
waiting for its answer before asking again (half of them with `stream: true`). With --reingest a
document of the copy is changed after a fifth of the run and `python -m cli ingest` publishes a
new index version while the clients chat. Printed: answers, answers/s, errors by status, latency
p50/p95/p99 of whole answers, of the API's own overhead (client-observed time minus the
server's `timings_ms.total_ms`), of the first streamed byte, the index versions answers carried,
and the peak memory of the server and its model process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions() -> list[str]:
    out = []
    for name in ("heldout.jsonl", "knowledge_pairs.jsonl"):
        for line in (ROOT / "train/examples" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line)["question"])
    return out


class MemoryWatch(threading.Thread):
    """Samples the resident memory of the server and its children (the model process) every 0.25 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak_server = 0
        self.peak_total = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                server = self.proc.memory_info().rss
                total = server + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:
                return
            self.peak_server = max(self.peak_server, server)
            self.peak_total = max(self.peak_total, total)
            time.sleep(0.25)


class Results:
    def __init__(self) -> None:
        self.latency: list[float] = []
        self.overhead: list[float] = []
        self.first_byte: list[float] = []
        self.status: Counter[str] = Counter()
        self.modes: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()  # why an answer was not the model's: verification reasons


async def one_answer(client: httpx.AsyncClient, question: str, stream: bool, results: Results) -> None:
    started = time.perf_counter()
    try:
        if not stream:
            r = await client.post("/v1/chat", json={"message": question})
            elapsed = time.perf_counter() - started
            results.status[str(r.status_code)] += 1
            if r.status_code != 200:
                return
            body = r.json()
        else:
            body = None
            async with client.stream("POST", "/v1/chat", json={"message": question, "stream": True}) as r:
                results.status[str(r.status_code)] += 1
                if r.status_code != 200:
                    return
                event = None
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        if event is None:
                            results.first_byte.append(time.perf_counter() - started)
                        event = line[7:]
                    elif line.startswith("data: ") and event == "answer":
                        body = json.loads(line[6:])
                    elif line.startswith("data: ") and event == "error":
                        results.status["stream-error"] += 1
                        results.status["200"] -= 1
                        return
            elapsed = time.perf_counter() - started
            if body is None:
                results.status["stream-incomplete"] += 1
                return
    except httpx.HTTPError as exc:
        results.status[type(exc).__name__] += 1
        return
    results.latency.append(elapsed)
    results.overhead.append(elapsed - body["timings_ms"]["total_ms"] / 1000)
    results.modes[body["mode"]] += 1
    for reason in (body.get("verification") or {}).get("reasons") or []:
        results.fallbacks[reason] += 1
    results.versions[body["index_version"]] += 1


async def client_loop(base: str, deadline: float, busy: threading.Event, stream: bool, seed: int, results: Results) -> None:
    rng = random.Random(seed)
    pool = questions()
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(600.0)) as client:
        while time.perf_counter() < deadline or busy.is_set():  # a re-ingest in progress keeps the clients asking
            await one_answer(client, rng.choice(pool), stream, results)


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--answer-mode", default="auto", choices=["auto", "generative", "extractive"])
    parser.add_argument("--engine", default="llamacpp", choices=["llamacpp", "none"])
    parser.add_argument("--reingest", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ragtune-load-") as tmp:
        kb = Path(tmp) / "kb"
        shutil.copytree(ROOT / "knowledge", kb)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
        env |= {
            "RAGTUNE_DATA_DIR": str(Path(tmp) / "data"),
            "RAGTUNE_INGEST__SOURCE_DIR": str(kb),
            "RAGTUNE_LLM__ENGINE": args.engine,
            "RAGTUNE_CHAT__ANSWER_MODE": args.answer_mode,
            "RAGTUNE_LIMITS__REQUESTS_PER_ADDRESS": "0",
            "RAGTUNE_LIMITS__REQUESTS_PER_KEY": "0",
            "RAGTUNE_LIMITS__STREAMS_PER_KEY": "0",
        }
        cli = [sys.executable, "-m", "cli"]
        subprocess.run([*cli, "ingest"], env=env, cwd=ROOT, check=True, capture_output=True)
        port = free_port()
        log = open(Path(tmp) / "serve.log", "w")
        server = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(f"server exited: {(Path(tmp) / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.5)
            ready = httpx.get(f"{base}/readyz", timeout=5).json()
            watch = MemoryWatch(server.pid)
            watch.start()
            results = Results()
            reingest: dict[str, float] = {}
            busy = threading.Event()

            def reingest_later() -> None:
                time.sleep(args.duration / 5)
                doc = kb / "policies" / "refunds.md"
                target = doc if doc.exists() else next(kb.rglob("*.md"))
                target.write_text(target.read_text(encoding="utf-8") + "\n\nUpdated during the load run.\n", encoding="utf-8")
                t0 = time.perf_counter()
                try:
                    subprocess.run([*cli, "ingest"], env=env, cwd=ROOT, check=True, capture_output=True)
                finally:
                    reingest["seconds"] = time.perf_counter() - t0
                    busy.clear()

            if args.reingest:
                busy.set()
                threading.Thread(target=reingest_later, daemon=True).start()

            async def run_all() -> float:
                started = time.perf_counter()
                deadline = started + args.duration
                await asyncio.gather(*(client_loop(base, deadline, busy, i % 2 == 1, i, results) for i in range(args.clients)))
                return time.perf_counter() - started

            wall = asyncio.run(run_all())
            watch.stop.set()
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()

    answers = len(results.latency)
    errors = sum(n for status, n in results.status.items() if status != "200")
    print(
        f"engine {args.engine} ({ready.get('model')}), answer_mode {args.answer_mode}, {args.clients} clients "
        f"(half streaming), {args.duration:.0f} s of asking, {wall:.0f} s until the last answer"
        + (f", re-ingest took {reingest.get('seconds', float('nan')):.1f} s" if args.reingest else "")
    )
    print(
        "| answers | answers/s | errors | whole answer p50 / p95 / p99 ms | API overhead p50 / p95 / p99 ms "
        "| first streamed byte p50 / p95 ms | modes | replies rejected (reasons) | index versions | peak RSS server / with model |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {answers} | {answers / wall:.2f} | {errors} {dict(results.status)} | {pct(results.latency, 50)} / "
        f"{pct(results.latency, 95)} / {pct(results.latency, 99)} | {pct(results.overhead, 50)} / {pct(results.overhead, 95)} / "
        f"{pct(results.overhead, 99)} | {pct(results.first_byte, 50)} / {pct(results.first_byte, 95)} | {dict(results.modes)} | {dict(results.fallbacks)} "
        f"| {len(results.versions)} {dict(results.versions)} | {watch.peak_server / 2**20:.0f} / {watch.peak_total / 2**20:.0f} MB |"
    )


if __name__ == "__main__":
    main()
