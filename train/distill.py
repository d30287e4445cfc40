"""`ragtune train retriever distill`: a shallower student of an embedder, for faster ingestion.

The student is the teacher with transformer layers dropped (`layers` names the ones kept, in order),
trained to reproduce the teacher's normalised embeddings (loss 1 - cosine) on unlabeled text: a
BEIR corpus, the fit split's queries (never the dev or test queries), the company's questions and
the plain-text knowledge files. Queries and passages are both distilled, since serving embeds both.
Every `eval_steps` the student is scored on the dev split (mean cosine to the teacher on dev queries
and their candidate passages, and hybrid nDCG@10 re-ranking them as `train retriever` does); the
best state on `select_on` is kept. The run directory holds config.yaml, metrics.jsonl, model/ (with
calibration.jsonl for static int8) and run.json.
"""

from __future__ import annotations

import hashlib
import json
import re
import resource
import time
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from train.config import load_typed


class DistillData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    beir: list[Path] = Field(
        [],
        description="BEIR folders as `train retriever` writes them (qrels/fit.tsv, dev.tsv, test.tsv): every corpus "
        "passage and the fit queries are distilled; the dev queries select; the test queries are never read.",
    )
    questions: list[Path] = Field(
        [Path("train/examples/knowledge_pairs.jsonl")],
        description="JSONL files whose `question` (and `answer`, when present) fields are distilled.",
    )
    knowledge: Path | None = Field(
        Path("knowledge"), description="Folder whose .md, .txt and .html files are distilled as paragraphs."
    )
    heldout: Path | None = Field(
        Path("train/examples/heldout.jsonl"), description="Held-out questions: a text equal to one is never distilled."
    )
    max_passages: int | None = Field(None, ge=1, description="Distill at most this many BEIR passages (tests, quick runs).")


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Run name; the run directory is `<runs_dir>/<name>`.")
    teacher: str = Field("all-MiniLM-L6-v2", description="The embedder to distill: the bundled one or a model folder.")
    layers: list[int] = Field(description="Teacher layers the student keeps, e.g. [0, 2, 4] of MiniLM's six.")
    init: Path | None = Field(
        None, description="Continue from this student folder (a finished run's model/) instead of the teacher's layers."
    )
    max_seq_length: int = Field(256, ge=16, le=512, description="Longest text in word pieces (serving's cut).")
    epochs: float = Field(2.0, gt=0, description="Passes over the distillation texts.")
    batch_size: int = Field(32, ge=2)
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate (linear warmup over 5 %, linear decay).")
    eval_steps: int = Field(50, ge=1, description="Score the dev split every this many steps.")
    select_on: Literal["cosine", "hybrid"] = Field(
        "cosine", description="Dev figure that selects: mean cosine to the teacher, or hybrid nDCG@10."
    )
    max_minutes: float | None = Field(None, gt=0, description="Time budget; the best state so far is kept.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads.")
    seed: int = 13
    runs_dir: Path = Path("data/train/retriever-runs")
    calibration_texts: int = Field(256, ge=0, description="Texts saved with the model for static int8 calibration.")
    data: DistillData = Field(default_factory=DistillData)

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value) or any(i < 0 for i in value):
            raise ValueError("layers must list distinct teacher layer numbers (0 is the first), e.g. [0, 2, 4]")
        return value

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


def load_distill_config(path: Path) -> DistillConfig:
    return load_typed(path, DistillConfig)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _qids(folder: Path, split: str) -> list[str]:
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `ragtune train retriever` once to write the query split")
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return sorted({r[0] for r in rows})


def knowledge_paragraphs(folder: Path, max_chars: int = 1000) -> list[str]:
    """Paragraphs of the plain-text knowledge files, packed up to `max_chars` (other formats need ingest's readers)."""
    texts: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".md", ".txt", ".html"):
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S | re.I)
            raw = re.sub(r"<[^>]+>", "\n", raw)
        current = ""
        for para in (re.sub(r"[ \t]+", " ", p).strip() for p in re.split(r"\n\s*\n", raw)):
            if not para:
                continue
            if current and len(current) + len(para) > max_chars:
                texts.append(current)
                current = ""
            current = f"{current}\n{para}".strip()
        if current:
            texts.append(current)
    return texts


def distill_texts(data: DistillData) -> tuple[list[str], dict[str, int]]:
    """The texts to distill (deduplicated, held-out questions removed) and their count per source."""
    from train.retriever_data import read_beir
    from train.sources import read_heldout, read_jsonl

    heldout = {_norm(q["question"]) for q in read_heldout(data.heldout)} if data.heldout else set()
    sources: dict[str, list[str]] = {}
    for folder in data.beir:
        docs, queries, _ = read_beir(folder, "fit")
        sources[f"{folder.name}:passages"] = list(docs.values())[: data.max_passages]
        sources[f"{folder.name}:fit queries"] = [queries[q] for q in _qids(folder, "fit") if q in queries]
    for path in data.questions:
        rows = [row for _, row in read_jsonl(path)]
        sources[f"{path.name}:questions"] = [str(r["question"]) for r in rows if r.get("question")]
        sources[f"{path.name}:answers"] = [str(r["answer"]) for r in rows if r.get("answer")]
    if data.knowledge is not None:
        sources["knowledge"] = knowledge_paragraphs(data.knowledge)
    seen: set[str] = set()
    texts, counts = [], {}
    for name, items in sources.items():
        kept = [t for t in items if t.strip() and _norm(t) not in heldout and _norm(t) not in seen]
        seen.update(_norm(t) for t in kept)
        texts += kept
        counts[name] = len(kept)
    return texts, counts


def dev_sets(data: DistillData, pool: int = 10) -> list[Any]:
    """Each BEIR folder's dev queries with their BM25 top `pool` passages plus positives (as `train retriever`)."""
    from train.retriever_data import Bm25Corpus, DevSet, read_beir

    sets = []
    for folder in data.beir:
        docs, queries, qrels = read_beir(folder, "dev")
        ids = [q for q in _qids(folder, "dev") if q in queries]
        bm25 = Bm25Corpus(docs)
        ranked = bm25.rank([queries[q] for q in ids], pool)
        pools = {q: list(dict.fromkeys(r + [d for d in qrels[q] if d in docs])) for q, r in zip(ids, ranked, strict=True)}
        units = {d: docs[d] for p in pools.values() for d in p}
        sets.append(
            DevSet(
                folder.name,
                {q: queries[q] for q in ids},
                {q: qrels[q] for q in ids},
                units,
                {d: d for d in units},
                dict(zip(ids, ranked, strict=True)),
                pools,
            )
        )
    return sets


def build_student(teacher_dir: str, layers: list[int], max_seq_length: int) -> Any:
    """The teacher with only `layers` kept (their weights copied), as a SentenceTransformer."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(teacher_dir, device="cpu", local_files_only=Path(teacher_dir).is_dir())
    transformer: Any = model[0].auto_model
    encoder: Any = transformer.encoder
    depth = len(encoder.layer)
    if max(layers) >= depth:
        raise ValueError(f"layers {layers}: the teacher has {depth} layers (0-{depth - 1})")
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in layers])
    transformer.config.num_hidden_layers = len(layers)
    model.max_seq_length = max_seq_length
    return model


def _digest(teacher_dir: str, max_seq_length: int, texts: list[str]) -> str:
    folder = Path(teacher_dir)
    stamp = [str(folder.resolve()), max_seq_length]
    stamp += [f.stat().st_mtime_ns for f in sorted(folder.glob("*.safetensors"))] if folder.is_dir() else []
    return hashlib.sha256(json.dumps([stamp, texts]).encode()).hexdigest()[:16]


def _encode(model: Any, texts: list[str]) -> np.ndarray:
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def train_student(config: DistillConfig, retrieval: Any, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Distill, select on dev, save `<run>/model`; returns run.json's content."""
    import torch
    from sentence_transformers import SentenceTransformer

    from ragtune.embedding import resolve_model
    from ragtune.onnx_embedding import OnnxEncoder, default_cache_dir, export_onnx
    from train.retriever import score_all, start_run

    out = start_run(config)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    texts, counts = distill_texts(config.data)
    dev = dev_sets(config.data)
    dev_queries = [q for d in dev for q in d.queries.values()]
    dev_texts = dev_queries + [u for d in dev for u in d.units.values()]
    teacher_dir = resolve_model(config.teacher)
    log(f"teacher embeddings of {len(texts)} texts and {len(dev_texts)} dev texts ({counts})")
    # The teacher runs on its fp32 ONNX export (serving's vectors, equal to torch's, 2-3x faster here).
    teacher = OnnxEncoder(Path(teacher_dir), export_onnx(Path(teacher_dir), default_cache_dir()), config.threads)
    teacher.max_length = config.max_seq_length
    teacher.tokenizer.enable_truncation(config.max_seq_length)
    cache = config.runs_dir / ".teacher-vectors" / f"{_digest(teacher_dir, config.max_seq_length, texts + dev_texts)}.npy"
    if cache.is_file():  # the same teacher, cut and texts as an earlier run
        vectors = np.load(cache)
    else:
        vectors = teacher.encode(texts + dev_texts, 32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    targets, dev_targets = torch.from_numpy(vectors[: len(texts)]), vectors[len(texts) :]
    del teacher
    if config.init is not None:
        student = SentenceTransformer(str(config.init), device="cpu", local_files_only=True)
        loaded: Any = student[0].auto_model
        depth = len(loaded.encoder.layer)
        if depth != len(config.layers):
            raise ValueError(f"init {config.init} has {depth} layers, the config keeps {len(config.layers)}")
        student.max_seq_length = config.max_seq_length
    else:
        student = build_student(teacher_dir, config.layers, config.max_seq_length)

    def evaluate() -> dict[str, Any]:
        student.eval()
        figures: dict[str, Any] = {}
        if dev_texts:  # queries (never distilled) and passages weigh alike
            cosine = np.sum(_encode(student, dev_texts) * dev_targets, axis=1)
            parts = [c for c in (cosine[: len(dev_queries)], cosine[len(dev_queries) :]) if len(c)]
            figures["dev_cosine"] = round(float(np.mean([c.mean() for c in parts])), 5)
            figures["dev_cosine_min"] = round(float(cosine.min()), 4)
        if dev:
            figures |= score_all(lambda ts, _q: _encode(student, ts), dev, retrieval, "hybrid")
        student.train()
        return figures

    def key(figures: dict[str, Any]) -> float:
        return figures.get("dev_cosine" if config.select_on == "cosine" else "dev_score", 0.0)

    # Batches of similar length (less padding), in shuffled order.
    rng = Random(config.seed)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    steps = max(1, round(len(batches) * config.epochs))
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    best = {"step": 0, **evaluate()}
    log(f"student {config.layers} before training: {best}")
    best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
    plan: list[list[int]] = []
    step, stopped = 0, "schedule finished"
    student.train()
    while step < steps:
        if not plan:
            plan = rng.sample(batches, len(batches))
        batch = plan.pop()
        features = student.preprocess([texts[i] for i in batch])
        embeddings = student(features)["sentence_embedding"]
        cosine = torch.nn.functional.cosine_similarity(embeddings, targets[batch], dim=1)
        loss = (1 - cosine).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        entry: dict[str, Any] = {"step": step, "loss": round(loss.item(), 5)}
        over_time = config.max_minutes is not None and time.perf_counter() - started > config.max_minutes * 60
        if step % config.eval_steps == 0 or step == steps or over_time:
            entry |= evaluate()
            if key(entry) > key(best):
                best = entry
                best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
            log(f"step {step}/{steps}: {entry}")
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"elapsed_s": round(time.perf_counter() - started, 1), **entry}) + "\n")
        if over_time:
            stopped = f"time budget of {config.max_minutes} min"
            break
    if dev_texts:  # without dev data the last state is the result
        student.load_state_dict(best_state)
    else:
        best = {"step": step}
    student.eval()
    student.save(str(out / "model"))
    picked = Random(config.seed).sample(texts, min(config.calibration_texts, len(texts)))
    with open(out / "model" / "calibration.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in picked)
    return {
        "name": config.name,
        "teacher": config.teacher,
        "layers": config.layers,
        "texts": counts,
        "steps": step,
        "selected_step": best["step"],
        "stopped": stopped,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "dev_selected": {k: v for k, v in best.items() if k not in ("step", "loss")},
    }
