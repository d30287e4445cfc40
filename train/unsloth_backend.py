"""The unsloth path (CUDA only): FastLanguageModel with 4-bit QLoRA.

unsloth patches transformers, peft and trl when it is imported, so it is imported here and only
here, and only when a run asked for it on a machine with a CUDA GPU. Everything else in ragtune
keeps working with plain transformers + peft.
"""

from __future__ import annotations

from typing import Any

from ragtune.errors import ConfigError
from train.model import resolve_base


def available() -> bool:
    import importlib.util

    from train.model import cuda_available

    return cuda_available() and importlib.util.find_spec("unsloth") is not None


def load(config: Any) -> tuple[Any, Any]:
    """(model with LoRA adapters, tokenizer) through unsloth's FastLanguageModel."""
    try:
        from unsloth import FastLanguageModel
    except ImportError as exc:
        raise ConfigError(f"backend unsloth needs the gpu extra (pip install 'ragtune[gpu]'): {exc}") from exc
    source, gguf = resolve_base(config.base_model)
    if gguf:
        raise ConfigError("the unsloth backend loads Hugging Face models, not GGUF files; set base_model to a hub id or folder")
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=source,
        max_seq_length=config.max_length,
        load_in_4bit=config.load_in_4bit,
        dtype=None,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        use_gradient_checkpointing="unsloth",
        random_state=config.seed,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
