FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# llama.cpp is compiled portable (AVX2/FMA/F16C, no AVX-512, no AMX), never -march=native: an image
# built on one host runs on others, and a VM that advertises AMX without granting it cannot kill
# the server with SIGILL. Override with --build-arg LLAMA_CMAKE_ARGS=... for a host you trust.
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
COPY pyproject.toml README.md ./
COPY ragtune ragtune
COPY ingest ingest
COPY serve serve
COPY train train
COPY evaluation evaluation
COPY cli cli
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && CMAKE_ARGS="$LLAMA_CMAKE_ARGS" pip install --no-cache-dir --no-binary llama-cpp-python ".[serve,postgres]"
COPY knowledge knowledge
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["ragtune", "serve"]
