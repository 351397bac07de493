"""Prometheus metrics, one registry per app so several apps (tests) can live in one process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

ANSWER_LABELS = ["tenant", "product", "model_version", "channel"]
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


def version_label(model_version: str | None, adapter: str | None) -> str:
    """The model_version label: the version's name, else its adapter, else `base`."""
    return model_version or adapter or "base"


class Metrics:
    """The service's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "tunedesk_http_request_duration_seconds",
            "HTTP request latency (to the last byte for streams).",
            ["method", "route", "status", "tenant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft_seconds = Histogram(
            "tunedesk_time_to_first_token_seconds",
            "From receiving a message to the first token of a model's answer.",
            ANSWER_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retrieval_seconds = Histogram(
            "tunedesk_retrieval_duration_seconds",
            "Knowledge-base search latency.",
            ["tenant", "product"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.completion_tokens = self._counter(
            "tunedesk_completion_tokens", "Tokens generated.", ANSWER_LABELS
        )
        self.prompt_tokens = self._counter(
            "tunedesk_prompt_tokens", "Prompt tokens processed.", ANSWER_LABELS
        )
        self.answers = self._counter(
            "tunedesk_answers",
            "Answers given, by outcome (stop, length, handoff, out_of_scope, error, ...).",
            [*ANSWER_LABELS, "outcome"],
        )
        self.cleaned_answers = self._counter(
            "tunedesk_cleaned_answers",
            "Answers whose model text was cut (cut_debris, cut_repeat) or replaced by the "
            "low-confidence reply (prompt_leak), by reason and rule.",
            ["tenant", "product", "model_version", "reason", "rule", "replaced"],
        )
        self.handoffs = self._counter(
            "tunedesk_handoffs",
            "Conversations handed to a human, by the model version they were routed to.",
            ["tenant", "product", "model_version", "channel", "reason"],
        )
        self.guardrails = self._counter(
            "tunedesk_guardrail_answers",
            "Answers given without the model, by reason.",
            ["tenant", "reason"],
        )
        self.ratings = self._counter(
            "tunedesk_ratings", "Answer ratings (good/bad).", [*ANSWER_LABELS, "rating"]
        )
        self.webhook_deliveries = self._counter(
            "tunedesk_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, failed_attempt, gave_up).",
            ["tenant", "event", "outcome"],
        )

    def _counter(self, name: str, doc: str, labels: list[str]) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")  # set by the router once a route matched
    return str(getattr(route, "path", "unmatched"))


def install_request_metrics(app: FastAPI, metrics: Metrics) -> None:
    """Time every request, labelled by route template (not raw path, to bound cardinality)."""

    @app.middleware("http")
    async def _timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        principal = getattr(request.state, "principal", None)
        tenant = principal.tenant_id if principal is not None else ""
        metrics.request_seconds.labels(
            request.method, _route_of(request), str(response.status_code), tenant
        ).observe(time.perf_counter() - started)
        return response
