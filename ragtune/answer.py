"""The answer contract: one definition of what the model produces and the widget renders.

`Answer` is at once the JSON schema handed to the model server (Ollama `format`, the llama.cpp
grammar), the validator of what comes back, and the shape the training examples are written in.
`answer_schema(ids)` narrows citation ids to the chunks actually retrieved, so a constrained
engine cannot cite anything else.
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragtune.errors import InvalidModelOutput

MAX_ANSWER_CHARS = 2000
MAX_QUOTE_CHARS = 300
MAX_CITATIONS = 8


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Id of a retrieved chunk the answer relies on.", min_length=1, max_length=64)
    quote: str = Field(description="A short quote from that chunk supporting the answer.", max_length=MAX_QUOTE_CHARS)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="The reply shown to the customer.", min_length=1, max_length=MAX_ANSWER_CHARS)
    citations: list[Citation] = Field(description="Sources the answer relies on.", max_length=MAX_CITATIONS)
    confidence: Literal["high", "medium", "low"] = Field(description="How well the sources support the answer.")
    handoff: bool = Field(description="True when a human agent should take over.")


def _shape(annotation: Any, ids: list[str] | None) -> str:
    """How a field's type reads in the prompt: the same model the schema and grammar come from."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(v) for v in typing.get_args(annotation))
    if origin is list:
        return f"[{_shape(typing.get_args(annotation)[0], ids)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        parts = []
        for name, field in annotation.model_fields.items():
            shown = (
                " | ".join(json.dumps(i) for i in ids)
                if (annotation is Citation and name == "id" and ids)
                else _shape(field.annotation, ids)
            )
            parts.append(f'"{name}": {shown}')
        return "{" + ", ".join(parts) + "}"
    return {str: "string", bool: "true | false", int: "integer", float: "number"}.get(annotation, "string")


def contract_shape(allowed_ids: list[str] | None = None) -> str:
    """The answer object as the prompt describes it, generated from `Answer` (so prompt, schema and
    grammar cannot drift apart): {"answer": string, "citations": [{"id": "S1" | "S2", ...}], ...}."""
    return _shape(Answer, allowed_ids)


def answer_schema(allowed_ids: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema for the model; with `allowed_ids`, citations may only name those chunks."""
    schema = Answer.model_json_schema()
    citation = schema["$defs"]["Citation"]
    citation["properties"]["id"] = {"type": "string", "enum": list(allowed_ids)} if allowed_ids else {"type": "string"}
    # String lengths stay out of the schema: llama.cpp expands maxLength into a grammar too large to
    # parse. Generation is bounded by llm.max_tokens; validation (parse_answer) checks the rest.
    citation["properties"]["quote"] = {"type": "string"}
    schema["properties"]["answer"] = {"type": "string"}
    schema["properties"]["citations"]["maxItems"] = MAX_CITATIONS
    if not allowed_ids:
        schema["properties"]["citations"]["maxItems"] = 0
    return schema


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.S)


def parse_answer(raw: str) -> Answer:
    """Validate a model reply, allowing only harmless wrapping (code fences, leading prose)."""
    text = _FENCE.sub("", raw.strip())
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise InvalidModelOutput("the model's reply holds no JSON object")
    try:
        data = json.loads(text[start : end + 1])  # strict: raw control characters in strings are rejected
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(f"the model's reply is not valid JSON ({exc.msg} at {exc.pos})") from exc
    if isinstance(data, dict) and isinstance(data.get("citations"), list):
        for citation in data["citations"]:  # an over-long quote is trimmed, not a reason to reject
            if isinstance(citation, dict) and isinstance(citation.get("quote"), str):
                citation["quote"] = citation["quote"][:MAX_QUOTE_CHARS]
    try:
        answer = Answer.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidModelOutput(f"the model's reply does not match the answer schema ({where}: {first['msg']})") from exc
    if not answer.answer.strip():
        raise InvalidModelOutput("the model's reply has an empty answer")
    return answer
