"""One structured log line per request, the request id, and the HTTP metrics.

`RequestLogMiddleware` is pure ASGI (a `BaseHTTPMiddleware` would buffer streamed answers): it
takes the request id from an incoming `X-Request-ID` when that is sane (1-64 characters of
`A-Za-z0-9._-`), else makes one, returns it in the `X-Request-ID` header of every response (errors
and unhandled exceptions included), and when the response is done (the last byte of a stream)
writes one line to the `ragtune.access` logger and counts the request in `Metrics` by its route
template. The line holds method, route, path, status, latency, request id, client address, the
caller's key name (`request.state.principal`, when the auth layer set one) and, for chat routes,
the answer mode, index version, model, session id and token counts, which the chat service
reports through `RequestAnnotator` (a `ChatEvents` observer writing into the current request's
record). The customer's message and the answer text are included only with
`observability.log_messages`.

`configure_logging(settings.observability)` sets up the process's log lines as JSON objects (one a
line) or as text with the same fields as key=value; `run_server` calls it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders

from ragtune.settings import ObservabilitySettings

if TYPE_CHECKING:
    from serve.metrics import Metrics
    from serve.schemas import ChatResponse

access_log = logging.getLogger("ragtune.access")
HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404): raw paths would explode the labels


@dataclass
class RequestRecord:
    """What one request's log line will say beyond the HTTP basics (filled in while it runs)."""

    request_id: str
    fields: dict[str, Any] = field(default_factory=dict)


_current: ContextVar[RequestRecord | None] = ContextVar("ragtune_request", default=None)


def current_request() -> RequestRecord | None:
    """The record of the request being handled (None outside a request)."""
    return _current.get()


def incoming_request_id(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.fullmatch(text) else None
    return None


def route_template(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class RequestLogMiddleware:
    def __init__(
        self,
        app,
        metrics: Metrics | None = None,
        error_content: Callable[[str, int, str, str], dict[str, Any]] | None = None,
    ):
        self.app = app
        self.metrics = metrics
        self.error_content = error_content or (lambda _path, _status, message, kind: {"detail": message, "error": kind})

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord(incoming_request_id(scope) or uuid.uuid4().hex)
        scope.setdefault("state", {})  # shared with request.state downstream (the principal lands here)
        token = _current.set(record)
        started = time.perf_counter()
        status: int | None = None
        error: BaseException | None = None

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = record.request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            error = exc
            if status is None and isinstance(exc, Exception):
                # Starlette's outermost handler would answer this 500 without our header; answer it here.
                await self._internal_error(scope, send_with_id)
            raise
        finally:
            _current.reset(token)
            self._finish(scope, record, status, time.perf_counter() - started, error)

    async def _internal_error(self, scope: dict[str, Any], send) -> None:
        message = "internal server error; the server log has the details"
        body = json.dumps(self.error_content(scope.get("path", ""), 500, message, "InternalServerError")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _finish(
        self, scope: dict[str, Any], record: RequestRecord, status: int | None, seconds: float, error: BaseException | None
    ) -> None:
        route = route_template(scope)
        method = scope.get("method", "")
        final = status if status is not None else 500
        if self.metrics is not None:
            self.metrics.http_request(method, route, final, seconds)
        line: dict[str, Any] = {
            "method": method,
            "route": route,
            "path": scope.get("path", ""),
            "status": final,
            "latency_ms": round(seconds * 1000, 1),
            "request_id": record.request_id,
        }
        client = scope.get("client")
        if client:
            line["client"] = client[0]
        principal = scope.get("state", {}).get("principal")
        if principal is not None:
            line["principal"] = getattr(principal, "name", str(principal))
        if error is not None:
            line["error"] = type(error).__name__
        line.update(record.fields)
        access_log.log(logging.WARNING if final >= 500 else logging.INFO, "request", extra={"fields": line})


class RequestAnnotator:
    """A `ChatEvents` observer that puts the answer's facts into the current request's log line."""

    def __init__(self, log_messages: bool = False):
        self.log_messages = log_messages

    def retrieved(self, seconds: float) -> None:
        pass

    def generated(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        pass

    def invalid_reply(self, retried: bool) -> None:
        pass

    def verification_rejected(self, reasons: list[str]) -> None:
        record = current_request()
        if record is not None:
            record.fields["verification_rejected"] = reasons

    def citations_corrected(self, kind: str, count: int) -> None:
        pass

    def withheld(self, reason: str, count: int) -> None:
        record = current_request()
        if record is not None:
            record.fields.setdefault("withheld", {})[reason] = count

    def answered(self, question: str, response: ChatResponse) -> None:
        record = current_request()
        if record is None:
            return
        record.fields.update(
            mode=response.mode,
            index_version=response.index_version,
            model=response.model,
            session_id=response.session_id,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
        )
        if response.context.handoff_reason:
            record.fields["handoff_reason"] = response.context.handoff_reason
        if self.log_messages:
            record.fields["message"] = question
            record.fields["answer"] = response.answer


# ---- log formatting ------------------------------------------------------------------------
class RequestIdFilter(logging.Filter):
    """Stamps every record logged while a request is handled (a warning from an error handler, a
    model-process restart) with that request's id, so all its lines can be found together."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current.request_id
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", None) or {})
    request_id = getattr(record, "request_id", None)
    if request_id and "request_id" not in fields:
        fields["request_id"] = request_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        body.update(_fields(record))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        pairs = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, str) and ' ' in v else v}" for k, v in fields.items()
        )
        return f"{text} {pairs}" if pairs else text


def configure_logging(settings: ObservabilitySettings, stream=None) -> logging.Handler:
    """Route every log line (uvicorn's too) through one handler in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
