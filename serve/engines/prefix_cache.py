"""Keeps the prompts' static head (the system prompt's rules) decoded in llama.cpp's KV cache.

Every answer's prompt starts with the same tokens: the chat template's opening and the system
prompt's fixed instructions; only the sources, history and question after them change. Decoding
that head again for each request is wasted prompt-eval time. llama-cpp-python already reuses the
longest common prefix between a prompt and whatever the context holds from the request before,
so back-to-back answers share the head for free; this cache keeps it when they do not (the first
request after start-up following the self-check, a request whose prompt starts differently in
between, such as an OpenAI-route client's own system message).

The head is learned, not configured: it is the common token prefix of successive prompts (at
least `MIN_TOKENS` long), and it only ever shrinks to what later prompts still share, so a head
that happened to include a first source both requests had is corrected by the next prompt. Its
state (the KV cells of those tokens, a few MB for a small model) is saved once and loaded back
before a request whose prompt starts with it when the live context shares less of it.
"""

from __future__ import annotations

from typing import Any

MIN_TOKENS = 32  # a shorter shared prefix is the template's opening, not worth a saved state


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    def __init__(self, min_tokens: int = MIN_TOKENS):
        self.min_tokens = min_tokens
        self.tokens: list[int] | None = None  # the learned head
        self.state: Any = None  # llama_cpp.LlamaState of exactly those tokens
        self.last: list[int] | None = None  # the previous prompt
        self.restores = 0

    @staticmethod
    def live(llm) -> list[int]:
        return llm.input_ids[: llm.n_tokens].tolist()

    def prepare(self, llm, prompt: list[int]) -> int:
        """Before a request: load the head's state when it serves this prompt better than the live
        context does; returns how many prompt tokens are already decoded."""
        live = common_prefix(self.live(llm), prompt)
        head = self.tokens
        if head is not None and len(head) > live and prompt[: len(head)] == head:
            llm.load_state(self.state)
            self.restores += 1
            return len(head)
        return live

    def learn(self, llm, prompt: list[int]) -> None:
        """After a request (the context holds `prompt` and its completion): adopt or shrink the head."""
        target = None
        if self.tokens is not None:
            within = common_prefix(self.tokens, prompt)
            if self.min_tokens <= within < len(self.tokens):
                target = within  # the head held more than the prompts share: shrink it
        elif self.last is not None:
            shared = common_prefix(self.last, prompt)
            if shared >= self.min_tokens:
                target = shared
        self.last = list(prompt)
        if target is None:
            return
        # Cut the context back to the head (the completion is never reused: the next prompt has new
        # sources right after the head) and keep that state.
        if not llm._ctx.kv_cache_seq_rm(-1, target, -1):
            return
        llm.n_tokens = target
        llm._requires_eval = True
        self.tokens = list(prompt[:target])
        self.state = llm.save_state()
