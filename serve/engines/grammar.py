"""GBNF grammar for the model's reply (`ragtune.answer.ModelReply`), for llama.cpp.

llama.cpp's own JSON-schema converter has two flaws for us: it lets raw control characters into
strings (invalid JSON), and it expands maxLength into a grammar too large to parse, so a model
that rambles runs into max_tokens with the JSON still open. This grammar bounds every string with
GBNF's `{m,n}` repetition and excludes control characters. The bounds follow `max_tokens`: the
normal grammar is sized for ordinary text at 3 characters a token, so a model that rambles to
the limit still closes the object; `tight=True` gives a grammar whose longest possible output, in
bytes, fits into `max_tokens` (every token emits at least one byte and the tight grammar allows
ASCII only), so the retry after a truncated reply always closes.

The reply is the answer text and the short ids of the sources used: `{"answer": "...",
"sources": ["S1"]}`; citations, confidence and hand-off are the server's.
"""

from __future__ import annotations

import json
import re

from ragtune.answer import MAX_CITATIONS, ModelReply

_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_ASCII_CHAR = r'[ !#-\[\]-~] | "\\" (["\\/nt])'
_FIELDS = ("answer", "sources")
_FIXED_CHARS = 40  # braces, keys, separators
TYPICAL_CHARS_PER_TOKEN = 3.0


def _literal(text: str) -> str:
    return json.dumps(json.dumps(text))  # a GBNF string literal matching the JSON-encoded text


def answer_grammar(
    allowed_ids: list[str],
    max_tokens: int,
    answer_chars: int = 1200,
    max_sources: int = 3,
    tight: bool = False,
) -> str:
    """The grammar of one reply: the answer text, bounded to fit `max_tokens`, then the sources."""
    if tuple(ModelReply.model_fields) != _FIELDS:
        raise RuntimeError("the ModelReply contract changed; update serve/engines/grammar.py to match")
    max_sources = min(max_sources, MAX_CITATIONS, len(allowed_ids))
    longest_id = max((len(i) for i in allowed_ids), default=0)
    if tight:
        # Worst case: one byte per token, so the whole object in bytes must fit max_tokens.
        chars_per_token = 1.0
        max_sources = min(max_sources, 1)
    else:
        # Sized for ordinary text (English runs at about 4 characters a token), so a model that
        # writes up to the limits still closes the object inside max_tokens and no retry is needed.
        chars_per_token = TYPICAL_CHARS_PER_TOKEN
    room = int(chars_per_token * max_tokens) - _FIXED_CHARS - max_sources * (longest_id + 4)
    answer_chars = max(1, min(answer_chars, room))
    char = _ASCII_CHAR if tight else _CHAR
    ids = " | ".join(_literal(i) for i in allowed_ids) or '"\\"\\""'
    if max_sources == 0:
        sources = '"[" "]"'
    else:
        sources = f'"[" "]" | "[" id ("," ws id){{0,{max_sources - 1}}} "]"'
    rules = [
        'root ::= "{" ws ' + ' "," ws '.join(f'"\\"{name}\\":" ws {name}' for name in _FIELDS) + ' "}"',
        f'answer ::= "\\"" char{{1,{answer_chars}}} "\\""',
        f"sources ::= {sources}",
        f"id ::= {ids}",
        f"char ::= {char}",
        'ws ::= " "?',
    ]
    return check_grammar("\n".join(rules) + "\n")


class GrammarError(ValueError):
    """A GBNF grammar llama.cpp would not parse (llama-cpp-python 0.3.36 crashes the process on one)."""


_RULE = re.compile(r"^([a-zA-Z][a-zA-Z0-9-]*)\s*::=\s*(.*)$")
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")


def check_grammar(text: str) -> str:
    """Refuse, with the reason, a grammar llama.cpp could not parse, before it reaches llama.cpp.

    llama.cpp's parser reports some errors and crashes on others; this pure-Python pass checks what
    our grammars can get wrong: each line a rule, a `root` rule, terminated string literals and
    character classes, balanced parentheses, `{m,n}` bounds with m <= n, and no rule used without
    being defined. Returns the grammar unchanged when it passes."""
    rules: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _RULE.match(line.strip())
        if not match:
            raise GrammarError(f"line {number} is not a rule ('name ::= ...'): {line[:60]!r}")
        rules[match.group(1)] = match.group(2)
    if "root" not in rules:
        raise GrammarError("the grammar has no root rule")
    used: set[str] = set()
    for name, body in rules.items():
        used |= _scan(name, body)
    undefined = sorted(used - set(rules))
    if undefined:
        raise GrammarError(f"rules used but never defined: {', '.join(undefined)}")
    return text


def _scan(name: str, body: str) -> set[str]:
    """The rule names a rule body refers to; raises GrammarError on malformed syntax."""
    refs: set[str] = set()
    depth = 0
    i = 0
    while i < len(body):
        c = body[i]
        if c in '"[':
            close = '"' if c == '"' else "]"
            j = i + 1
            while j < len(body) and body[j] != close:
                j += 2 if body[j] == "\\" else 1
            if j >= len(body):
                raise GrammarError(f"rule {name}: unterminated {'string' if c == chr(34) else 'character class'}")
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise GrammarError(f"rule {name}: unbalanced ')'")
        elif c == "{":
            j = body.find("}", i)
            bounds = body[i + 1 : j].split(",") if j != -1 else []
            if (
                j == -1
                or not 1 <= len(bounds) <= 2
                or not bounds[0].strip().isdigit()
                or (
                    len(bounds) == 2
                    and bounds[1].strip()
                    and (not bounds[1].strip().isdigit() or int(bounds[1]) < int(bounds[0]))
                )
            ):
                raise GrammarError(f"rule {name}: bad repetition {body[i : j + 1 if j != -1 else None]!r}")
            i = j + 1
            continue
        elif c.isalpha():
            match = _NAME.match(body, i)
            assert match is not None  # body[i] is a letter, which _NAME always matches
            word = match.group(0)
            refs.add(word)
            i += len(word)
            continue
        elif not (c.isspace() or c in "|*+?"):
            raise GrammarError(f"rule {name}: unexpected {c!r}")
        i += 1
    if depth:
        raise GrammarError(f"rule {name}: unbalanced '('")
    return refs
