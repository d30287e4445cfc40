"""`ragtune train run`: LoRA supervised fine-tuning with TRL's SFTTrainer, loss on the answer only.

Records are fed to TRL as conversational prompt/completion pairs (the prompt = system + history +
question, the completion = the assistant's answer JSON), so `completion_only_loss` masks every
prompt token: the model learns to answer, not to reproduce prompts. The run directory holds:

    config.yaml        the config, as validated
    dataset.json       the dataset summary (hash, counts) the run trained on
    metrics.jsonl      one line per logged step: loss, eval_loss, learning rate, tokens/s
    checkpoints/       trainer checkpoints every eval_steps (`--resume` continues from the last)
    adapter/           the final LoRA adapter and tokenizer
    run.json           wall time, tokens/s, peak memory, final losses
    loss.png           train and eval loss
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ragtune.errors import ConfigError, UserInputError
from train.config import TrainConfig


def load_split(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserInputError(f"{path} is missing: run `ragtune train prepare --config ...` first")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records]


def _dataset(records: list[dict]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(records)


def build_trainer(
    config: TrainConfig,
    model: Any,
    tokenizer: Any,
    train: list[dict],
    evaluation: list[dict],
    out: Path,
    callbacks: list | None = None,
) -> Any:
    """The SFTTrainer for a run (also used by the tests to inspect the label mask)."""
    from trl import SFTConfig, SFTTrainer

    from train.model import cuda_available

    has_eval = bool(evaluation)
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        max_length=config.max_length,
        completion_only_loss=True,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_steps,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        logging_steps=1,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.eval_steps,
        save_total_limit=2,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        use_cpu=not cuda_available(),
        include_num_input_tokens_seen="all",
        dataset_num_proc=None,
        save_only_model=False,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=_dataset(train),
        eval_dataset=_dataset(evaluation[: config.eval_records] if config.eval_records else evaluation) if has_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks or [],
    )


def _metrics_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        """Appends every log entry (loss, eval_loss, lr) with tokens/s and elapsed time to metrics.jsonl."""

        def __init__(self) -> None:
            self.start = time.perf_counter()
            self.last_tokens = 0
            self.last_time = self.start

        def on_log(self, args, state, control, logs=None, **kwargs):
            now = time.perf_counter()
            tokens = int(state.num_input_tokens_seen or 0)
            entry = {"step": state.global_step, "elapsed_s": round(now - self.start, 2), "tokens_seen": tokens, **(logs or {})}
            if tokens > self.last_tokens and now > self.last_time:
                entry["tokens_per_s"] = round((tokens - self.last_tokens) / (now - self.last_time), 1)
                self.last_tokens, self.last_time = tokens, now
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    return MetricsLog()


def _budget_callback(minutes: float) -> Any:
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Ends training after the step that exceeds the time budget (CPU runs on shared machines)."""

        def __init__(self) -> None:
            self.start = time.perf_counter()
            self.stopped_at: int | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.start > minutes * 60:
                control.should_training_stop = True
                control.should_save = True
                self.stopped_at = state.global_step
            return control

    return TimeBudget()


def load_for_training(config: TrainConfig) -> tuple[Any, Any, str]:
    """(model with LoRA, tokenizer, backend name)."""
    from train import unsloth_backend
    from train.model import add_lora, load_model, load_tokenizer

    if config.backend == "unsloth" or (config.backend == "auto" and unsloth_backend.available()):
        if config.backend == "unsloth" and not unsloth_backend.available():
            raise ConfigError("backend unsloth needs a CUDA GPU and the unsloth package; use backend: transformers here")
        model, tokenizer = unsloth_backend.load(config)
        return model, tokenizer, "unsloth"
    tokenizer = load_tokenizer(config.base_model, config.chat_template)
    model = add_lora(load_model(config.base_model, config.load_in_4bit), config.lora)
    return model, tokenizer, "transformers+peft"


def run(config: TrainConfig, dataset_dir: Path | None = None, resume: bool = False, log=print) -> dict:
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    dataset_dir = dataset_dir or config.data.output
    out = config.run_dir
    checkpoints = (
        sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if out.exists() else []
    )
    if out.exists() and (out / "run.json").exists() and not resume:
        raise UserInputError(f"run {out} already finished; pick another name or delete it")
    if checkpoints and not resume:
        raise UserInputError(f"run {out} has checkpoints from an interrupted run: continue with --resume, or delete the folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False))
    summary_path = dataset_dir / "summary.json"
    if summary_path.is_file():
        shutil.copy(summary_path, out / "dataset.json")
    train, evaluation = load_split(dataset_dir / "train.jsonl"), load_split(dataset_dir / "eval.jsonl")
    if not train:
        raise UserInputError(f"{dataset_dir / 'train.jsonl'} holds no records")
    model, tokenizer, backend = load_for_training(config)
    log(f"training {config.base_model} with {backend} on {len(train)} records ({len(evaluation)} eval) -> {out}")
    callbacks = [_metrics_callback(out / "metrics.jsonl")]
    budget = _budget_callback(config.max_minutes) if config.max_minutes else None
    if budget is not None:
        callbacks.append(budget)
    trainer = build_trainer(config, model, tokenizer, train, evaluation, out, callbacks)
    start_tokens = 0
    if resume and checkpoints:  # read now: save_total_limit may delete that checkpoint during training
        state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
        start_tokens = int(state.get("num_input_tokens_seen") or 0)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints else None)
    wall = time.perf_counter() - started
    trainer.save_model(str(out / "adapter"))
    tokenizer.save_pretrained(str(out / "adapter"))
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    tokens -= start_tokens  # tokens/s of this invocation: a checkpoint's tokens were trained before
    final_eval = trainer.evaluate() if evaluation else {}
    info = {
        "name": config.name,
        "base_model": config.base_model,
        "backend": backend,
        "steps": trainer.state.global_step,
        "total_tokens_seen": int(trainer.state.num_input_tokens_seen or 0),
        "wall_s": round(wall, 1),
        "tokens_seen": tokens,
        "train_tokens_per_s": round(tokens / wall, 1) if wall else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "train_loss": round(result.training_loss, 4),
        "eval_loss": round(final_eval.get("eval_loss", float("nan")), 4) if final_eval else None,
        "resumed_from": checkpoints[-1].name if resume and checkpoints else None,
        "max_steps": config.max_steps,
        "stopped_by_time_budget": bool(budget and budget.stopped_at),
        "dataset_hash": json.loads(summary_path.read_text()).get("dataset_hash") if summary_path.is_file() else None,
    }
    (out / "run.json").write_text(json.dumps(info, indent=1))
    loss_chart(out / "metrics.jsonl", out / "loss.png")
    return info


def loss_chart(metrics: Path, target: Path) -> Path | None:
    """Train and eval loss per step as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evaluation = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train, strict=False), label="train loss", linewidth=1)
    if evaluation:
        ax.plot(*zip(*evaluation, strict=False), label="eval loss", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
