"""The answer contracts: what the model writes, and what the API returns and the widget renders.

The model has one job: the answer text, plus the short ids (S1, S2, ...) of the sources it used.
`ModelReply` is that job, defined once: the JSON schema handed to the model server (Ollama
`format`, `model_reply_schema(ids)`), the llama.cpp grammar (`serve/engines/grammar.py`), the
shape the prompt describes (`contract_shape`), the validator of what comes back (`parse_reply`)
and the assistant turn of every training example (`reply_json`).

`Answer` is the API's object: the server adds the citations (the evidence sentences the reply's
sources point at), the confidence and the hand-off, which it decides itself from the evidence.
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


class ModelReply(BaseModel):
    """What the model writes: the reply text and the sources it used. Nothing else is its job."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(description="The reply shown to the customer.", min_length=1, max_length=MAX_ANSWER_CHARS)
    sources: list[str] = Field(
        default_factory=list, description="Short ids (S1, S2, ...) of the sources the reply restates.", max_length=MAX_CITATIONS
    )


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
            if annotation is Citation and name == "id" and ids:
                shown = " | ".join(json.dumps(i) for i in ids)
            elif annotation is ModelReply and name == "sources" and ids:
                shown = "[" + " | ".join(json.dumps(i) for i in ids) + "]"
            else:
                shown = _shape(field.annotation, ids)
            parts.append(f'"{name}": {shown}')
        return "{" + ", ".join(parts) + "}"
    return {str: "string", bool: "true | false", int: "integer", float: "number"}.get(annotation, "string")


def contract_shape(allowed_ids: list[str] | None = None) -> str:
    """The model's reply as the prompt describes it, generated from `ModelReply` (so prompt, schema
    and grammar cannot drift apart): {"answer": string, "sources": ["S1" | "S2"]}."""
    return _shape(ModelReply, allowed_ids)


def model_reply_schema(allowed_ids: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema for the model; with `allowed_ids`, `sources` may only name those ids."""
    schema = ModelReply.model_json_schema()
    schema["properties"]["answer"] = {"type": "string"}  # lengths: see answer_schema
    items: dict[str, Any] = {"type": "string", "enum": list(allowed_ids)} if allowed_ids else {"type": "string"}
    schema["properties"]["sources"] = {"type": "array", "items": items, "maxItems": MAX_CITATIONS if allowed_ids else 0}
    schema["required"] = list(ModelReply.model_fields)
    return schema


def reply_json(reply: ModelReply) -> str:
    """The reply as the model writes it (the assistant turn of a training example)."""
    return json.dumps(reply.model_dump(), ensure_ascii=False)


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


def _json_object(raw: str) -> Any:
    text = _FENCE.sub("", raw.strip())
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise InvalidModelOutput("the model's reply holds no JSON object")
    try:
        data = json.loads(text[start : end + 1])  # strict: raw control characters in strings are rejected
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(f"the model's reply is not valid JSON ({exc.msg} at {exc.pos})") from exc
    return data


def _schema_error(exc: ValidationError, schema: str) -> InvalidModelOutput:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return InvalidModelOutput(f"the model's reply does not match the {schema} ({where}: {first['msg']})")


def parse_reply(raw: str) -> ModelReply:
    """Validate what the model wrote, allowing only harmless wrapping (code fences, leading prose)."""
    data = _json_object(raw)
    try:
        reply = ModelReply.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc, "reply schema") from exc
    if not reply.answer.strip():
        raise InvalidModelOutput("the model's reply has an empty answer")
    return reply


def parse_answer(raw: str) -> Answer:
    """Validate an API answer object (the JSON `Answer`), allowing the same harmless wrapping."""
    data = _json_object(raw)
    if isinstance(data, dict) and isinstance(data.get("citations"), list):
        for citation in data["citations"]:  # an over-long quote is trimmed, not a reason to reject
            if isinstance(citation, dict) and isinstance(citation.get("quote"), str):
                citation["quote"] = citation["quote"][:MAX_QUOTE_CHARS]
    try:
        answer = Answer.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(exc, "answer schema") from exc
    if not answer.answer.strip():
        raise InvalidModelOutput("the model's reply has an empty answer")
    return answer
