"""HTTP request and response models of the chat API (the answer itself is `ragtune.answer.Answer`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragtune.answer import Answer


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"message": "How do I get a refund?", "session_id": "c0ffee"}]})

    message: str = Field(description="The customer's question.", min_length=1)
    session_id: str | None = Field(None, description="Conversation id from an earlier answer; omit to start a new one.")
    filters: dict[str, str | list[str]] | None = Field(
        None, description="Restrict retrieval by metadata: doc_id, doc_type, category, title, section. A list means any of."
    )
    stream: bool = Field(False, description="Stream server-sent events: `delta` events with answer text, then one `answer` event.")


class Source(BaseModel):
    id: str = Field(description="Chunk id (what citations refer to).")
    title: str
    path: str = Field(description="Document path inside the knowledge base.")
    url: str | None = Field(None, description="Public URL of the document, when known.")
    section: str
    score: float = Field(description="Relevance of the chunk to the question (cosine similarity, 0-1).")
    cited: bool = Field(description="Whether the answer cites this chunk.")


class ContextReport(BaseModel):
    used: list[str] = Field(description="Chunk ids put into the prompt.")
    omitted: list[str] = Field(description="Relevant chunk ids left out because the context budget was full.")
    prompt_tokens: int | None = None
    budget_tokens: int | None = None
    dropped_citations: list[str] = Field([], description="Ids the model cited that were not among the chunks given to it (removed).")
    corrected_citations: list[dict[str, str | None]] = Field(
        [], description="Citations moved to the chunk that supports the answer: {from, to}; from null: the answer "
        "cited nothing and the best supporting chunk was added; to null: removed as unsupported."
    )


class ChatResponse(Answer):
    model_config = ConfigDict(extra="forbid")

    session_id: str
    mode: Literal["generated", "no_evidence", "retrieval_only"] = Field(
        description="generated: the model answered from the sources; no_evidence: nothing relevant was found and the "
        "model was not asked; retrieval_only: no model is available, the best passages are returned."
    )
    sources: list[Source]
    index_version: str
    model: str | None
    query: str = Field(description="The query used for retrieval (a follow-up is rewritten to stand alone).")
    context: ContextReport
    timings_ms: dict[str, float]

    def answer_only(self) -> Answer:
        return Answer(answer=self.answer, citations=self.citations, confidence=self.confidence, handoff=self.handoff)


class ErrorResponse(BaseModel):
    detail: str
    error: str = Field(description="Error class, e.g. PayloadTooLarge, ModelUnavailable.")


def error_body(exc: Exception) -> dict[str, Any]:
    return {"detail": str(exc), "error": type(exc).__name__}
