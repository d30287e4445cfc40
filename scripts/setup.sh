#!/usr/bin/env bash
# Set up .venv with ragtune and the serving stack; with --train also the training packages and
# llama.cpp's GGUF converter (taken from the llama-cpp-python sdist, which carries a matching
# gguf-py) that `ragtune train export` runs; with --dev those and the test tools.
# Idempotent: a second run only checks. Environment: PYTHON (interpreter, default python3),
# TORCH_SPEC (default torch==2.13.0, the CPU build on CPU-only machines; set TORCH_SPEC=torch for CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
train=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1; train=1 ;;
    --train) train=1 ;;
    *) echo "setup.sh: unknown option $arg (use --train or --dev)" >&2; exit 2 ;;
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
[ "$train" = 1 ] && extras=serve,train
[ "$dev" = 1 ] && extras=serve,dev,train

# llama.cpp, built portable. llama-cpp-python ships as source only, and its default build is
# native (-march=native): it compiles in whatever the build machine advertises, AVX-512 and AMX
# included, and a VM that advertises AMX without granting its tile state kills the process with
# SIGILL on the first real prompt. So we build with explicit flags (AVX2/FMA/F16C, no AVX-512, no
# AMX; LLAMA_CMAKE_ARGS overrides them, e.g. "-DGGML_NATIVE=ON" on a machine you trust) into a
# wheel cache keyed by version + flags + Python: pip's own wheel cache is keyed by the sdist alone
# and would hand an old native build back.
LLAMA_VERSION=${LLAMA_VERSION:-0.3.36}
LLAMA_CMAKE_ARGS=${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF}
tag=$(.venv/bin/python -c "import sys, platform; print(sys.implementation.cache_tag, platform.machine())")
key=$(printf '%s|%s|%s' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" "$tag" | sha256sum | cut -c1-16)
wheels=${RAGTUNE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ragtune/wheels}/llama-cpp-python-$LLAMA_VERSION-$key
if [ "$(cat .venv/.llama-build 2>/dev/null)" != "$key" ]; then
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "building llama.cpp (llama-cpp-python $LLAMA_VERSION, portable flags; a few minutes on 2 cores)"
    tmp=$(mktemp -d)
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$LLAMA_VERSION" -w "$tmp"
    mkdir -p "$(dirname "$wheels")" && rm -rf "$wheels" && mv "$tmp" "$wheels"
  fi
  pip install -q --force-reinstall --no-deps "$wheels"/*.whl
  echo "$key" > .venv/.llama-build
fi
pip install -q -e ".[$extras]"
# Headless Chromium and its driver for the browser tests (Debian packages; a no-op when present).
if [ "$dev" = 1 ]; then bash scripts/browser-deps.sh; fi
# Docker Compose for the compose-file tests (`config` needs no Docker engine; a no-op when present).
if [ "$dev" = 1 ]; then bash scripts/compose-deps.sh; fi

if [ "$train" = 1 ] && [ ! -f .cache/llama.cpp/convert_hf_to_gguf.py ]; then
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
# The answer engine's self-check: the model decodes a multi-token prompt in a child process, so a
# build that faults on this CPU is reported here, not by the first customer question.
if ! .venv/bin/ragtune doctor --check engine; then
  echo "setup.sh: the embedded answer engine failed its self-check (above); the server would answer retrieval-only" >&2
  exit 1
fi
echo "ready: .venv/bin/ragtune"
