"""Fixtures for the training tests: the tiny offline Llama in Hugging Face layout, a small dataset
prepared against the session's real knowledge index, and configs pointing at them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import ROOT
from ..tiny_model import build_hf_model

BITEXT = ROOT.parent / "shared" / "data" / "bitext" / "train.csv"


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> Path:
    return build_hf_model(tmp_path_factory.mktemp("tiny-train"), add_prefix_space=False)


@pytest.fixture(scope="session")
def qa_file(tmp_path_factory) -> Path:
    """A few Bitext rows when the shared data is here, else a few hand-written rows in the same layout."""
    target = tmp_path_factory.mktemp("qa") / "qa.csv"
    if BITEXT.is_file():
        import csv

        with open(BITEXT, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        picked = [
            next(r for r in rows if r["intent"] == intent)
            for intent in ("cancel_order", "track_refund", "contact_customer_service", "payment_issue")
        ]
    else:
        picked = [
            {
                "instruction": "I want to cancel my order",
                "intent": "cancel_order",
                "response": "I'm sorry to hear that. To cancel order {{Order Number Anonymized}}, open {{Order History}} on {{Website Name}}. Anything else?",
            },
            {
                "instruction": "how do I reach support",
                "intent": "contact_customer_service",
                "response": "Happy to help! Call {{Customer Support Phone Number}} or use {{Live Chat}} during {{Customer Support Availability}}.",
            },
        ]
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv_writer(handle, ["instruction", "intent", "response"])
        for row in picked:
            writer.writerow({k: row[k] for k in ("instruction", "intent", "response")})
    return target


def csv_writer(handle, fields):
    import csv

    writer = csv.DictWriter(handle, fieldnames=fields)
    writer.writeheader()
    return writer


@pytest.fixture(scope="session")
def examples_file(tmp_path_factory) -> Path:
    lines = (ROOT / "train" / "examples" / "knowledge_pairs.jsonl").read_text().splitlines()
    target = tmp_path_factory.mktemp("examples") / "pairs.jsonl"
    target.write_text("\n".join(lines[:6]) + "\n")
    return target


def write_config(folder: Path, tiny_hf: Path, qa_file: Path, examples_file: Path, **extra) -> Path:
    config = {
        "name": "tiny",
        "base_model": str(tiny_hf),
        "backend": "transformers",
        "max_length": 2048,
        "max_steps": 2,
        "batch_size": 2,
        "gradient_accumulation": 1,
        "learning_rate": 5e-3,
        "eval_steps": 1,
        "eval_records": 2,
        "warmup_steps": 0,
        "runs_dir": str(folder / "runs"),
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "data": {
            "qa": [{"path": str(qa_file)}],
            "examples": [str(examples_file)],
            "heldout": str(ROOT / "train" / "examples" / "heldout.jsonl"),
            "paraphrases": 1,
            "distractors": 2,
            "eval_share": 0.25,
            "output": str(folder / "dataset"),
        },
        "export": {"quantization": "f32"},
    } | extra
    path = folder / "tiny.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@pytest.fixture
def tiny_config(tmp_path, tiny_hf, qa_file, examples_file) -> Path:
    return write_config(tmp_path, tiny_hf, qa_file, examples_file)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, tiny_hf, qa_file, examples_file, knowledge_index, retriever):
    """A dataset prepared once for the session (read-only for tests)."""
    from train.config import load_config
    from train.dataset import prepare
    from train.model import load_tokenizer

    folder = tmp_path_factory.mktemp("prepared")
    config = load_config(write_config(folder, tiny_hf, qa_file, examples_file))
    settings, _ = knowledge_index
    summary = prepare(config, retriever, load_tokenizer(config.base_model), settings.chat.company_name)
    return config, summary


@pytest.fixture(scope="session")
def exported(prepared, tmp_path_factory):
    """A one-step run on the tiny model, merged and converted to an f32 GGUF (read-only)."""
    from train.export import export
    from train.run import run

    config, _ = prepared
    folder = tmp_path_factory.mktemp("export-run")
    config = config.model_copy(update={"name": "export", "runs_dir": folder, "max_steps": 1})
    run(config, log=lambda *_: None)
    paths = export(config.run_dir, config.base_model, "f32", log=lambda *_: None)
    return config, paths
