"""HTTP request and response models of the chat API (the answer itself is `ragtune.answer.Answer`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ragtune.answer import Answer
from ragtune.contacts import http_url
from ragtune.documents import FILTER_FIELDS

# Metadata filters: the schema names the fields a filter may use (the retriever checks them again,
# with an error that lists them), so generated clients and fuzzers see what is accepted.
Filters = Annotated[
    dict[str, str | Annotated[list[str], Field(min_length=1)]],
    Field(json_schema_extra={"propertyNames": {"enum": list(FILTER_FIELDS)}}),
]


def _typed_text(value: str) -> str:
    """Text a person typed: no NUL (nobody types one, and a Postgres store cannot keep it) and valid
    Unicode (JSON's \\u escapes can carry an unpaired surrogate, which no encoder or tokenizer takes)."""
    if "\x00" in value:
        raise ValueError("holds a NUL character (\\u0000); send the text without it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("is not valid Unicode (an unpaired surrogate such as \\ud800); send UTF-8 text") from exc
    return value


# The schema states the NUL rule too (as a pattern), so clients and fuzzers know what is refused; a lone
# surrogate cannot be written in a schema pattern and stays the validator's alone.
Text = Annotated[str, AfterValidator(_typed_text), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})]


class ChatRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"message": "How do I get a refund?", "session_id": "c0ffee"}]}
    )

    message: Text = Field(description="The customer's question.", min_length=1)
    session_id: str | None = Field(
        None,
        description="Conversation id from an earlier answer; omit to start a new one.",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
    )
    filters: Filters | None = Field(
        None, description="Restrict retrieval by metadata: doc_id, doc_type, category, title, section. A list means any of."
    )
    stream: bool = Field(
        False, description="Stream server-sent events: `delta` events with answer text, then one `answer` event."
    )


class Source(BaseModel):
    id: str = Field(description="Chunk id (what citations refer to).")
    title: str
    path: str = Field(description="Document path inside the knowledge base.")
    url: Annotated[str | None, AfterValidator(http_url)] = Field(
        None, description="Public URL of the document, when known: http(s) only (an index written before that rule loses others)."
    )
    section: str
    score: float = Field(description="Relevance of the chunk to the question (cosine similarity, 0-1).")
    cited: bool = Field(description="Whether the answer cites this chunk.")


class EvidenceItem(BaseModel):
    id: str = Field(description="Chunk id the sentence comes from.")
    sentence: str = Field(description="The sentence, verbatim.")
    score: float = Field(description="The evidence selector's probability that this unit answers the question.")


class ContextReport(BaseModel):
    used: list[str] = Field(description="Chunk ids put into the prompt.")
    omitted: list[str] = Field(description="Relevant chunk ids left out because the context budget was full.")
    prompt_tokens: int | None = None
    budget_tokens: int | None = None
    dropped_citations: list[str] = Field([], description="Source ids the model cited that name none of its sources (removed).")
    evidence: list[EvidenceItem] = Field([], description="The evidence sentences the server selected, best first.")
    handoff_reason: str | None = Field(
        None,
        description="Why the answer is a hand-off: no_evidence (nothing retrieved above retrieval.min_relevance), "
        "low_evidence (the grounding model finds the evidence does not answer the question), person (the customer asks "
        "for a person), angry (a complaint), action (an account action the assistant cannot carry out), other_company "
        "(a question about another company's product), language (a German or French message the English documents "
        "do not answer clearly).",
    )
    answerable: float = Field(
        0.0, description="The grounding model's calibrated probability that the evidence answers the question."
    )
    intent: str = Field("info", description="What the question asks for: info, person, angry or action.")
    language: str = Field("en", description="The customer's language as detected (en, de, fr); hand-off texts use it.")


class Verification(BaseModel):
    checked: bool = Field(description="Whether a generated reply was verified (false for extractive answers and hand-offs).")
    passed: bool | None = Field(description="Whether the generated reply passed; null when none was checked.")
    reasons: list[str] = Field(
        description="Why it was rejected: debris, echo, loop, number, name, negation, unsupported, incomplete, refusal, leak, "
        "invalid; or unavailable: the model was busy (its queue full) or failed, and auto mode answered extractively."
    )
    fallback: bool = Field(description="True when the rejected reply was replaced by the extractive answer (auto mode).")


class Usage(BaseModel):
    prompt_tokens: int = Field(
        0, description="Prompt tokens the engine processed for this answer, as its tokenizer counts them (summed over a retry)."
    )
    completion_tokens: int = Field(
        0, description="Tokens the engine generated. 0 when no model was asked (extractive answers, hand-offs)."
    )
    total_tokens: int = 0
    cached_prompt_tokens: int = Field(
        0,
        description="Of prompt_tokens, those the engine found already decoded in its cache (the prompt's static head) "
        "and did not decode again.",
    )


class ChatResponse(Answer):
    model_config = ConfigDict(extra="forbid")

    session_id: str
    turn: int = Field(
        description="0-based index of this answer in its session: name it with the session_id to rate the answer (POST /v1/feedback)."
    )
    mode: Literal["generated", "extractive", "handoff", "no_evidence"] = Field(
        description="What answered. generated: the model phrased the evidence (and, in auto mode, passed verification); "
        "extractive: the evidence sentences themselves (answer_mode extractive, a rejected reply in auto, or no model "
        "available); handoff: the evidence does not answer the question; no_evidence: nothing relevant was retrieved."
    )
    answer_mode: Literal["auto", "generative", "extractive"] = Field(description="The configured chat.answer_mode.")
    verification: Verification
    sources: list[Source]
    index_version: str
    model: str | None
    query: str = Field(description="The query used for retrieval (a follow-up is rewritten to stand alone).")
    context: ContextReport
    timings_ms: dict[str, float]
    usage: Usage = Field(default_factory=Usage, description="Tokens the model processed and generated for this answer.")

    def answer_only(self) -> Answer:
        return Answer(answer=self.answer, citations=self.citations, confidence=self.confidence, handoff=self.handoff)


class ErrorResponse(BaseModel):
    detail: str
    error: str = Field(description="Error class, e.g. PayloadTooLarge, ModelUnavailable.")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    code: int | str | None = None


class OpenAIErrorResponse(BaseModel):
    """The error shape of the OpenAI-compatible routes (what OpenAI's SDKs parse)."""

    error: OpenAIErrorDetail


def error_body(exc: Exception) -> dict[str, Any]:
    return {"detail": str(exc), "error": type(exc).__name__}
