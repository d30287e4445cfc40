"""The LoRA run: loss on the answer only, adapters move and the base does not, runs resume."""

import json
import shutil

import pytest
import torch

from train.config import load_config
from train.model import add_lora, load_model, load_tokenizer
from train.run import build_trainer, load_split, run

pytestmark = pytest.mark.slow  # trains LoRA steps with torch


def test_label_mask_covers_the_assistant_turn_only(prepared, tmp_path):
    config, _ = prepared
    tokenizer = load_tokenizer(config.base_model)
    records = load_split(config.data.output / "train.jsonl")
    trainer = build_trainer(config, add_lora(load_model(config.base_model), config.lora), tokenizer, records[:2], [], tmp_path)
    for example, record in zip(trainer.train_dataset, records, strict=False):
        prompt = tokenizer.apply_chat_template(record["prompt"], tokenize=True, add_generation_prompt=True, return_dict=True)[
            "input_ids"
        ]
        full = tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=True, return_dict=True)[
            "input_ids"
        ]
        assert example["input_ids"] == full
        trained = [i for i, label in enumerate(example["labels"]) if label != -100]
        assert trained == list(range(len(prompt), len(full)))  # every answer token, no prompt token
        answer = tokenizer.decode([full[i] for i in trained], skip_special_tokens=True)
        assert json.loads(answer) == json.loads(record["completion"][0]["content"])


def test_one_lora_step_moves_the_adapter_and_not_the_base(prepared, tmp_path):
    config, _ = prepared
    config = config.model_copy(update={"max_steps": 1})
    model = add_lora(load_model(config.base_model), config.lora)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(
        config, model, load_tokenizer(config.base_model), load_split(config.data.output / "train.jsonl"), [], tmp_path
    )
    trainer.train()
    after = dict(model.named_parameters())
    lora = [n for n in before if "lora_" in n]
    base = [n for n in before if "lora_" not in n]
    assert lora and base
    assert all(not after[n].requires_grad for n in base)
    assert all(torch.equal(before[n], after[n]) for n in base)
    moved = [n for n in lora if not torch.equal(before[n], after[n])]
    assert len(moved) >= len(lora) // 2  # lora_B starts at zero and is pushed off it by the first step


def test_run_directory_and_resume(prepared, tmp_path):
    config, summary = prepared
    config = config.model_copy(update={"name": "resumable", "runs_dir": tmp_path / "runs", "max_steps": 2, "eval_steps": 1})
    info = run(config, log=lambda *_: None)
    out = config.run_dir
    assert info["steps"] == 2 and info["dataset_hash"] == summary["dataset_hash"]
    for name in (
        "config.yaml",
        "dataset.json",
        "metrics.jsonl",
        "run.json",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "loss.png",
    ):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in rows) and any("eval_loss" in r for r in rows)
    assert load_config(out / "config.yaml").max_steps == 2
    # Interrupted after step 1: only checkpoint-1 survives, no final adapter.
    shutil.rmtree(out / "checkpoints" / "checkpoint-2")
    shutil.rmtree(out / "adapter")
    (out / "run.json").unlink()
    resumed = run(config, resume=True, log=lambda *_: None)
    assert resumed["resumed_from"] == "checkpoint-1" and resumed["steps"] == 2
    assert 0 < resumed["tokens_seen"] < resumed["total_tokens_seen"]  # this invocation trained one of the two steps
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
