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

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """The service's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "tunedesk_http_request_duration_seconds",
            "HTTP request latency (to the last byte for streams).",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft_seconds = Histogram(
            "tunedesk_time_to_first_token_seconds",
            "From receiving a message to the first answer token.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retrieval_seconds = Histogram(
            "tunedesk_retrieval_duration_seconds",
            "Knowledge-base search latency.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.completion_tokens = Counter(
            "tunedesk_completion_tokens", "Tokens generated.", registry=self.registry
        )
        self.prompt_tokens = Counter(
            "tunedesk_prompt_tokens", "Prompt tokens processed.", registry=self.registry
        )
        self.handoffs = Counter(
            "tunedesk_handoffs",
            "Conversations handed to a human.",
            ["reason"],
            registry=self.registry,
        )
        self.guardrails = Counter(
            "tunedesk_guardrail_answers",
            "Answers given without the model, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.ratings = Counter(
            "tunedesk_ratings", "Answer ratings.", ["rating"], registry=self.registry
        )

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
        metrics.request_seconds.labels(
            request.method, _route_of(request), str(response.status_code)
        ).observe(time.perf_counter() - started)
        return response
