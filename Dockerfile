FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ragtune ragtune
COPY ingest ingest
COPY serve serve
COPY train train
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && pip install --no-cache-dir ".[serve]"
COPY knowledge knowledge
EXPOSE 8000
CMD ["ragtune", "serve"]
