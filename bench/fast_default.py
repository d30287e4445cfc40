"""Default-mode latency and time to first text in the widget, with and without the model being asked.

Run: .venv/bin/python bench/fast_default.py [--questions 12] [--configs default,model,model-nocache]
                                           [--env RAGTUNE_LLM__GGUF_PATH=...]

It ingests the bundled knowledge/ (a private copy) into a fresh data dir, then for each configuration
starts `python -m cli serve` on a free port and asks the held-out questions of
train/examples/heldout.jsonl one after the other, streamed as the widget asks them (`stream: true`):
- `default`: auto mode as shipped (the model is asked only when its measured pass rate reaches
  chat.min_model_pass_rate; the bundled model has none, so it answers extractively at once);
- `model`: auto mode with chat.min_model_pass_rate = 0, so every answer asks the model (and
  verifies its reply), prefix cache on;
- `model-nocache`: the same with llm.prefix_cache off.
Each server answers one warm-up question first (not counted). Printed per configuration: whole
answer p50 / p95, first text (the first non-empty `delta` event, what the widget shows) p50 / p95,
modes, the model's mean prompt tokens, prompt tokens it found already decoded, and prompt-eval
time (from each answer's `usage` and `timings_ms`), and the machine's load average before and after,
since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "default": {},
    "model": {"RAGTUNE_CHAT__MIN_MODEL_PASS_RATE": "0"},
    "model-nocache": {"RAGTUNE_CHAT__MIN_MODEL_PASS_RATE": "0", "RAGTUNE_LLM__PREFIX_CACHE": "false"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions(n: int) -> list[str]:
    rows = [
        json.loads(line)
        for line in (ROOT / "train/examples/heldout.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    in_scope = [r["question"] for r in rows if r.get("kind") == "in_scope"]
    other = [r["question"] for r in rows if r.get("kind") != "in_scope"]
    # Mostly answerable questions (the ones a model would phrase), a few hand-offs as customers send them.
    picked = in_scope[: max(1, n - n // 4)] + other[: n // 4]
    return picked[:n]


def ask(client: httpx.Client, question: str) -> dict:
    started = time.perf_counter()
    first_text = None
    body = None
    with client.stream("POST", "/v1/chat", json={"message": question, "stream": True}) as r:
        r.raise_for_status()
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "delta" and data.get("text") and first_text is None:
                    first_text = time.perf_counter() - started
                elif event == "answer":
                    body = data
                elif event == "error":
                    raise RuntimeError(f"stream error: {data}")
    total = time.perf_counter() - started
    if body is None:
        raise RuntimeError("the stream ended without an answer")
    return {"total": total, "first_text": first_text if first_text is not None else total, "body": body}


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "-"


def start_server(env: dict[str, str], tmp: Path, name: str) -> tuple[subprocess.Popen, str, object]:
    port = free_port()
    log = open(tmp / f"serve-{name}.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return server, base, log
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"server exited: {(tmp / f'serve-{name}.log').read_text()[-2000:]}")
        time.sleep(0.5)
    raise SystemExit("server not ready after 10 minutes")


def run_config(name: str, base_env: dict[str, str], tmp: Path, asked: list[str]) -> None:
    env = base_env | CONFIGS[name]
    server, base, log = start_server(env, tmp, name)
    try:
        load_before = os.getloadavg()[0]
        with httpx.Client(base_url=base, timeout=httpx.Timeout(900.0)) as client:
            ask(client, "What does the Pro plan cost?")  # warm-up, not counted
            results = [ask(client, q) for q in asked]
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    totals = [r["total"] for r in results]
    firsts = [r["first_text"] for r in results]
    modes = Counter(r["body"]["mode"] for r in results)
    asked_model = [r["body"] for r in results if r["body"]["usage"]["prompt_tokens"]]
    prompt = np.mean([b["usage"]["prompt_tokens"] for b in asked_model]) if asked_model else 0
    cached = np.mean([b["usage"].get("cached_prompt_tokens", 0) for b in asked_model]) if asked_model else 0
    evals = [b["timings_ms"]["prompt_eval_ms"] for b in asked_model if "prompt_eval_ms" in b["timings_ms"]]
    print(
        f"| {name} | {len(results)} | {pct(totals, 50)} / {pct(totals, 95)} | {pct(firsts, 50)} / {pct(firsts, 95)} "
        f"| {dict(modes)} | {len(asked_model)} | {prompt:.0f} | {cached:.0f} | {np.mean(evals) if evals else 0:.0f} "
        f"| {load_before:.1f} / {load_after:.1f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--configs", default="default,model,model-nocache")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE passed to every server (e.g. another GGUF)")
    args = parser.parse_args()
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {sorted(CONFIGS)}")
    asked = questions(args.questions)
    with tempfile.TemporaryDirectory(prefix="ragtune-fast-") as tmp_name:
        tmp = Path(tmp_name)
        kb = tmp / "kb"
        shutil.copytree(ROOT / "knowledge", kb)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
        env |= {
            "RAGTUNE_DATA_DIR": str(tmp / "data"),
            "RAGTUNE_INGEST__SOURCE_DIR": str(kb),
            "RAGTUNE_CHAT__ANSWER_MODE": "auto",
            "RAGTUNE_LIMITS__REQUESTS_PER_ADDRESS": "0",
            "RAGTUNE_LIMITS__REQUESTS_PER_KEY": "0",
        }
        env |= dict(item.split("=", 1) for item in args.env)
        subprocess.run([sys.executable, "-m", "cli", "ingest"], env=env, cwd=ROOT, check=True, capture_output=True)
        print(f"{os.cpu_count()} cores, {len(asked)} questions each (one at a time, streamed), after one warm-up answer")
        print(
            "| configuration | answers | whole answer p50 / p95 s | first text p50 / p95 s | modes | model asked "
            "| prompt tokens | of them cached | prompt eval ms | load avg before / after |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            run_config(name, env, tmp, asked)


if __name__ == "__main__":
    main()
