"""The adapters in the repository: the shipped default, and the measured Gemma-3-270M one beside it."""

from pathlib import Path

from ragtune.adapters import BUNDLED_DIR, bundled_adapter, read_adapter, resolve_adapter
from ragtune.chat_templates import GEMMA

GEMMA_DIR = BUNDLED_DIR.parent / "gemma3-270m-support"


def test_the_gemma_adapter_carries_the_template_it_was_trained_with_and_is_not_the_default():
    gemma = read_adapter(GEMMA_DIR)
    assert gemma.name == "gemma3-270m-support" and gemma.base == "gemma-3-270m-q4_k_m.gguf" and gemma.prompt == "short"
    assert gemma.chat_template == GEMMA  # its base GGUF has none; serving renders this one
    assert gemma.card["config"]["chat_template"] == "gemma" and "Gemma Terms of Use" in gemma.card["license"]
    assert 1e5 < gemma.path.stat().st_size < 1e7 and gemma.pass_rate is not None
    # The default stays SmolLM2's adapter, served with its GGUF's own template; "bundled" never
    # applies it over another base, Gemma's included.
    default = bundled_adapter()
    assert default is not None and default.name == "smollm2-135m-support" and default.chat_template is None
    assert resolve_adapter("bundled", Path("/models/gemma-3-270m-q4_k_m.gguf")) is None
    assert resolve_adapter(str(GEMMA_DIR), Path("/models/gemma-3-270m-q4_k_m.gguf")) == gemma
