"""The llama.cpp model process: the one place that runs llama.cpp's compute kernels.

A native fault in llama.cpp (SIGILL from an instruction the CPU advertises but the VM does not
grant, SIGSEGV from a bad grammar or a kernel bug) kills the process it runs in, and Python cannot
catch it. So the model runs here, in a child process that the server starts (serve/engines/
model_process.py): a crash becomes an error for one request and a restarted child, never a dead
API.

Start-up is a self-check: the model is loaded and a prompt of about a hundred tokens is decoded
(a one-token prompt never reaches the batched, repacked kernels that fault), then a few tokens are
generated. Only then does the child say it is ready. With `spec["safe"]` the model is loaded
without llama.cpp's extra CPU buffer types (no AMX or repacked weights), the fallback when the
fast path dies.

Messages on the pipe are `(op, payload)` from the parent; replies are `("ready", info)`,
`("piece", text)` while streaming, `("result", dict)` or `("error", message)`.
"""

from __future__ import annotations

import faulthandler
import time
from typing import Any

from serve.engines.prefix_cache import PrefixCache

GGUF_TEMPLATE = "chat_template.default"  # llama-cpp-python's name for the GGUF's own template
SELF_CHECK_TEXT = (
    "Our support team answers questions about billing, refunds, passwords, security, data export and "
    "integrations. Customers on the annual plan can ask for a refund within thirty days of purchase; "
    "monthly plans renew every month and can be cancelled at any time from the billing page. "
)
SELF_CHECK_TOKENS = 4


def _without_extra_buffer_types() -> None:
    """Make llama-cpp-python load models with use_extra_bufts = false (no AMX / repacked weights)."""
    import llama_cpp.llama_cpp as native

    original = native.llama_model_default_params

    def safe_params():
        params = original()
        params.use_extra_bufts = False
        return params

    native.llama_model_default_params = safe_params


def load_model(spec: dict[str, Any]):
    from llama_cpp import Llama

    if spec.get("safe"):
        _without_extra_buffer_types()
    llm = Llama(
        model_path=spec["path"],
        lora_path=spec.get("lora_path"),  # a GGUF LoRA applied over the base (ragtune.adapters)
        n_ctx=spec["n_ctx"],
        n_threads=spec.get("threads"),
        seed=spec.get("seed", 0),
        verbose=False,
    )
    llm.chat_format = GGUF_TEMPLATE
    if spec.get("chat_template"):  # the adapter's template (its base has none): rendered as the server renders it
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos, bos = llm.token_eos(), llm.token_bos()
        llm.chat_handler = Jinja2ChatFormatter(
            template=spec["chat_template"],
            eos_token=llm.detokenize([eos], special=True).decode("utf-8") if eos != -1 else "",
            bos_token=llm.detokenize([bos], special=True).decode("utf-8") if bos != -1 else "",
            stop_token_ids=[eos],
        ).to_chat_handler()
    return llm


def self_check(llm) -> dict[str, Any]:
    """Decode a multi-token prompt and generate a few tokens; returns what was measured."""
    import llama_cpp

    tokens = llm.tokenize((SELF_CHECK_TEXT * 2).encode("utf-8"), add_bos=True)
    t0 = time.perf_counter()
    llm.reset()
    llm.eval(tokens)
    prompt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(SELF_CHECK_TOKENS):
        token = llm.sample(temp=0.0)
        llm.eval([token])
    generate_s = time.perf_counter() - t0
    llm.reset()
    return {
        "prompt_tokens": len(tokens),
        "prompt_tokens_per_s": round(len(tokens) / max(prompt_s, 1e-9), 1),
        "generated_tokens_per_s": round(SELF_CHECK_TOKENS / max(generate_s, 1e-9), 1),
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
    }


def chat(llm, conn, payload: dict[str, Any], cache: PrefixCache | None = None) -> dict[str, Any]:
    """One grammar-bound chat completion; with payload["stream"] the text is sent piece by piece.

    llama-cpp-python's own stream=True path is pathologically slow under a grammar (minutes for a
    few hundred tokens), so the fast non-streaming call runs and a logits processor, called once
    per step, taps the tokens sampled so far. The last piece comes from the finished completion, so
    the pieces always add up to its content. The first call of the tap ends the prompt's decoding,
    which gives the prompt-eval time; `cache` keeps the prompts' static head decoded (prefix_cache.py);
    without one, nothing decoded before is reused (the baseline the cache is measured against).
    """
    from llama_cpp import LlamaGrammar, LogitsProcessorList

    kwargs = dict(
        messages=payload["messages"],
        max_tokens=payload["max_tokens"],
        grammar=LlamaGrammar.from_string(payload["grammar"], verbose=False),
        temperature=payload["temperature"],
        seed=payload["seed"],
        repeat_penalty=payload["repeat_penalty"],
    )
    state: dict[str, Any] = {"prompt": None, "sent": "", "prompt_s": None}
    prompt_ids = payload.get("prompt_ids")
    if cache is None:
        llm.reset()  # no reuse at all: every prompt is decoded from its first token (llm.prefix_cache off)
    cached = cache.prepare(llm, prompt_ids) if cache is not None and prompt_ids else 0

    def tap(input_ids, scores):
        if state["prompt"] is None:
            state["prompt"] = len(input_ids)
            state["prompt_s"] = time.perf_counter() - t0
            state["prompt_ids"] = list(input_ids)
        if not payload.get("stream"):
            return scores
        produced = llm.detokenize(list(input_ids[state["prompt"] :])).decode("utf-8", errors="ignore")
        if len(produced) > len(state["sent"]) and produced.startswith(state["sent"]):
            conn.send(("piece", produced[len(state["sent"]) :]))
            state["sent"] = produced
        return scores

    kwargs["logits_processor"] = LogitsProcessorList([tap])
    t0 = time.perf_counter()
    out = llm.create_chat_completion(**kwargs)
    if cache is not None and prompt_ids:
        if state.get("prompt_ids") == list(prompt_ids):
            cache.learn(llm, prompt_ids)
        else:  # the server rendered another prompt than llama.cpp did: no head is learned from it
            cached = 0
    content = out["choices"][0]["message"]["content"] or ""
    if payload.get("stream") and content.startswith(state["sent"]) and len(content) > len(state["sent"]):
        conn.send(("piece", content[len(state["sent"]) :]))
    usage = out.get("usage", {})
    return {
        "text": content,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "generate_ms": round((time.perf_counter() - t0) * 1000, 1),
        "prompt_eval_ms": round(state["prompt_s"] * 1000, 1) if state["prompt_s"] is not None else None,
        "cached_tokens": cached,
    }


def worker_main(conn, spec: dict[str, Any]) -> None:
    """Entry point of the model process (started with the spawn method)."""
    faulthandler.enable()  # a native crash leaves its Python stack on stderr, for the log
    try:
        llm = load_model(spec)
        info = self_check(llm)
    except Exception as exc:  # a Python-level failure (bad file...): reported, not a crash
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", info | {"safe": bool(spec.get("safe"))}))
    cache = PrefixCache() if spec.get("prefix_cache", True) else None
    while True:
        try:
            op, payload = conn.recv()
        except (EOFError, OSError):
            return
        if op == "close":
            return
        try:
            if op == "chat":
                conn.send(("result", chat(llm, conn, payload, cache)))
            else:
                conn.send(("error", f"unknown request {op!r}"))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
