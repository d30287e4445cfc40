"""Sentence embeddings on onnxruntime: the same model as sentence-transformers, without torch.

Embedding is the whole cost of ingestion and most of the serving process's memory, and torch is
most of that. This encoder runs a sentence-transformers model exported once to ONNX (by
`export_onnx`, the only place that needs torch, run on first use and cached), with the model's
own fast tokenizer (`tokenizers`) and its pooling, so the vectors equal sentence-transformers'
(cosine > 0.9999 for fp32; the int8 variant is quantized dynamically by onnxruntime and changes
the vector space slightly, so it gets its own index fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ragtune.errors import EmbeddingModelError

MAX_BATCH_TOKENS = 2048  # padded tokens per onnxruntime call
# Bumped when the exported graph changes, so caches of an older export are not reused.
# 2: eager attention (an additive mask computed once, not a Where/IsNaN over every attention score).
EXPORT_VERSION = 2


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ragtune" / "onnx"


def _model_key(model_dir: Path, int8: bool, calibration: list[str] | None = None) -> str:
    h = hashlib.sha256(str(model_dir.resolve()).encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        path = model_dir / name
        if path.is_file():
            h.update(f"{name}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode())
    h.update(f"export:{EXPORT_VERSION}".encode())
    suffix = "-int8" if int8 else ""
    if int8 and calibration is not None:
        h.update(json.dumps(calibration).encode())
        suffix = "-int8-static"
    return f"{model_dir.name}-{h.hexdigest()[:12]}{suffix}"


def calibration_texts(model_dir: Path) -> list[str]:
    """The texts static int8 quantization is calibrated on: `calibration.jsonl` in the model folder
    (one {"text": ...} per line; `ragtune train retriever` writes a sample of its training texts)."""
    path = model_dir / "calibration.jsonl"
    if not path.is_file():
        raise EmbeddingModelError(
            f"{model_dir} has no calibration.jsonl, which embedding.backend=onnx-int8-static needs: put a few hundred "
            'texts like your documents and questions there, one {"text": ...} per line (a tuned retriever carries its own)'
        )
    texts = [str(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise EmbeddingModelError(f"{path} holds no texts")
    return texts


def _quantize_static(fp32: Path, out: Path, model_dir: Path, texts: list[str]) -> None:
    """int8 weights (per channel) and uint8 activations with ranges measured on `texts`: unlike the
    dynamic variant, no activation range is computed while embedding (docs/benchmarks.md has its
    speed and its cost in quality)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    tokenizer.enable_truncation(int(st_config.get("max_seq_length", 256)))

    class Texts(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(texts)

        def get_next(self) -> dict[str, np.ndarray] | None:
            text = next(self.items, None)
            if text is None:
                return None
            encoding = tokenizer.encode(text)
            ids = np.array([encoding.ids], dtype=np.int64)
            return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}

    quantize_static(
        str(fp32),
        str(out),
        Texts(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        # Min-max ranges, one text at a time (the histogram methods need equal shapes, and measured no
        # better here); only the weight MatMuls: the attention products of two activations stay fp32.
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"MatMulConstBOnly": True},
    )


def export_onnx(model_dir: Path, cache_dir: Path, int8: bool = False, calibration: list[str] | None = None) -> Path:
    """The ONNX file for the transformer in `model_dir`, exported (and quantized) once and cached.
    `int8` with `calibration` texts quantizes statically, without them dynamically."""
    target = cache_dir / _model_key(model_dir, int8, calibration) / "model.onnx"
    if target.is_file():
        return target
    import torch
    from transformers import AutoModel

    class LastHidden(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.base(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".export-"))
    try:
        # Eager attention: the SDPA path exports its mask handling as Where/IsNaN over the full
        # batch x heads x length x length score tensor in every layer, a quarter of the run time on
        # CPU (onnxruntime profile); eager adds one precomputed mask. Same vectors (cosine > 0.9999999).
        model = LastHidden(AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval())
        sample = torch.ones(1, 8, dtype=torch.long)
        axes = {0: "batch", 1: "tokens"}
        names = ["input_ids", "attention_mask", "token_type_ids"]
        fp32 = work / "fp32.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input we feed
            torch.onnx.export(
                model,
                (sample, sample, torch.zeros_like(sample)),
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: axes for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        out = work / "model.onnx"
        if int8 and calibration is not None:
            _quantize_static(fp32, out, model_dir, calibration)
        elif int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # Per-channel uint8 weights on the MatMuls only: cosine to fp32 0.995 on SciFact abstracts
            # (per-tensor int8 everywhere gave 0.936), and uint8 avoids the u8s8 saturation of AVX2 kernels.
            quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QUInt8, per_channel=True, op_types_to_quantize=["MatMul"])
        else:
            fp32.rename(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        out.replace(target)  # atomic: a killed export leaves no half-written model behind
    except Exception as exc:
        raise EmbeddingModelError(f"cannot export {model_dir} to ONNX: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class OnnxEncoder:
    """Encodes texts like SentenceTransformer.encode(normalize_embeddings=True), on onnxruntime."""

    def __init__(self, model_dir: Path, onnx_path: Path, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        st_config = _read_json(model_dir / "sentence_bert_config.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        if pooling.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        elif pooling.get("pooling_mode_mean_tokens", True):
            self.pooling = "mean"
        else:
            raise EmbeddingModelError(
                f"{model_dir}: only mean or CLS pooling runs on the ONNX backend; use embedding.backend=torch"
            )
        if not (model_dir / "tokenizer.json").is_file():
            raise EmbeddingModelError(f"{model_dir} has no tokenizer.json (a fast tokenizer); use embedding.backend=torch")
        self.max_length = int(st_config.get("max_seq_length", 256))
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=self.tokenizer.id_to_token(pad_id) or "[PAD]")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No arena: it keeps the peak of the largest batch ever seen (a GB for 32 long chunks) for the
        # life of the process; without it a serving process returns to its resting size.
        options.enable_cpu_mem_arena = False
        if threads:  # a training job on a shared machine; serving leaves onnxruntime its choice
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dimension = int(self._encode_batch(["dimension"]).shape[1])

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Sorted by length, like sentence-transformers, so a batch pads to similar lengths; a batch
        # also stops at MAX_BATCH_TOKENS padded tokens, since the unfused attention of the exported
        # graph takes memory in proportion to batch x length^2 (32 x 256 tokens peaked at 800 MB).
        order = [int(i) for i in np.argsort([-len(t) for t in texts], kind="stable")]
        lengths = [len(e.ids) for e in self.tokenizer.encode_batch([texts[i] for i in order])] if texts else []
        parts: list[np.ndarray] = []
        start = 0
        while start < len(order):
            longest, end = lengths[start], start + 1  # sorted: the first of a batch is its longest
            while end < len(order) and end - start < batch_size and (end - start + 1) * longest <= MAX_BATCH_TOKENS:
                end += 1
            parts.append(self._encode_batch([texts[i] for i in order[start:end]]))
            start = end
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.concatenate(parts)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
