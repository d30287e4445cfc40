"""A tiny BEIR-layout data set and retriever configs for the retriever training tests."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import ROOT

TOPICS = [
    ("d1", "Vitamin D and bone density", "Vitamin D supplements increase bone mineral density in older adults."),
    ("d2", "Statins and cholesterol", "Statins lower LDL cholesterol by inhibiting HMG-CoA reductase in the liver."),
    ("d3", "Sleep and memory", "Deep sleep consolidates declarative memory in healthy young volunteers."),
    ("d4", "Aspirin and heart attacks", "Low-dose aspirin reduces the risk of a first heart attack in men."),
    ("d5", "Exercise and depression", "Aerobic exercise reduces symptoms of mild depression over twelve weeks."),
    ("d6", "Coffee and liver disease", "Coffee drinkers show lower rates of liver cirrhosis in cohort studies."),
    ("d7", "Smoking and lung cancer", "Tobacco smoking is the leading cause of lung cancer worldwide."),
    ("d8", "Antibiotics and gut flora", "Broad-spectrum antibiotics reduce the diversity of gut bacteria for months."),
    ("d9", "Salt and blood pressure", "Reducing dietary salt lowers blood pressure in hypertensive patients."),
    ("d10", "Vaccines and measles", "Two doses of measles vaccine prevent almost all measles infections."),
    ("d11", "Bone fractures in the elderly", "Falls cause most bone fractures in people over seventy."),
    ("d12", "Caffeine and sleep", "Caffeine taken in the evening delays sleep onset and shortens deep sleep."),
]
QUERIES = [
    ("q1", "vitamin D improves bone density", ["d1"]),
    ("q2", "statins reduce LDL cholesterol", ["d2"]),
    ("q3", "sleep helps memory consolidation", ["d3"]),
    ("q4", "aspirin prevents heart attacks", ["d4"]),
    ("q5", "exercise treats depression", ["d5"]),
    ("q6", "coffee protects the liver", ["d6"]),
    ("q7", "smoking causes lung cancer", ["d7"]),
    ("q8", "antibiotics harm gut bacteria", ["d8"]),
    ("q9", "less salt lowers blood pressure", ["d9"]),
    ("q10", "measles vaccine prevents infection", ["d10"]),
]


def write_beir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in TOPICS))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t, _ in QUERIES))
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, _, docs in QUERIES for d in docs]
    (folder / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    return folder


def write_retriever_config(folder: Path, beir: Path, examples: Path | None, **extra) -> Path:
    config = {
        "name": "tiny-retriever",
        "max_seq_length": 64,
        "negatives": 1,
        "negative_depth": 5,
        "max_steps": 3,
        "batch_size": 4,
        "learning_rate": 2e-4,
        "eval_steps": 1,
        "patience": None,
        "dev_pool": 5,
        "seed": 3,
        "calibration_texts": 16,
        "runs_dir": str(folder / "runs"),
        "data": {
            "beir": [{"path": str(beir), "dev_share": 0.2, "test_share": 0.2, "output": str(folder / "split")}],
            "examples": [str(examples)] if examples else [],
            "examples_dev_share": 0.34,
            "heldout": str(ROOT / "train" / "examples" / "heldout.jsonl"),
        },
    } | extra
    path = folder / "retriever.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path
