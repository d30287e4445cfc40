"""llama.cpp build figures: prompt and generation tokens/s of the installed llama-cpp-python.

Run: .venv/bin/python bench/llama_build.py [--gguf FILE] [--prompt-tokens 512] [--gen-tokens 128] [--repeat 3]
To compare builds, install another build into a folder and put it first on the path, e.g.
  CMAKE_ARGS="-DGGML_NATIVE=ON" pip wheel --no-cache-dir --no-deps --no-binary llama-cpp-python \\
      llama-cpp-python==0.3.36 -w /tmp/native
  pip install --no-deps --target /tmp/native-site /tmp/native/*.whl
  PYTHONPATH=/tmp/native-site .venv/bin/python bench/llama_build.py
The model is the bundled SmolLM2-135M-Instruct (Q4_1) unless --gguf names another. Each repeat
loads the model (with or without llama.cpp's extra CPU buffer types: --safe), decodes one prompt of
--prompt-tokens tokens in batches, then generates --gen-tokens tokens one at a time (greedy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve.engines.llama_worker import SELF_CHECK_TEXT, load_model  # noqa: E402
from serve.engines.llamacpp import bundled_gguf  # noqa: E402


def measure(gguf: Path, prompt_tokens: int, gen_tokens: int, threads: int | None, safe: bool) -> tuple[float, float]:
    llm = load_model({"path": str(gguf), "n_ctx": prompt_tokens + gen_tokens + 16, "threads": threads, "safe": safe})
    text = SELF_CHECK_TEXT * (prompt_tokens // 40 + 2)
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=True)[:prompt_tokens]
    t0 = time.perf_counter()
    llm.eval(tokens)
    prompt_tps = len(tokens) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(gen_tokens):
        llm.eval([llm.sample(temp=0.0)])
    gen_tps = gen_tokens / (time.perf_counter() - t0)
    llm.close()
    return prompt_tps, gen_tps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--safe", action="store_true", help="load without extra CPU buffer types (no AMX / repacking)")
    args = parser.parse_args()
    import llama_cpp

    gguf = args.gguf or bundled_gguf()
    print(f"llama_cpp {llama_cpp.__version__} from {Path(llama_cpp.__file__).parent}")
    print(llama_cpp.llama_print_system_info().decode().strip())
    runs = [measure(gguf, args.prompt_tokens, args.gen_tokens, args.threads, args.safe) for _ in range(args.repeat)]
    prompt = statistics.median(r[0] for r in runs)
    gen = statistics.median(r[1] for r in runs)
    print(
        f"{gguf.name}{' (safe)' if args.safe else ''}: prompt {prompt:.1f} tokens/s ({args.prompt_tokens} tokens), "
        f"generation {gen:.1f} tokens/s ({args.gen_tokens} tokens), median of {args.repeat}: "
        + ", ".join(f"{p:.0f}/{g:.0f}" for p, g in runs)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
