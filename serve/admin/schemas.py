"""Response models of the admin API (they document it in the OpenAPI schema and bound what it returns)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class JobProgressModel(BaseModel):
    done: int = Field(description="Units of the current stage finished (files parsed, chunks embedded).")
    total: int = Field(description="Units of the current stage in all.")
    stage: str = Field(description="parse, embed, or empty before the first stage starts.")


class Job(BaseModel):
    job_id: str
    kind: Literal["ingest", "upload", "replace", "delete"]
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: JobProgressModel
    detail: str = Field(description="What happened: the outcome, the reason of a failure, or the step running now.")
    request: dict[str, Any] = Field(description="What was asked: the documents an upload, replace or delete touched.")
    result: dict[str, Any] | None = Field(
        description="The ingest outcome: version, published, added, updated, removed, failed ({doc, reason}), ..."
    )
    owner: str = Field(description="host:pid:instance of the process running it.")
    created_at: float
    started_at: float | None
    finished_at: float | None


class JobList(BaseModel):
    jobs: list[Job]


class DocumentFlag(BaseModel):
    kind: Literal["instruction", "contact"] = Field(
        description="instruction: a sentence read as an instruction to the assistant; contact: an e-mail address, phone "
        "number or link the settings do not allow (chat.company_domains, chat.allowed_contacts)."
    )
    text: str = Field(description="The sentence, or the contact.")


class Document(BaseModel):
    doc_id: str = Field(description="Path inside the knowledge folder; what ingestion and citations use.")
    title: str | None = None
    doc_type: str | None = None
    size: int
    modified_at: float | None
    chunks: int | None = Field(None, description="Chunks of it in the serving index version.")
    status: Literal["indexed", "flagged", "pending", "failed", "removed"] = Field(
        description="indexed: served as it is in the folder; flagged: served, but some of its text is withheld from "
        "answers (see flags and reason); pending: new or changed, taken in by the next ingest; "
        "failed: the last ingest could not read it (see reason); removed: deleted from the folder, served until the next ingest."
    )
    reason: str | None = None
    flags: list[DocumentFlag] = Field([], description="What serving withholds of this document, and why.")


class DocumentList(BaseModel):
    documents: list[Document]


class Version(BaseModel):
    version: str
    created_at: str
    documents: int
    chunks: int
    parent: str | None
    embedding_model: str
    current: bool


class VersionList(BaseModel):
    versions: list[Version]


class Stats(BaseModel):
    index_version: str | None
    index_created_at: str | None
    documents: int
    chunks: int
    versions_kept: int
    folder: str
    folder_files: int
    last_ingest: dict[str, Any] | None
    failures: list[dict[str, Any]] = Field(description="Files the last ingest could not read, with the reason.")
    flagged_documents: int = Field(0, description="Documents of the serving version with text withheld from answers.")
    running_job: str | None
    jobs: dict[str, int] = Field(description="Jobs by status.")
    checked_at: float


class ModelInfo(BaseModel):
    version: str
    base_model: str
    created_at: float
    gguf: str
    available: bool
    dataset_hash: str | None
    quality_score: float | None
    current: bool


class ModelList(BaseModel):
    current: str | None = Field(description="The registry's deployed version; null means the configured default model.")
    history: list[str]
    serving: str | None = Field(description="The model this server answers with now.")
    engine: str | None
    follows_registry: bool = Field(description="Whether this server switches models when the registry's pointer moves.")
    versions: list[ModelInfo]


class DeployRequest(BaseModel):
    force: bool = Field(False, description="Deploy even when the stored answer-quality figures are worse or missing.")


class Deployed(BaseModel):
    deployed: str
    previous: str | None
    forced: bool
    detail: str
