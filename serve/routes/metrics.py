"""`GET /metrics`: this app's Prometheus metrics (serve/metrics.py) in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from serve.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text exposition format."}},
    summary="Prometheus metrics: requests, latency, retrieval and generation time, tokens, answers, hand-offs, ingest jobs.",
)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


@router.head("/metrics", include_in_schema=False)
async def metrics_head(request: Request) -> Response:
    """For probes and monitors that only check it answers: GET's status and headers, no body."""
    body = request.app.state.metrics.render()
    return Response(media_type=CONTENT_TYPE, headers={"Content-Length": str(len(body))})
