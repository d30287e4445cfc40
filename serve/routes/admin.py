"""`/v1/admin/...`: documents, ingest jobs, index versions, stats and answer models.

Thin: read the request, call the admin service (serve/admin/) in a worker thread (it touches
files, the index and the store), return its result. The app mounts this router behind the admin
key. Long operations answer 202 with the job; follow it at GET /v1/admin/jobs/{job_id}.

Uploads read their multipart body inside the handler, not as FastAPI form parameters: FastAPI
parses a form body before it runs the router's dependencies, so a client without a key could make
the server spool `server.max_upload_mb` to disk before being told 401. The body's shape is
documented in the OpenAPI schema all the same.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.datastructures import UploadFile

from ragtune.errors import UserInputError
from serve.admin.schemas import Deployed, DeployRequest, DocumentList, Job, JobList, ModelList, Stats, Version, VersionList
from serve.routes.deps import AdminDep, ModelAdminDep
from serve.schemas import ErrorResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"])

JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "No files, or a body that is not multipart/form-data."},
    404: {"model": ErrorResponse, "description": "No such document."},
    409: {"model": ErrorResponse, "description": "An ingest is running (`job_id` names it), or the document exists."},
    413: {"model": ErrorResponse, "description": "A file is over ingest.max_file_mb, or the request over server.max_upload_mb."},
    415: {"model": ErrorResponse, "description": "A file type ingestion does not read (ingest.extensions)."},
    422: {"model": ErrorResponse, "description": "A file refused: unsafe name, content not matching its type, a zip bomb."},
    503: {"model": ErrorResponse, "description": "The server was started without an ingester, or the folder is not writable."},
}


MAX_FILES = 100  # files in one upload request


def _multipart(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": fields, "required": required}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


BINARY = {"type": "string", "format": "binary"}
UPLOAD_BODY = _multipart(
    {
        "files": {
            "type": "array",
            "items": BINARY,
            "minItems": 1,
            "maxItems": MAX_FILES,
            "description": "The documents; one refused file refuses the whole request.",
        },
        "folder": {"type": "string", "description": "Subfolder of the knowledge folder to put them in, e.g. 'faq'."},
    },
    ["files"],
)
REPLACE_BODY = _multipart({"file": BINARY | {"description": "The new content, of the same type."}}, ["file"])


# filename="..." (quoted, with \" and \\ escapes) or filename=... (a bare token), as python-multipart reads it.
_FILENAME = re.compile(r'(?:^|;)\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', re.I)


def sent_filename(item: UploadFile) -> str:
    """The file name as the client sent it. The multipart parser cuts a name that looks like a
    Windows path (`C:\\evil.md`) down to its last part, an old browser's quirk; a path is refused
    here (never cut), so such a name is read again from the part's header."""
    name = item.filename or ""
    found = _FILENAME.search(item.headers.get("content-disposition", ""))
    if found is None:
        return name
    quoted, bare = found.groups()
    raw = quoted.replace("\\\\", "\\").replace('\\"', '"') if quoted is not None else bare.strip()
    if raw[1:3] == ":\\" or raw[:2] == "\\\\":  # exactly the names the parser cuts
        try:
            return raw.encode("latin-1").decode("utf-8")  # headers are read as latin-1; names come as UTF-8
        except UnicodeError:
            return raw
    return name


async def _read_files(request: Request, field: str) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The files of multipart field `field` (name, bytes) and the plain fields, read after auth ran."""
    async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:
        files: list[tuple[str, bytes]] = []
        for item in form.getlist(field):
            if not isinstance(item, UploadFile):
                raise UserInputError(f"multipart field `{field}` must hold files (parts with a filename), not text")
            files.append((sent_filename(item), await item.read()))
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if not files:
        raise UserInputError(f"no files: send them as multipart/form-data in the field `{field}`")
    return files, fields


@router.get("/documents", response_model=DocumentList, summary="Documents in the knowledge folder and the serving index.")
async def list_documents(admin: AdminDep) -> dict:
    return {"documents": await asyncio.to_thread(admin.documents)}


@router.post(
    "/documents",
    status_code=202,
    response_model=Job,
    responses=JOB_ERRORS,
    openapi_extra=UPLOAD_BODY,
    summary="Upload documents, then re-ingest.",
)
async def upload_documents(admin: AdminDep, request: Request) -> dict:
    files, fields = await _read_files(request, "files")
    return await asyncio.to_thread(admin.upload, files, fields.get("folder") or None)


@router.put(
    "/documents/{doc_id:path}",
    status_code=202,
    response_model=Job,
    responses=JOB_ERRORS,
    openapi_extra=REPLACE_BODY,
    summary="Replace a document's file, then re-ingest.",
)
async def replace_document(admin: AdminDep, doc_id: str, request: Request) -> dict:
    files, _ = await _read_files(request, "file")
    if len(files) != 1:
        raise UserInputError("send exactly one file in the multipart field `file`")
    return await asyncio.to_thread(admin.replace, doc_id, files[0][1])


@router.delete(
    "/documents/{doc_id:path}",
    status_code=202,
    response_model=Job,
    responses=JOB_ERRORS,
    summary="Delete a document's file, then re-ingest.",
)
async def delete_document(admin: AdminDep, doc_id: str) -> dict:
    return await asyncio.to_thread(admin.delete, doc_id)


@router.post("/ingest", status_code=202, response_model=Job, responses=JOB_ERRORS, summary="Re-ingest the knowledge folder.")
async def ingest(admin: AdminDep) -> dict:
    return await asyncio.to_thread(admin.ingest)


@router.get("/jobs", response_model=JobList, summary="Recent jobs, newest first.")
async def list_jobs(admin: AdminDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    return {"jobs": await asyncio.to_thread(admin.jobs.recent, limit)}


@router.get("/jobs/{job_id}", response_model=Job, responses={404: {"model": ErrorResponse}}, summary="One job's status.")
async def get_job(admin: AdminDep, job_id: str) -> dict:
    return await asyncio.to_thread(admin.job, job_id)


@router.get("/versions", response_model=VersionList, summary="Index versions kept on disk, newest first.")
async def list_versions(admin: AdminDep) -> dict:
    return {"versions": await asyncio.to_thread(admin.versions)}


@router.post(
    "/versions/{version}/activate",
    response_model=Version,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
    summary="Serve an earlier kept version (rollback); chat switches atomically.",
)
async def activate_version(admin: AdminDep, version: str) -> dict:
    return await asyncio.to_thread(admin.activate, version)


@router.get("/stats", response_model=Stats, summary="Documents, chunks, serving version, last ingest and its failures.")
async def stats(admin: AdminDep) -> dict:
    return await asyncio.to_thread(admin.stats)


@router.get("/models", response_model=ModelList, summary="Answer-model versions in the registry and the one serving.")
async def list_models(models: ModelAdminDep) -> dict:
    return await asyncio.to_thread(models.list)


@router.post(
    "/models/{name}/deploy",
    response_model=Deployed,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
    summary="Deploy a model version (gated on its stored answer-quality figures unless forced).",
)
async def deploy_model(models: ModelAdminDep, name: str, request: Annotated[DeployRequest | None, Body()] = None) -> dict:
    return await asyncio.to_thread(models.deploy, name, bool(request and request.force))
