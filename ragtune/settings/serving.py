"""Settings sections of the serving API: chat, server, store, observability."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator

from ragtune.settings.access import normalise_origin
from ragtune.settings.base import _Section


class ChatSettings(_Section):
    refuse_without_evidence: bool = Field(
        True,
        description="Hand off, without calling the model, when no chunk clears retrieval.min_relevance. "
        "False: the best chunks go to evidence selection anyway (chat.evidence_min_score still decides).",
    )
    history_turns: int = Field(6, ge=0, le=50, description="Earlier turns of the session put into the prompt.")
    rewrite_followups: bool = Field(True, description="Rewrite follow-up questions into standalone queries before retrieval.")
    context_tokens: int | None = Field(
        None,
        ge=64,
        description="Token budget for retrieved context. Default: what is left of n_ctx after the rest of the prompt and max_tokens.",
    )
    answer_mode: Literal["auto", "generative", "extractive"] = Field(
        "auto",
        description="How answers are made from the evidence the server selects. extractive: composed from the "
        "evidence (ragtune/grounding/compose.py), no model call; generative: the model phrases the answer from it; auto: "
        "the model phrases it when its measured pass rate reaches chat.min_model_pass_rate, verified against the evidence, "
        "extractive when verification fails or the model is not good enough.",
    )
    evidence_chunks: int = Field(6, ge=1, le=50, description="Relevant retrieved chunks whose sentences are scored as evidence.")
    known_questions: bool = Field(
        True,
        description="Also take the chunks answering the company's known example questions closest to the customer's "
        "(kept with the grounding model, ragtune/grounding/known.py) as evidence candidates, when retrieval missed them.",
    )
    evidence_sentences: int = Field(
        3, ge=1, le=8, description="Most evidence units (sentences, list items, rows) kept; they become the citations."
    )
    high_confidence: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Answerability (the grounding model's calibrated probability that the evidence answers the question) "
        "from which an answer's confidence is 'high' (else 'medium'; a hand-off is 'low'); from it on, a word of the "
        "question must also look surely like another company's product to hand the question off as one.",
    )
    grounding_model: str | None = Field(
        None,
        description="The grounding model (evidence selector, answerability, intent) as JSON, from `ragtune train selector`. "
        "Unset: the one trained on the bundled examples (ragtune/grounding/data/grounding.json).",
    )
    min_model_pass_rate: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Auto mode asks the model only when the serving model version's measured verified-pass rate (stored in "
        "the model registry by `ragtune train eval`) reaches this; otherwise it answers extractively at once. "
        "0 asks any model; generative mode always asks.",
    )
    min_model_fact_accuracy: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Auto mode also needs the answers the model phrased in that eval to hold the right fact this often "
        "(phrased_fact_accuracy; extractive answers reach 0.87-0.93 on the bundled sets): a model that phrases more "
        "answers but gets fewer right is not asked. 0 skips this check.",
    )
    answer_max_tokens: int = Field(
        160,
        ge=16,
        description="Most tokens the model may generate for a phrased answer (short answers loop less and come sooner).",
    )
    support_contact: str = Field(
        "support@northwind.example",
        description="How customers reach a person (an e-mail address, phone number or URL), named in hand-off texts. "
        "Empty: the texts point at the contact option the widget shows.",
    )
    messages: dict[str, str] = Field(
        {},
        description="Hand-off texts replacing the built-in ones, keyed '<language>.<kind>' (language en, de, fr; kind "
        "no_answer, person, angry, action, action_steps, other_company, language), e.g. {'en.no_answer': 'Let me get a colleague ...'}; "
        "{contact_clause} is replaced by chat.support_contact, {answer} (action_steps) by the self-service steps.",
    )
    max_message_chars: int = Field(4000, ge=1, description="Longest accepted user message; longer ones get a 413.")
    max_history_messages: int = Field(40, ge=0, description="Most messages accepted in one OpenAI-style request.")
    company_name: str = Field("Northwind Cloud", description="Company the assistant speaks for (used in the system prompt).")
    company_domains: list[str] = Field(
        ["northwind.example"],
        description="The company's own domains: e-mail addresses and links on them (subdomains included) may appear in "
        "answers, as may the hosts of widget-key origins and server.cors_origins. An evidence sentence carrying any other "
        "e-mail address, phone number or link is withheld, and answer text loses it (docs/ingestion-safety.md).",
    )
    allowed_contacts: list[str] = Field(
        ["+49 30 1234 5678"],
        description="More contacts answers may carry: e-mail addresses, phone numbers, URL prefixes "
        "(https://partner.example/help) or domains (partner.example). chat.support_contact and contacts written in "
        "chat.messages are allowed too.",
    )


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `ragtune serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `ragtune serve` listens on.")
    cors_origins: list[str] = Field(
        [],
        description="Origins allowed to call the API from a browser with any key (or, without keys, at all), on top of "
        "each widget key's own origins (auth.widget_keys[].origins).",
    )
    max_body_mb: float = Field(
        1.0,
        gt=0,
        description="Largest request body accepted, on every route but document uploads (server.max_upload_mb); "
        "checked against Content-Length and "
        "counted while the body streams in, so a larger one gets a 413 before it is buffered.",
    )
    max_upload_mb: float = Field(
        100.0,
        gt=0,
        description="Largest request body of a document upload or replace (/v1/admin/documents), all files together; "
        "each file is also held to ingest.max_file_mb.",
    )
    allowed_hosts: list[str] = Field(
        [],
        description="Host names this API answers under (its public name, e.g. api.shop.example), so a DNS-rebinding page "
        "cannot reach it under its own name; other Hosts get 400. Pages the server serves itself (/admin, /demo) are "
        "same-origin only under these names or a loopback name. Empty: any Host with keys; without keys loopback names only.",
    )
    trusted_proxies: list[str] = Field(
        [],
        description="Networks (CIDRs, e.g. 10.0.0.0/8, 127.0.0.1/32) of reverse proxies whose X-Forwarded-For is believed: "
        "for a request from one of them the client address (for the per-address rate limit and the access log) is the last "
        "hop not itself a trusted proxy. From any other peer the header is ignored and the socket's peer is the client "
        "(uvicorn's forwarded_allow_ips is set from this list; empty: proxy headers are never read).",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [normalise_origin(value) for value in values]

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return values


class StoreSettings(_Section):
    url: str | None = Field(
        None,
        description="Where the API keeps conversations, feedback, jobs and rate-limit counters. Unset: a SQLite file "
        "<data_dir>/conversations.sqlite3 (one machine); postgresql://user:password@host/db: Postgres, shared by "
        "several API replicas (needs psycopg).",
    )
    pool_size: int = Field(
        8,
        ge=1,
        le=200,
        description="Most Postgres connections one API process keeps open (the server's max_connections is shared by all replicas).",
    )


class ObservabilitySettings(_Section):
    log_format: Literal["json", "text"] = Field(
        "json",
        description="Log lines of `ragtune serve`: json (one object a line: one per request with method, route, status, "
        "latency, request id, caller, answer mode, index version, tokens) or text (the same fields as key=value).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged by `ragtune serve`.")
    log_messages: bool = Field(
        False,
        description="Also log the customer's message and the answer text in each request's line. Off by default: "
        "messages can hold personal data.",
    )
