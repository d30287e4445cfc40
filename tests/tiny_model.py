"""Build a tiny but real Llama GGUF offline, for tests of the llama.cpp path.

A SentencePiece tokenizer trained on a few KB of the bundled knowledge base (with byte fallback,
so every character the grammar allows can be produced), a 2-layer Llama with random weights, saved
by transformers and converted by llama.cpp's own `convert_hf_to_gguf.py` (from the
llama-cpp-python sdist; `scripts/setup.sh --dev` puts it in `.cache/llama.cpp`). Its answers are
noise, but they are real llama.cpp generations under our grammar, chat template and stop tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONVERTER = ROOT / ".cache" / "llama.cpp" / "convert_hf_to_gguf.py"
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|im_start|>", "<|im_end|>"]


def _corpus(folder: Path) -> Path:
    texts = []
    for path in sorted((ROOT / "knowledge").rglob("*.md")):
        texts.append(path.read_text(encoding="utf-8"))
    texts.append('{"answer": "Yes.", "sources": ["S1", "S2"]}')
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts), encoding="utf-8")
    return corpus


def build_hf_model(folder: Path, vocab_size: int = 512, add_prefix_space: bool | None = None) -> Path:
    """A tiny Llama in Hugging Face layout: tokenizer.model, tokenizer_config.json, weights.

    `add_prefix_space=False` declares what the HF tokenizer does (no "▁" after a special token),
    so the converter tells llama.cpp the same and both tokenize a chat prompt to the same ids;
    left undeclared, llama.cpp's SentencePiece default adds the space and the ids differ.
    """
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = folder / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        input=str(_corpus(folder)),
        model_prefix=str(hf / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        user_defined_symbols=SPECIAL,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(hf / "tokenizer.model"))
    ids = {tok: processor.piece_to_id(tok) for tok in ["<unk>", "<s>", "</s>", *SPECIAL]}
    # transformers 5 and the converter treat chat tokens as plain text unless they are declared here.
    (hf / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "bos_token": "<s>",
                "eos_token": "<|im_end|>",
                "unk_token": "<unk>",
                "add_bos_token": False,
                "add_eos_token": False,
                **({} if add_prefix_space is None else {"add_prefix_space": add_prefix_space}),
                "chat_template": CHATML,
                "added_tokens_decoder": {
                    str(i): {
                        "content": tok,
                        "special": True,
                        "lstrip": False,
                        "rstrip": False,
                        "normalized": False,
                        "single_word": False,
                    }
                    for tok, i in ids.items()
                },
            },
            indent=1,
        )
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=processor.get_piece_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["<|im_end|>"],
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(hf, safe_serialization=True)
    return hf


def convert_to_gguf(hf: Path, out: Path) -> Path:
    if not CONVERTER.is_file():
        raise RuntimeError(f"{CONVERTER} is missing: run `bash scripts/setup.sh --dev` first")
    env = dict(os.environ, NO_LOCAL_GGUF="")
    env.pop("NO_LOCAL_GGUF")
    result = subprocess.run(
        [sys.executable, str(CONVERTER), str(hf), "--outfile", str(out), "--outtype", "f32"],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return out


QUANT_TYPES = {"q4_0": 2, "q4_1": 3, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_MOSTLY_* values


def quantize_gguf(source: Path, out: Path, kind: str) -> Path:
    """Quantize with llama.cpp's own quantizer (through llama-cpp-python), in a child process."""
    code = (
        "import ctypes, sys, llama_cpp\n"
        "p = llama_cpp.llama_model_quantize_default_params()\n"
        f"p.ftype = {QUANT_TYPES[kind]}\n"
        "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(source), str(out)], capture_output=True, text=True)
    if result.returncode != 0 or not out.is_file():
        raise RuntimeError(f"llama_model_quantize {kind} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return out


def build_tiny_gguf(folder: Path) -> Path:
    return convert_to_gguf(build_hf_model(folder), folder / "tiny-llama.gguf")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-model")
    print(build_tiny_gguf(target))
