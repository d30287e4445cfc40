"""Rate limits on the chat routes, counted in the shared store (`serve/store/limits.py`).

- Requests per window (`limits.window_s`, a minute by default) per key and per client address:
  `limit_requests`, a dependency of every chat route.
- Answers in flight per key (per client address without keys), and a daily token budget per key:
  `answer_slot`, a dependency of the answering routes. It holds a slot until the answer has been
  sent (a stream until its last event or until the client leaves). With a budget it first
  reserves one answer's worst case (`answer_reservation`: the context window, twice in generative
  mode for the retry), refused once spent + reserved reaches the budget, so concurrent answers
  overshoot it by one reservation at most; when the answer ends the reservation is settled to
  what it spent.

Tokens counted are what the answer reports: `usage` (prompt + completion) when the response
carries it, else `context.prompt_tokens` (extractive answers and hand-offs ask no model: 0). An
answer that ends without reporting (a stream the client closed, an error after the model was
asked) is charged its whole reservation: what it spent cannot be known, and must not be free.
Over a limit the request gets 429 `{"detail", "error": "TooManyRequests"}` with `Retry-After`.
Admin routes are not limited here. Every limit is off at 0 (the budget at None).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ragtune.errors import RagtuneError
from ragtune.settings import LimitsSettings
from serve.auth import Principal, require_chat_access
from serve.clients import ClientAddresses
from serve.store.limits import DAY_S, LimitStore

log = logging.getLogger("ragtune.serve")
# A busy key frees a slot when one of its answers ends, which the server cannot foresee.
SLOT_RETRY_S = 2


class TooManyRequests(RagtuneError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: float):
        self.retry_after = max(1, math.ceil(retry_after_s))
        super().__init__(f"{message}; retry in {self.retry_after} s")
        self.headers = {"Retry-After": str(self.retry_after)}


def tokens_spent(response: Any) -> int:
    """Prompt + completion tokens an answer reports (0 when no model was asked)."""

    def field(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    usage = field(response, "usage") if response is not None else None
    if usage is not None:
        total = field(usage, "total_tokens")
        if total is None:
            total = (field(usage, "prompt_tokens") or 0) + (field(usage, "completion_tokens") or 0)
        return int(total or 0)
    context = field(response, "context") if response is not None else None
    return int((field(context, "prompt_tokens") if context is not None else None) or 0)


@dataclass
class AnswerTicket:
    slot_id: str | None
    token_bucket: str | None
    reservation_id: str | None = None
    reserved: int = 0


def answer_reservation(settings: Any) -> int:
    """Tokens one answer may spend at most: none in extractive mode or without a model; else the
    context window (prompt and answer share it), twice in generative mode (one retry)."""
    if settings.chat.answer_mode == "extractive" or settings.llm.engine == "none":
        return 0
    return settings.llm.n_ctx * (2 if settings.chat.answer_mode == "generative" else 1)


class RateLimiter:
    def __init__(
        self,
        store: LimitStore,
        limits: LimitsSettings,
        addresses: ClientAddresses,
        clock: Callable[[], float] = time.time,
        reservation: int = 0,
    ):
        self.store = store
        self.limits = limits
        self.addresses = addresses
        self.clock = clock
        self.reservation = reservation  # tokens reserved per answer against a daily budget (answer_reservation)

    def check_request(self, principal: Principal, address: str) -> None:
        limits = self.limits
        buckets = []
        if limits.requests_per_address:
            buckets.append((f"addr:{address}", limits.requests_per_address))
        if limits.requests_per_key and principal.kind != "local":
            buckets.append((f"key:{principal.name}", limits.requests_per_key))
        if not buckets:
            return
        wait, over = self.store.count(buckets, limits.window_s, self.clock())
        if over:
            limit = dict(buckets)
            names = {f"addr:{address}": ("address", address, "limits.requests_per_address")}
            names[f"key:{principal.name}"] = ("key", repr(principal.name), "limits.requests_per_key")
            kind, who, setting = names[over[0]]
            raise TooManyRequests(
                f"too many requests from {kind} {who}: at most {limit[over[0]]} every {limits.window_s:g} s ({setting})", wait
            )

    def open_answer(self, principal: Principal, address: str) -> AnswerTicket:
        limits, now = self.limits, self.clock()
        token_bucket = None if principal.kind == "local" else f"key:{principal.name}"
        ticket = AnswerTicket(None, token_bucket)
        if token_bucket and limits.daily_tokens_per_key is not None:
            ticket.reservation_id = self.store.reserve_tokens(
                token_bucket, limits.daily_tokens_per_key, self.reservation, limits.stream_ttl_s, now
            )
            if ticket.reservation_id is None:
                raise TooManyRequests(
                    f"key {principal.name!r} has spent (or has answers in progress that may spend) its "
                    f"{limits.daily_tokens_per_key} tokens for today (limits.daily_tokens_per_key); the budget renews at midnight UTC",
                    (int(now // DAY_S) + 1) * DAY_S - now,
                )
            ticket.reserved = self.reservation
        if limits.streams_per_key:
            slot_bucket = token_bucket or f"addr:{address}"
            ticket.slot_id = self.store.acquire_slot(slot_bucket, limits.streams_per_key, limits.stream_ttl_s, now)
            if ticket.slot_id is None:
                self.close_answer(ticket, 0)  # give the reservation back
                who = f"key {principal.name!r}" if token_bucket else f"address {address}"
                raise TooManyRequests(
                    f"{who} already has {limits.streams_per_key} answers in progress (limits.streams_per_key)", SLOT_RETRY_S
                )
        return ticket

    def close_answer(self, ticket: AnswerTicket, tokens: int) -> None:
        if ticket.slot_id is None and ticket.reservation_id is None and (ticket.token_bucket is None or tokens <= 0):
            return
        self.store.finish_answer(ticket.slot_id, ticket.token_bucket, tokens, self.clock(), ticket.reservation_id)


def _limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


def _address(request: Request) -> str:
    if not hasattr(request.state, "client_address"):
        request.state.client_address = _limiter(request).addresses.address(request)
    return request.state.client_address


async def limit_requests(request: Request, principal: Annotated[Principal, Depends(require_chat_access)]) -> None:
    """Counts the request against its key and its client address; 429 past either limit."""
    await run_in_threadpool(_limiter(request).check_request, principal, _address(request))


class AnswerMeter:
    """Handed to an answering route, which reports the finished answer so its tokens are counted,
    and says when a stream has begun (one that ends without its answer is charged its reservation)."""

    def __init__(self) -> None:
        self.response: Any = None
        self.streaming = False

    def answered(self, response: Any) -> None:
        self.response = response

    def stream_started(self) -> None:
        self.streaming = True


def charged(meter: AnswerMeter, ticket: AnswerTicket, model_failed: bool) -> int:
    """Tokens to count: what the answer reports; its reservation when it ended without reporting
    after a model may have worked on it (a stream cut short, a reply invalid twice)."""
    if meter.response is not None:
        return tokens_spent(meter.response)
    return ticket.reserved if meter.streaming or model_failed else 0


async def answer_slot(
    request: Request, principal: Annotated[Principal, Depends(require_chat_access)]
) -> AsyncIterator[AnswerMeter]:
    limiter = _limiter(request)
    ticket = await run_in_threadpool(limiter.open_answer, principal, _address(request))
    meter = AnswerMeter()
    model_failed = False
    try:
        yield meter  # FastAPI resumes here once the response has been sent, a stream included
    except RagtuneError as exc:
        model_failed = exc.status_code == 502  # the model's reply was invalid twice: it generated, uncounted
        raise
    finally:
        # Shielded: a request cancelled on its way out (a server shutting down) must still free its slot.
        with anyio.CancelScope(shield=True):
            try:
                await run_in_threadpool(limiter.close_answer, ticket, charged(meter, ticket, model_failed))
            except RagtuneError as exc:  # the store is down: the slot expires by itself (limits.stream_ttl_s)
                log.warning("could not release an answer slot: %s", exc)


AnswerMeterDep = Annotated[AnswerMeter, Depends(answer_slot)]
