"""Prometheus metrics of one app: HTTP traffic, the answer pipeline, ingest jobs, what is serving.

`Metrics` owns its own `CollectorRegistry` (no process-global state: two apps in one process, as
in the tests or a bench, count separately); `GET /metrics` (serve/routes/metrics.py) renders it.
It is created by `create_app` and kept as `app.state.metrics`. Its sources are:

- the request middleware (serve/request_log.py): `http_request(method, route, status, seconds)`,
  with the route *template* (`/v1/admin/jobs/{job_id}`), never the raw path, so label values stay few;
- the chat service, through the `ChatEvents` protocol (serve/events.py), which this class implements;
- background ingest jobs: `app.state.metrics.ingest_job_finished(outcome, seconds)` once per job,
  outcome "succeeded" or "failed" (any other string is counted under its own label);
- at scrape time, `serving()` callables set by the app lifespan: the index version that answers
  now and the model (engine kind and name), exposed as `ragtune_index_info{version}` and
  `ragtune_model_info{engine,model}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from ragtune import __version__

if TYPE_CHECKING:
    from serve.schemas import ChatResponse

CONTENT_TYPE = CONTENT_TYPE_LATEST
# No `<name>_created` series (the Unix time each counter and histogram series was created): a
# second series per counter that Prometheus itself does not use, and most of the page. The switch
# is prometheus_client's and process-wide (PROMETHEUS_DISABLE_CREATED_SERIES=True does the same).
disable_created_metrics()
ANSWER_MODES = ("generated", "extractive", "handoff", "no_evidence")
HANDOFF_REASONS = ("no_evidence", "low_evidence", "person", "angry", "action")
WITHHELD_REASONS = ("instruction", "contact", "answer_contact")
FLAG_KINDS = ("instruction", "contact")
INGEST_OUTCOMES = ("succeeded", "failed")
# Request latencies run from a health check (ms) to a streamed answer on a CPU model (tens of s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
INGEST_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class _Serving(Collector):
    """Reads what is serving at scrape time, so a re-ingest or a model deploy shows at once."""

    def __init__(self) -> None:
        self.index_version: Callable[[], str | None] = lambda: None
        self.model: Callable[[], tuple[str, str] | None] = lambda: None
        self.flagged: Callable[[], dict[str, int]] = lambda: {}

    def collect(self) -> Iterator[InfoMetricFamily | GaugeMetricFamily]:
        build = InfoMetricFamily("ragtune_build", "The ragtune package version.")
        build.add_metric([], {"version": __version__})
        yield build
        index = InfoMetricFamily("ragtune_index", "The knowledge index version that answers now.")
        version = _safely(self.index_version)
        if version:
            index.add_metric([], {"version": version})
        yield index
        model = InfoMetricFamily("ragtune_model", "The answer model: engine kind and model version (none: extractive only).")
        found = _safely(self.model)
        engine, name = found if found else ("none", "none")
        model.add_metric([], {"engine": engine, "model": name})
        yield model
        flagged = GaugeMetricFamily(
            "ragtune_flagged_documents",
            "Documents of the serving index with text withheld from answers, by kind: instruction (sentences read as "
            "instructions to the assistant), contact (contacts not allowed). GET /v1/admin/documents names them.",
            labels=["kind"],
        )
        counts = _safely(self.flagged) or {}
        for kind in FLAG_KINDS:
            flagged.add_metric([kind], counts.get(kind, 0))
        yield flagged


def _safely(read: Callable):
    try:
        return read()
    except Exception:  # a scrape must not fail because the index is being replaced
        return None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ragtune_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ragtune_http_request_duration_seconds",
            "Time from request to the last byte of the response (a whole stream), by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retrieval = Histogram("ragtune_retrieval_seconds", "Retrieval time per question.", buckets=STAGE_BUCKETS, registry=r)
        self.generation = Histogram(
            "ragtune_generation_seconds",
            "Time of one model generation (a first reply or a retry).",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("ragtune_prompt_tokens", "Prompt tokens processed by the answer model.", registry=r)
        self.completion_tokens = Counter("ragtune_completion_tokens", "Tokens generated by the answer model.", registry=r)
        self.answers = Counter("ragtune_answers", "Answers by mode.", ["mode"], registry=r)
        self.handoffs = Counter("ragtune_handoffs", "Hand-offs to a person, by reason.", ["reason"], registry=r)
        self.invalid_replies = Counter(
            "ragtune_invalid_replies", "Model replies that broke the answer's JSON contract (validation failures).", registry=r
        )
        self.retries = Counter("ragtune_generation_retries", "Generations repeated after an invalid reply.", registry=r)
        self.verification = Counter(
            "ragtune_verification_rejections",
            "Generated replies rejected by verification against the evidence, by reason.",
            ["reason"],
            registry=r,
        )
        self.citations = Counter(
            "ragtune_citation_corrections",
            "Citations corrected: dropped (ids naming no source) or filled (none valid: every evidence sentence cited).",
            ["kind"],
            registry=r,
        )
        self.withheld_total = Counter(
            "ragtune_withheld",
            "What serving kept from customers, by reason: evidence sentences read as instructions to the assistant "
            "(instruction) or carrying a contact not allowed (contact), contacts removed from answer text (answer_contact).",
            ["reason"],
            registry=r,
        )
        self.ingest_jobs = Counter("ragtune_ingest_jobs", "Finished ingest jobs by outcome.", ["outcome"], registry=r)
        self.ingest_seconds = Histogram(
            "ragtune_ingest_job_duration_seconds", "Duration of finished ingest jobs.", buckets=INGEST_BUCKETS, registry=r
        )
        self._serving = _Serving()
        r.register(self._serving)
        # Known label values start at 0, so a rate() over them exists before the first event.
        for mode in ANSWER_MODES:
            self.answers.labels(mode)
        for reason in HANDOFF_REASONS:
            self.handoffs.labels(reason)
        for kind in ("dropped", "filled"):
            self.citations.labels(kind)
        for outcome in INGEST_OUTCOMES:
            self.ingest_jobs.labels(outcome)
        for reason in WITHHELD_REASONS:
            self.withheld_total.labels(reason)

    # ---- what is serving ----------------------------------------------------------------
    def serving(
        self,
        index_version: Callable[[], str | None],
        model: Callable[[], tuple[str, str] | None] | None = None,
        flagged: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """Where scrapes read the current index version, the (engine kind, model name) and the
        flagged documents by kind."""
        self._serving.index_version = index_version
        if model is not None:
            self._serving.model = model
        if flagged is not None:
            self._serving.flagged = flagged

    # ---- HTTP ---------------------------------------------------------------------------
    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    # ---- ingest jobs (called by the admin job runner) -----------------------------------
    def ingest_job_finished(self, outcome: str, seconds: float | None = None) -> None:
        """Count one finished ingest job: outcome "succeeded" or "failed"; its duration if known."""
        self.ingest_jobs.labels(outcome).inc()
        if seconds is not None:
            self.ingest_seconds.observe(seconds)

    # ---- ChatEvents ---------------------------------------------------------------------
    def retrieved(self, seconds: float) -> None:
        self.retrieval.observe(seconds)

    def generated(self, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.generation.observe(seconds)
        self.prompt_tokens.inc(prompt_tokens)
        self.completion_tokens.inc(completion_tokens)

    def invalid_reply(self, retried: bool) -> None:
        self.invalid_replies.inc()
        if retried:
            self.retries.inc()

    def verification_rejected(self, reasons: list[str]) -> None:
        for reason in reasons:
            self.verification.labels(reason).inc()

    def citations_corrected(self, kind: str, count: int) -> None:
        self.citations.labels(kind).inc(count)

    def answered(self, question: str, response: ChatResponse) -> None:
        self.answers.labels(response.mode).inc()
        if response.handoff and response.context.handoff_reason:
            self.handoffs.labels(response.context.handoff_reason).inc()

    def withheld(self, reason: str, count: int) -> None:
        self.withheld_total.labels(reason).inc(count)

    # ---- exposition ---------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)
