"""One error shape for every 4xx/5xx, whatever raised it.

The native API answers `{"detail": "<what went wrong, for a person>", "error": "<kind>"}`; the
OpenAI-compatible routes answer OpenAI's `{"error": {"message", "type", "code"}}` so its SDKs read
it. Domain errors, request validation, Starlette's own HTTP errors (404, 405, an unreadable
body), the body-size limit (413) and unhandled exceptions (500, no internals leaked) all go
through `error_content`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragtune.errors import RagtuneError

log = logging.getLogger("ragtune.serve")
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
# FastAPI's message when the body is not readable as JSON (invalid UTF-8, say); too vague to act on.
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


def error_kind(status: int) -> str:
    """'NotFound', 'MethodNotAllowed', ... : the kind named after the status."""
    try:
        return HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


def error_content(path: str, status: int, message: str, kind: str) -> dict[str, Any]:
    if path.startswith(OPENAI_PATHS):  # OpenAI SDKs read {"error": {"message": ...}}
        return {"error": {"message": message, "type": kind, "code": status}}
    return {"detail": message, "error": kind}


def error_response(request: Request, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_content(request.url.path, status, message, kind), headers=headers)


def _problem(error: dict[str, Any]) -> str:
    """One validation problem for a person: the field and what is wrong with it."""
    if error.get("type") == "json_invalid":  # FastAPI's loc is ("body", <character offset>), its msg "JSON decode error"
        at = error["loc"][-1] if len(error.get("loc", ())) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error") or error["msg"]
        return f"the body is not valid JSON ({reason} at character {at}); send one JSON object with content-type application/json"
    return f"{'.'.join(str(p) for p in error['loc'] if p != 'body') or 'body'}: {error['msg']}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagtuneError)
    async def domain_error(request: Request, exc: RagtuneError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        # An error may carry headers for the client (WWW-Authenticate on a 401, Retry-After on a 429)
        # and fields to put next to `detail` (the running job's id on a 409).
        content = error_content(request.url.path, exc.status_code, str(exc), type(exc).__name__)
        if exc.extra and "detail" in content:
            content |= exc.extra
        return JSONResponse(status_code=exc.status_code, content=content, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_problem(e) for e in exc.errors())
        return error_response(request, 422, f"invalid request: {problems}", "RequestValidationError")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and message == _FASTAPI_PARSE_ERROR and isinstance(exc.__cause__, RecursionError):
            message = "the JSON body is nested too deeply to read (no request to this API needs more than a few levels)"
        elif exc.status_code == 400 and message == _FASTAPI_PARSE_ERROR:
            message = "the request body could not be read as JSON; send UTF-8 JSON with content-type application/json"
        elif exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(
            request, exc.status_code, message, error_kind(exc.status_code), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this response, so the traceback reaches the server log; the
        # client gets no internals.
        return error_response(request, 500, "internal server error; the server log has the details", "InternalServerError")
