"""The typed config of a retriever run (`ragtune train retriever --config ...`), every field documented.

One YAML file says where the pairs come from (BEIR-layout training splits, the company's example
pairs, rated-up conversations), how hard negatives are mined, how the query split is drawn (fixed
seed), and the schedule. A mistake is one line naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from train.config import load_typed


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BeirSource(_Section):
    path: Path = Field(description="A BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")
    split: str = Field("train", description="The qrels file whose queries are split into fit, dev and test.")
    dev_share: float = Field(
        0.1, ge=0, lt=1, description="Share of the judged queries used for early stopping and model selection."
    )
    test_share: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="Share of the judged queries held out for the report: never trained on, never used to select.",
    )
    output: Path = Field(
        description="Folder the split is written to as a BEIR folder (qrels/fit.tsv, dev.tsv, test.tsv; corpus and queries "
        "linked), so `ragtune eval retrieval OUTPUT --split test` scores the held-out queries."
    )
    max_queries: int | None = Field(None, ge=1, description="Train on at most this many fit queries (tests, quick runs).")

    @model_validator(mode="after")
    def _shares(self) -> BeirSource:
        if self.dev_share + self.test_share >= 1:
            raise ValueError("dev_share + test_share must leave queries to train on (their sum must be below 1)")
        return self


class RetrieverData(_Section):
    beir: list[BeirSource] = Field(
        [], description="BEIR-layout training splits; hard negatives are mined with BM25 over the corpus."
    )
    examples: list[Path] = Field(
        [Path("train/examples/knowledge_pairs.jsonl")],
        description="Company pairs about the knowledge base (`question`, `doc`, `quote`, ...): the positive is the live index's "
        "chunk of `doc` holding `quote`; hard negatives come from the live index's hybrid search.",
    )
    examples_repeat: int = Field(
        1,
        ge=1,
        le=10,
        description="Times each company pair is trained on per epoch (each time with other mined negatives): weighs the "
        "company's own domain against a larger public split.",
    )
    examples_dev_share: float = Field(
        0.15, ge=0, lt=1, description="Share of the company pairs used for early stopping and model selection."
    )
    conversations: list[Path] = Field(
        [],
        description="Conversation stores (`conversations.sqlite3` of the chat API) whose answers a customer rated up: the "
        "positive is the live index's chunk that best matches the answer.",
    )
    store_conversations: bool = Field(
        True, description="Also read the rated-up answers of this data dir's own conversation store when it is a SQLite file."
    )
    heldout: Path | None = Field(
        Path("train/examples/heldout.jsonl"),
        description="The company's held-out questions: never trained on or selected with (a training question equal to one is dropped).",
    )


class RetrieverConfig(_Section):
    name: str = Field(description="Run name; the run directory is `<runs_dir>/<name>`.")
    base_model: str = Field(
        "all-MiniLM-L6-v2",
        description="The embedder to tune: the bundled 'all-MiniLM-L6-v2', a sentence-transformers folder, or a registered "
        "version (retriever-vN) to tune further.",
    )
    loss: Literal["mnrl", "cached-mnrl"] = Field(
        "mnrl",
        description="MultipleNegativesRankingLoss (in-batch and mined negatives); cached-mnrl (GradCache) takes large batches "
        "in the memory of `mini_batch_size`.",
    )
    mini_batch_size: int = Field(16, ge=1, description="Texts per forward pass with cached-mnrl.")
    max_seq_length: int = Field(256, ge=16, le=512, description="Longest text in word pieces (longer ones are cut).")
    negatives: int = Field(1, ge=0, le=8, description="Mined hard negatives per query.")
    negative_depth: int = Field(
        30, ge=1, description="Negatives are drawn from this many top-ranked candidates, the query's known positives left out."
    )
    skip_top: int = Field(
        0, ge=0, description="Leave this many top-ranked non-positives out (they are often unjudged positives)."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the fit split.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    max_minutes: float | None = Field(
        None, gt=0, description="Time budget: stop after the step that passes it; the best checkpoint is kept."
    )
    batch_size: int = Field(32, ge=2, description="Queries per batch (each one's positive is every other query's negative).")
    learning_rate: float = Field(3e-5, gt=0, description="Peak learning rate (linear decay after warmup).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of the steps spent warming the learning rate up.")
    eval_steps: int = Field(10, ge=1, description="Score the dev split every this many steps (and keep the best model).")
    patience: int | None = Field(
        3, ge=1, description="Stop after this many dev scores without improvement (early stopping); unset: never."
    )
    dev_pool: int = Field(
        30, ge=1, description="Dev candidates per BEIR query: its BM25 top N plus its positives (the dev score re-ranks them)."
    )
    select_on: Literal["hybrid", "dense"] = Field(
        "hybrid", description="The dev score that selects the model: the hybrid fusion serving uses, or the dense side alone."
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).")
    seed: int = Field(13, description="Seed of the query split, negative sampling and training.")
    runs_dir: Path = Field(Path("data/train/retriever-runs"), description="Folder run directories are created in.")
    calibration_texts: int = Field(
        256,
        ge=0,
        description="Training texts saved with the model for static int8 calibration (`embedding.backend=onnx-int8-static`).",
    )
    data: RetrieverData = Field(default_factory=RetrieverData, description="Where the pairs come from.")

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


def load_retriever_config(path: Path) -> RetrieverConfig:
    return load_typed(path, RetrieverConfig)
