#!/usr/bin/env bash
# Set up .venv with ragtune and the serving stack; with --dev also the test tools and llama.cpp's
# GGUF converter (taken from the llama-cpp-python sdist, which carries a matching gguf-py).
# Idempotent: a second run only checks. Environment: PYTHON (interpreter, default python3),
# TORCH_SPEC (default torch==2.13.0, the CPU build on CPU-only machines; set TORCH_SPEC=torch for CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "setup.sh: unknown option $arg (use --dev)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip >/dev/null
# Install torch first and pinned: left to the resolver, an unpinned torch pulls a ~3 GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
extras=serve
[ "$dev" = 1 ] && extras=serve,dev,train
# llama-cpp-python compiles llama.cpp on first install (a few minutes on 2 cores); pip caches the wheel.
pip install -q -e ".[$extras]"

if [ "$dev" = 1 ] && [ ! -f .cache/llama.cpp/convert_hf_to_gguf.py ]; then
  version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
  tmp=$(mktemp -d)
  pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$tmp"
  mkdir -p .cache/llama.cpp
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  src=$(ls -d "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
  cp "$src/convert_hf_to_gguf.py" "$src/convert_lora_to_gguf.py" .cache/llama.cpp/
  cp -r "$src/gguf-py" .cache/llama.cpp/gguf-py
  [ -d "$src/conversion" ] && cp -r "$src/conversion" .cache/llama.cpp/ || true
  rm -rf "$tmp"
fi
echo "ready: .venv/bin/ragtune"
