"""`ragtune train retriever`: fine-tune the embedder on (query, positive, hard negatives) pairs.

sentence-transformers' trainer with MultipleNegativesRankingLoss (every other query's positive and
every mined negative in the batch is a negative; batches hold no duplicate text, since a document
relevant to two queries would otherwise be its own negative). Every `eval_steps` the dev splits are
re-ranked the way serving ranks (dense cosine, fused with BM25 by the retrieval settings' RRF), the
best model is kept in memory, and `patience` scores without a gain stop the run. The kept model is
saved as a sentence-transformers folder and exported to ONNX by the same function serving uses
(ragtune/onnx_embedding.py), its vectors checked against torch's. The run directory holds:

    config.yaml      the config, as validated
    data.json        pairs per source, the dataset hash, where each query split was written
    metrics.jsonl    loss and dev scores per logged step
    model/           the selected model (plus calibration.jsonl: texts for static int8 quantization)
    run.json         wall time, peak memory, steps, base vs selected dev scores, ONNX parity
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

import numpy as np
import yaml

from ragtune.errors import UserInputError
from ragtune.settings import EmbeddingSettings, RetrievalSettings
from train.retriever_config import RetrieverConfig
from train.retriever_data import DevSet, RetrieverData

Encode = Callable[[list[str], bool], np.ndarray]  # (texts, is_query) -> normalised vectors


def _rrf(rankings: list[tuple[list[str], float]], k: int) -> list[str]:
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, unit in enumerate(ids, start=1):
            fused[unit] = fused.get(unit, 0.0) + weight / (k + rank)
    return sorted(fused, key=lambda u: fused[u], reverse=True)


def _ndcg(docs: list[str], judged: dict[str, int], k: int = 10) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(docs[:k]))
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(sorted(judged.values(), reverse=True)[:k]))
    return dcg / idcg if idcg else 0.0


def _docs(units: list[str], doc_of: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(doc_of[u] for u in units))


def score_dev(encode: Encode, dev: DevSet, retrieval: RetrievalSettings) -> dict[str, float]:
    """nDCG@10, recall@10 and hit@1/@3 of the dense ranking and of its RRF fusion with BM25."""
    ids = list(dev.units)
    position = {u: i for i, u in enumerate(ids)}
    vectors = encode([dev.units[u] for u in ids], False)
    qids = list(dev.queries)
    qvecs = encode([dev.queries[q] for q in qids], True)
    sums: dict[str, float] = {}
    for qid, qvec in zip(qids, qvecs, strict=True):
        pool = dev.pool[qid] if dev.pool is not None else ids
        sims = vectors[[position[u] for u in pool]] @ qvec
        dense = [pool[i] for i in np.argsort(-sims, kind="stable")]
        inside = set(pool)
        sparse = [u for u in dev.bm25.get(qid, []) if u in inside]
        fused = _rrf([(dense, retrieval.dense_weight), (sparse, retrieval.bm25_weight)], retrieval.rrf_k)
        judged = dev.qrels[qid]
        relevant = {d for d, s in judged.items() if s > 0}
        for name, units in (("dense", dense), ("hybrid", fused)):
            docs = _docs(units, dev.doc_of)
            for key, value in (
                (f"ndcg@10_{name}", _ndcg(docs, judged)),
                (f"recall@10_{name}", len(relevant & set(docs[:10])) / max(len(relevant), 1)),
                (f"hit@1_{name}", float(bool(relevant & set(docs[:1])))),
                (f"hit@3_{name}", float(bool(relevant & set(docs[:3])))),
            ):
                sums[key] = sums.get(key, 0.0) + value
    return {k: round(v / max(len(qids), 1), 4) for k, v in sums.items()}


def make_encoder(model: Any, embedding: EmbeddingSettings, batch_size: int = 32) -> Encode:
    def encode(texts: list[str], is_query: bool) -> np.ndarray:
        prefix = embedding.query_prefix if is_query else embedding.document_prefix
        return np.asarray(
            model.encode([prefix + t for t in texts], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True),
            dtype=np.float32,
        )

    return encode


def score_all(encode: Encode, dev: list[DevSet], retrieval: RetrievalSettings, select_on: str) -> dict[str, Any]:
    """Every dev set's figures and `dev_score`: the mean of their nDCG@10 on the `select_on` ranking."""
    figures = {d.name: score_dev(encode, d, retrieval) for d in dev}
    score = float(np.mean([f[f"ndcg@10_{select_on}"] for f in figures.values()])) if figures else 0.0
    return {"dev_score": round(score, 4), "sets": figures}


def _columns(data: RetrieverData, config: RetrieverConfig, embedding: EmbeddingSettings) -> dict[str, list[str]]:
    """anchor / positive / negative_1..n; a pair short of mined negatives gets random other passages."""
    rng = Random(config.seed + 3)
    passages = [e.positive for e in data.examples]
    n = min(config.negatives, max((len(e.negatives) for e in data.examples), default=0))
    columns: dict[str, list[str]] = {name: [] for name in ["anchor", "positive", *(f"negative_{i + 1}" for i in range(n))]}
    for e in data.examples:
        columns["anchor"].append(embedding.query_prefix + e.query)
        columns["positive"].append(embedding.document_prefix + e.positive)
        negatives = list(e.negatives[:n])
        while len(negatives) < n:
            pick = rng.choice(passages)
            if pick != e.positive and pick not in negatives:
                negatives.append(pick)
        for i, text in enumerate(negatives):
            columns[f"negative_{i + 1}"].append(embedding.document_prefix + text)
    return columns


def _callbacks(out: Path, evaluate: Callable[[], dict], config: RetrieverConfig, base: dict, has_dev: bool) -> Any:
    from transformers import TrainerCallback

    class Selection(TrainerCallback):
        """Scores the dev splits every eval_steps, keeps the best weights in memory, stops on patience
        and on the time budget, and logs every step to metrics.jsonl. Without dev sets the last
        weights are the result."""

        def __init__(self) -> None:
            self.start = time.perf_counter()
            self.best = {"step": 0, **base}
            self.state: dict | None = None  # None: the base model is still the best
            self.misses = 0
            self.stopped: str | None = None

        def _log(self, entry: dict) -> None:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"elapsed_s": round(time.perf_counter() - self.start, 1), **entry}) + "\n")

        def on_log(self, args, state, control, logs=None, **kwargs):
            self._log({"step": state.global_step, **(logs or {})})

        def on_step_end(self, args, state, control, model=None, **kwargs):
            last = state.global_step >= state.max_steps
            if has_dev and (state.global_step % config.eval_steps == 0 or last):
                figures = evaluate()
                self._log({"step": state.global_step, **figures})
                if figures["dev_score"] > self.best["dev_score"]:
                    self.best = {"step": state.global_step, **figures}
                    self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    self.misses = 0
                else:
                    self.misses += 1
                    if config.patience and self.misses >= config.patience:
                        control.should_training_stop, self.stopped = True, f"no dev gain in {self.misses} scores"
            if config.max_minutes and time.perf_counter() - self.start > config.max_minutes * 60:
                control.should_training_stop, self.stopped = True, f"time budget of {config.max_minutes} min"
            return control

    return Selection()


def start_run(config: Any) -> Path:
    """A fresh run folder for `config` (a retriever or distillation config): torch threads set, a
    finished run refused, the config written beside the metrics to come."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    out = config.run_dir
    if (out / "run.json").exists():
        raise UserInputError(f"run {out} already finished; pick another name or delete it")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False))
    return out


def train(
    config: RetrieverConfig,
    data: RetrieverData,
    retrieval: RetrievalSettings,
    embedding: EmbeddingSettings,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, select on dev, save `<run>/model`; returns run.json's content."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )
    from transformers.utils import logging as hf_logging

    from ragtune.embedding import resolve_model

    hf_logging.disable_progress_bar()
    out = start_run(config)
    (out / "data.json").write_text(
        json.dumps({"pairs": data.counts, "dataset_hash": data.dataset_hash(), "splits": data.splits}, indent=1)
    )
    base = resolve_model(config.base_model)
    model = SentenceTransformer(base, device="cpu", local_files_only=Path(base).is_dir())
    model.max_seq_length = config.max_seq_length
    encode = make_encoder(model, embedding)

    def evaluate() -> dict:
        was_training = model.training
        try:
            return score_all(encode, data.dev, retrieval, config.select_on)
        finally:
            model.train(was_training)

    started = time.perf_counter()
    base_figures = evaluate()
    log(f"base dev score {base_figures['dev_score']} ({config.select_on} nDCG@10 over {len(data.dev)} dev sets)")
    dataset = Dataset.from_dict(_columns(data, config, embedding))
    loss = (
        CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
        if config.loss == "cached-mnrl"
        else MultipleNegativesRankingLoss(model)
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        lr_scheduler_type="linear",
        logging_steps=1,
        eval_strategy="no",  # the Selection callback scores the dev splits itself
        save_strategy="no",
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        disable_tqdm=True,
    )
    selection = _callbacks(out, evaluate, config, base_figures, bool(data.dev))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[selection])
    log(f"training on {len(dataset)} pairs ({config.negatives} mined negatives each), batch {config.batch_size} -> {out}")
    result = trainer.train()
    wall = time.perf_counter() - started
    if selection.state is not None:
        model.load_state_dict(selection.state)
    model.eval()
    model.save(str(out / "model"))
    write_calibration(out / "model", data, config.calibration_texts, config.seed)
    info = {
        "name": config.name,
        "base_model": config.base_model,
        "pairs": len(dataset),
        "steps": trainer.state.global_step,
        "selected_step": selection.best["step"] if data.dev else trainer.state.global_step,
        "stopped": selection.stopped or "schedule finished",
        "wall_s": round(wall, 1),
        "train_loss": round(result.training_loss, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "dev_base": base_figures,
        "dev_selected": {k: v for k, v in selection.best.items() if k != "step"},
        "dataset_hash": data.dataset_hash(),
    }
    return info


def write_calibration(model_dir: Path, data: RetrieverData, count: int, seed: int) -> None:
    """A sample of the training passages and queries, for calibrating static int8 quantization."""
    texts = [e.positive for e in data.examples] + [e.query for e in data.examples]
    picked = Random(seed).sample(texts, min(count, len(texts)))
    with open(model_dir / "calibration.jsonl", "w", encoding="utf-8") as handle:
        for text in picked:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


def onnx_parity(model_dir: Path, cache_dir: Path, texts: list[str]) -> dict[str, Any]:
    """Export `model_dir` the way serving does and compare its vectors with sentence-transformers'."""
    from sentence_transformers import SentenceTransformer

    from ragtune.onnx_embedding import OnnxEncoder, export_onnx

    onnx = export_onnx(model_dir, cache_dir)
    ours = OnnxEncoder(model_dir, onnx).encode(texts, 16)
    theirs = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True).encode(
        texts, normalize_embeddings=True, convert_to_numpy=True
    )
    cosine = np.sum(ours * np.asarray(theirs), axis=1)
    return {"onnx": str(onnx), "texts": len(texts), "min_cosine": round(float(cosine.min()), 7)}
