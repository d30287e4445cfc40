"""Chat templates for base models that ship none (a pretrained, not instruction-tuned, GGUF).

An instruction-tuned GGUF carries its template (`tokenizer.chat_template`), and training and
serving both render that one. A base model has none, so its training config names one here
(`chat_template: gemma`, or a Jinja template of its own); training renders records with it, the
LoRA export writes it into the adapter's card, and serving renders the card's template over the
base (serve/engines/llamacpp.py), so the prompt the adapter is served is the one it learned.

The turn markers must be single special tokens of the base's vocabulary (Gemma's
`<start_of_turn>` = 105, `<end_of_turn>` = 106): spelled as plain text they would be split into
pieces, and llama.cpp would not stop at the end of the model's turn.
"""

from __future__ import annotations

from ragtune.errors import ConfigError

# Gemma's turn format (the one Google's instruction-tuned Gemma 3 uses): the system prompt opens
# the first user turn, the assistant's role is "model", every turn ends with <end_of_turn>.
GEMMA = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + "
    "'<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

TEMPLATES: dict[str, str] = {"gemma": GEMMA}
TURN_TOKENS: dict[str, tuple[str, ...]] = {"gemma": ("<start_of_turn>", "<end_of_turn>")}


def chat_template(value: str) -> str:
    """The Jinja template a config's `chat_template` names: a name from TEMPLATES, or the template itself."""
    if value in TEMPLATES:
        return TEMPLATES[value]
    if "{%" in value or "{{" in value:
        return value
    raise ConfigError(f"chat_template {value!r} is neither a known template ({', '.join(TEMPLATES)}) nor a Jinja template")
