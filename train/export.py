"""`ragtune train export`: merge the adapter, convert with llama.cpp's own converter, quantize.

The converter is the `convert_hf_to_gguf.py` (and `convert_lora_to_gguf.py`) that
`scripts/setup.sh --train` (or --dev) takes from the llama-cpp-python sdist, so it matches the llama.cpp that
serves the result; it is looked up in `RAGTUNE_LLAMA_CPP_DIR`, else `.cache/llama.cpp` of the
checkout. Quantization runs llama.cpp's own quantizer through llama-cpp-python.

Layout written into the run directory:
    export/merged/           the merged Hugging Face model and tokenizer
    export/model-f16.gguf    the converted model (f32 when asked for)
    export/model-<q>.gguf    the quantized model (the one served)
    export/adapter/          with export.lora_only: the adapter alone, the form ragtune ships and
        adapter.gguf         serves over the base (llm.adapter, llama.cpp's --lora, Ollama's ADAPTER),
        card.json            with its card: base, prompt style, config, data hash, training, eval
    export/Modelfile         for Ollama (see train/modelfile.py), plus parity.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ragtune.errors import ConfigError, RagtuneError

QUANT_TYPES = {
    "q4_0": 2,
    "q4_1": 3,
    "q8_0": 7,
    "q5_0": 8,
    "q5_1": 9,
    "q2_k": 10,
    "q3_k_m": 12,
    "q4_k_s": 14,
    "q4_k_m": 15,
    "q5_k_s": 16,
    "q5_k_m": 17,
    "q6_k": 18,
}


class ExportError(RagtuneError):
    """The model could not be exported as asked (converter missing or failed, parity broken)."""


def llama_cpp_dir() -> Path:
    explicit = os.environ.get("RAGTUNE_LLAMA_CPP_DIR")
    folder = Path(explicit) if explicit else Path(__file__).resolve().parents[1] / ".cache" / "llama.cpp"
    if not (folder / "convert_hf_to_gguf.py").is_file():
        raise ExportError(
            f"llama.cpp's converter is not in {folder}: run `bash scripts/setup.sh --train` or set RAGTUNE_LLAMA_CPP_DIR"
        )
    return folder


def _run(args: list[str], what: str) -> None:
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py, not the PyPI package
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ExportError(f"{what} failed: {tail[0]}")


def fix_tokenizer_config(folder: Path, tokenizer: Any) -> None:
    """Declare the special tokens in tokenizer_config.json (transformers 5 leaves them out).

    Without `added_tokens_decoder` the converter writes chat tokens such as <|im_end|> as plain
    text, and llama.cpp then splits them into pieces: the model would never see its own stop token.
    """
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    config["added_tokens_decoder"] = {
        str(i): {
            "content": t.content,
            "special": t.special,
            "lstrip": t.lstrip,
            "rstrip": t.rstrip,
            "normalized": t.normalized,
            "single_word": t.single_word,
        }
        for i, t in tokenizer.added_tokens_decoder.items()
    }
    if tokenizer.chat_template and "chat_template" not in config and not (folder / "chat_template.jinja").is_file():
        config["chat_template"] = tokenizer.chat_template
    path.write_text(json.dumps(config, indent=1))


def keep_sentencepiece(base_model: str, tokenizer: Any, target: Path) -> None:
    """Put the base's own tokenizer.model next to the export when it has one.

    transformers 5 saves only tokenizer.json; converted from that, a SentencePiece-BPE vocabulary
    loses its piece scores and llama.cpp merges differently from the HF tokenizer ("u"+"pp" vs
    "up"+"p"), which the parity check reports. The original model file keeps them identical.
    """
    from train.model import resolve_base

    source, gguf = resolve_base(base_model)
    candidates = [tokenizer.init_kwargs.get("vocab_file")]
    if not gguf and Path(source).is_dir():
        candidates.insert(0, str(Path(source) / "tokenizer.model"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            shutil.copyfile(candidate, target / "tokenizer.model")
            return


def merge(base_model: str, adapter: Path, target: Path, chat_template: str | None = None) -> Path:
    """Merge the LoRA adapter into the base weights and save model + tokenizer in HF layout."""
    from peft import PeftModel

    from train.model import load_model, load_tokenizer

    tokenizer = load_tokenizer(base_model, chat_template)
    model = PeftModel.from_pretrained(load_model(base_model), str(adapter)).merge_and_unload()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    fix_tokenizer_config(target, tokenizer)
    keep_sentencepiece(base_model, tokenizer, target)
    return target


def save_base(base_model: str, target: Path, chat_template: str | None = None) -> Path:
    """The base in HF layout (the LoRA converter needs it next to the adapter)."""
    from train.model import load_model, load_tokenizer

    tokenizer = load_tokenizer(base_model, chat_template)
    target.mkdir(parents=True, exist_ok=True)
    load_model(base_model).save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    fix_tokenizer_config(target, tokenizer)
    keep_sentencepiece(base_model, tokenizer, target)
    return target


def convert(hf_folder: Path, outfile: Path, outtype: str = "f16") -> Path:
    _run(
        [str(llama_cpp_dir() / "convert_hf_to_gguf.py"), str(hf_folder), "--outfile", str(outfile), "--outtype", outtype],
        "convert_hf_to_gguf.py",
    )
    return outfile


def convert_lora(adapter: Path, base_folder: Path, outfile: Path, outtype: str = "f16") -> Path:
    _run(
        [
            str(llama_cpp_dir() / "convert_lora_to_gguf.py"),
            str(adapter),
            "--base",
            str(base_folder),
            "--outfile",
            str(outfile),
            "--outtype",
            outtype,
        ],
        "convert_lora_to_gguf.py",
    )
    return outfile


def quantize(source: Path, target: Path, kind: str) -> Path:
    import llama_cpp

    if kind not in QUANT_TYPES:
        raise ConfigError(f"export.quantization {kind!r} is not one of {', '.join(sorted(QUANT_TYPES))}, f16, f32")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[kind]
    params.nthread = 0
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    if code != 0:
        raise ExportError(f"llama.cpp quantization to {kind} failed (code {code})")
    return target


def write_card(run_dir: Path, config: Any, lora: Path) -> dict:
    """The adapter's card.json: what serving reads (base, prompt style, measured pass rate) and what a
    reader needs to trust and reproduce it (config, data hash, training figures). A base with no
    template of its own gets the one it was trained with (`chat_template`), which serving renders."""
    from ragtune.chat_templates import chat_template
    from train.model import resolve_base

    _, gguf = resolve_base(config.base_model)
    run_info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    summary = config.data.output / "summary.json"
    card = {
        "name": config.export.adapter_name,
        "base": gguf or config.base_model,
        "base_model": config.base_model,
        "prompt": config.prompt,
        **({"chat_template": chat_template(config.chat_template)} if config.chat_template else {}),
        "size_bytes": lora.stat().st_size,
        "dataset_hash": run_info.get("dataset_hash"),
        "dataset": json.loads(summary.read_text()) if summary.is_file() else {},
        "training": {k: v for k, v in run_info.items() if k not in ("config",)},
        "config": json.loads(config.model_dump_json()),
        "eval": {},
    }
    path = lora.parent / "card.json"
    path.write_text(json.dumps(card, indent=1, default=str))
    return card


def export(
    run_dir: Path,
    base_model: str,
    quantization: str,
    lora_only: bool = False,
    log=print,
    lora_outtype: str = "f16",
    chat_template: str | None = None,
) -> dict:
    """Merge + convert + quantize (or the LoRA alone); returns the paths written."""
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(f"{run_dir} holds no finished adapter (adapter/adapter_config.json): run `ragtune train run` first")
    out = run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    if lora_only:
        base = save_base(base_model, out / "base", chat_template)
        (out / "adapter").mkdir(exist_ok=True)
        lora = convert_lora(adapter, base, out / "adapter" / "adapter.gguf", lora_outtype)
        shutil.rmtree(base, ignore_errors=True)  # the base's weights were only needed by the converter
        log(f"wrote {lora} (applied over the base GGUF: llm.adapter, llama.cpp --lora, Ollama ADAPTER)")
        return {"lora": str(lora)}
    log("merging the adapter into the base weights")
    merged = merge(base_model, adapter, out / "merged", chat_template)
    outtype = "f32" if quantization == "f32" else "f16"
    log(f"converting to GGUF ({outtype}) with llama.cpp's converter")
    full = convert(merged, out / f"model-{outtype}.gguf", outtype)
    gguf = full
    if quantization not in ("f16", "f32"):
        log(f"quantizing to {quantization}")
        gguf = quantize(full, out / f"model-{quantization}.gguf", quantization)
    return {"gguf": str(gguf), "gguf_full": str(full), "hf": str(merged)}
