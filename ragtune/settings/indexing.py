"""Settings sections for building and searching the index: embedding, chunking, ingest, chroma, retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ragtune.settings.base import _Section


class EmbeddingSettings(_Section):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: the bundled offline 'all-MiniLM-L6-v2', a Hugging "
        "Face model id (needs internet on first use) or a local directory. Changing it rebuilds "
        "the index from scratch instead of mixing vector spaces.",
    )
    backend: Literal["onnx", "onnx-int8", "onnx-int8-static", "torch"] = Field(
        "onnx",
        description="How the embedding model runs. onnx: exported once to ONNX (cached in onnx_cache_dir) and run on "
        "onnxruntime, same vectors as torch, faster and no torch in the serving process; onnx-int8: the same with int8 "
        "weights (slightly different vectors: changing to or from it rebuilds the index); onnx-int8-static: int8 weights "
        "and activations calibrated on the model folder's calibration.jsonl (a tuned retriever carries one); "
        "torch: sentence-transformers.",
    )
    onnx_cache_dir: Path | None = Field(None, description="Where ONNX exports are cached (default: ~/.cache/ragtune/onnx).")
    device: str = Field("cpu", description="torch device for the embedding model with backend=torch (cpu, cuda, mps).")
    batch_size: int = Field(32, ge=1, description="Chunks embedded per batch.")
    query_prefix: str = Field("", description="Text put before each query (e5/bge-style models want one).")
    document_prefix: str = Field("", description="Text put before each chunk when it is embedded.")


class ChunkingSettings(_Section):
    chunk_size: int = Field(300, ge=20, le=4000, description="Target chunk length in words.")
    chunk_overlap: int = Field(
        30, ge=0, description="Words of a chunk repeated at the start of the next one in the same section."
    )
    min_chunk_words: int = Field(8, ge=1, description="A last piece of a section shorter than this joins the chunk before it.")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: Any) -> int:
        size = info.data.get("chunk_size", 300)
        if value >= size:
            raise ValueError(f"chunk_overlap ({value}) must be smaller than chunk_size ({size})")
        return value


class IngestSettings(_Section):
    source_dir: Path = Field(Path("knowledge"), description="Folder ingested when `ragtune ingest` is given no path.")
    max_file_mb: float = Field(20.0, gt=0, description="Files larger than this are reported and skipped.")
    extensions: list[str] = Field(
        [".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".xlsx", ".epub", ".ipynb"],
        description="File types read; any other file in the folder is reported as unsupported.",
    )
    keep_versions: int = Field(2, ge=1, description="Index versions kept on disk (the current one included).")
    follow_links: bool = Field(
        False,
        description="Read symbolic links whose target stays inside the ingested folder. Links that lead out of "
        "the folder are always refused and reported, whatever this says.",
    )
    max_unzipped_mb: float = Field(
        100.0,
        gt=0,
        description="Most a zip-based file (docx, pptx, xlsx, epub) may inflate to, counted from its "
        "declared sizes and again while inflating; more is refused as a decompression bomb.",
    )
    max_compression_ratio: float = Field(
        100.0,
        gt=1,
        description="Highest inflated-to-compressed ratio of one entry of a zip-based file (entries under "
        "1 MB inflated are exempt); higher is refused as a decompression bomb.",
    )
    max_zip_entries: int = Field(10000, ge=1, description="Most entries a zip-based file may hold.")


class ChromaSettings(_Section):
    url: str | None = Field(
        None, description="Chroma server URL (http://host:8000). Unset: an embedded persistent Chroma under the data dir."
    )
    collection_prefix: str = Field(
        "ragtune", description="Prefix of the Chroma collection names (one collection per index version)."
    )


class RetrievalSettings(_Section):
    mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="Dense (Chroma), BM25, or both fused by reciprocal rank fusion."
    )
    top_k: int = Field(6, ge=1, le=100, description="Chunks returned per query.")
    candidates: int = Field(50, ge=1, le=1000, description="Chunks taken from each side before fusion.")
    rrf_k: int = Field(10, ge=1, description="Reciprocal-rank-fusion constant k in 1/(k + rank).")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in the fusion.")
    bm25_weight: float = Field(1.5, ge=0, description="Weight of the BM25 ranking in the fusion.")
    tuned_fusion: bool = Field(
        True,
        description="When the searched index version was embedded with a tuned retriever that carries fusion weights "
        "(chosen on dev data by `ragtune train retriever`), fuse with those instead of dense_weight, bm25_weight and rrf_k.",
    )
    min_relevance: float = Field(
        0.30,
        ge=0,
        le=1,
        description="Relevance (0-1, the cosine similarity of query and chunk) below which a chunk "
        "does not count as evidence; when no chunk clears it the chat answers 'nothing found'.",
    )
    reranker_model: str | None = Field(
        None, description="Optional cross-encoder (model id or path) that reorders the fused candidates."
    )
    reranker_candidates: int = Field(20, ge=1, description="Fused candidates handed to the reranker.")
    evidence_rerank: bool = Field(
        False,
        description="Second stage: reorder the fused top evidence_rerank_depth chunks by the best sentence score the "
        "trained evidence selector (ragtune/grounding) gives each. Off by default: it lifts the company held-out hits "
        "but not the extractive answers, and costs latency (docs/benchmarks.md).",
    )
    evidence_rerank_depth: int = Field(10, ge=2, le=100, description="Fused chunks the evidence selector reorders.")
