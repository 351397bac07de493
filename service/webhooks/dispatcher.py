"""Sends webhook deliveries in the background: signed, retried with backoff, logged, counted.

Events become delivery rows first (in the request that caused them), so nothing is lost when
the process stops: the next start finds the due rows in the database and sends them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from service.config import WebhookSettings
from service.errors import WebhookTargetForbidden
from service.events import Event
from service.metrics import Metrics
from service.store.models import WebhookDelivery, WebhookEndpoint, utcnow
from service.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from service.webhooks.store import Attempt, WebhookStore
from service.webhooks.targets import PinnedTarget, TargetPolicy, TargetUnresolved

log = logging.getLogger(__name__)

USER_AGENT = "tunedesk-webhooks/1"
BATCH = 50  # deliveries claimed per pass
LEASE_MARGIN_S = 30.0  # a claimed attempt is someone else's to retry only after timeout + this
ERROR_CHARS = 300  # last_error names what went wrong; it never quotes what a receiver sent


@dataclass(frozen=True)
class Reply:
    """What a receiver answered; status_code None when no answer came."""

    status_code: int | None
    error: str | None = None
    retry_after_s: float | None = None
    final: bool = False  # no later attempt can do better (a forbidden target)


class WebhookDispatcher:
    """Turns events into delivery rows and sends due rows until stopped."""

    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings,
        metrics: Metrics,
        targets: TargetPolicy | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._targets = targets or TargetPolicy(settings.allowed_hosts)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def on_event(self, event: Event) -> None:
        """EventBus subscriber: store one delivery per listening endpoint, then send soon."""
        rows = await asyncio.to_thread(self._store.record_event, event)
        if rows:
            self.wake()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (safe from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        """Send in a background task on the running loop, until aclose()."""
        if self._loop is not None:
            return  # a second lifespan of the same app (a test client) shares this one
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=self._settings.timeout_s, follow_redirects=False)
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def aclose(self) -> None:
        """Stop sending; an attempt cut short is made again once its claim expires."""
        if self._loop is not asyncio.get_running_loop():
            return  # started by another lifespan, which stops it
        assert self._task is not None and self._client is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        await self._client.aclose()
        self._loop = self._task = self._client = None

    async def send_due(self) -> int:
        """One attempt for every delivery that is due; returns how many were attempted."""
        lease = timedelta(seconds=self._settings.timeout_s + LEASE_MARGIN_S)
        due = await asyncio.to_thread(self._store.claim_due, utcnow(), lease, BATCH)
        await asyncio.gather(*(self._attempt(d) for d in due))
        return len(due)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.send_due()
            except Exception:
                log.exception("webhook dispatch pass failed; the next poll tries again")
                sent = 0
            if sent < BATCH:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)

    async def _attempt(self, delivery: WebhookDelivery) -> None:
        endpoint = await asyncio.to_thread(self._store.endpoint_for, delivery)
        if endpoint.active:
            reply = await self._post(endpoint, delivery)
            attempt = judge(reply, delivery.attempts + 1, self._settings, utcnow())
        else:  # deleted while this attempt was claimed
            attempt = Attempt("failed", None, "endpoint deleted", None)
        self._report(delivery, attempt)  # the attempt happened, whether or not its row is saved
        await asyncio.to_thread(self._store.record_attempt, delivery.id, attempt)
        if attempt.next_attempt_at is not None:
            delay = (attempt.next_attempt_at - utcnow()).total_seconds()
            asyncio.get_running_loop().call_later(max(delay, 0.0), self.wake)

    async def _post(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> Reply:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(endpoint.secret, body),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id,
        }
        try:
            targets = await self._targets.pin(endpoint.url)  # checked after resolution
        except WebhookTargetForbidden as exc:
            return Reply(None, f"refused: {exc.message}"[:ERROR_CHARS], final=True)
        except TargetUnresolved as exc:
            return Reply(None, f"DNS: {exc}"[:ERROR_CHARS])
        reply = Reply(None, "no address to connect to")
        for target in targets:  # like a plain connect: the next address when one refuses
            reply = await self._send(target, body, headers)
            if reply.status_code is not None or reply.error != "ConnectError":
                break
        return reply

    async def _send(self, target: PinnedTarget, body: bytes, headers: dict[str, str]) -> Reply:
        assert self._client is not None, "start() the dispatcher first"
        try:
            response = await self._client.post(
                target.url,
                content=body,
                headers={**headers, "Host": target.host_header},
                extensions=target.extensions,
            )
        except httpx.HTTPError as exc:  # its text can quote the receiver's bytes: name it only
            return Reply(None, type(exc).__name__)
        return _reply_of(response)

    def _report(self, delivery: WebhookDelivery, attempt: Attempt) -> None:
        outcome = {"delivered": "delivered", "pending": "failed_attempt"}.get(
            attempt.status, "gave_up"
        )
        self._metrics.webhook_deliveries.labels(delivery.tenant_id, delivery.event, outcome).inc()
        level = logging.INFO if outcome == "delivered" else logging.WARNING
        log.log(
            level,
            "webhook delivery %s (%s, tenant %s) attempt %d: %s, status %s, error %s, next %s",
            delivery.id,
            delivery.event,
            delivery.tenant_id,
            delivery.attempts + 1,
            outcome,
            attempt.status_code,
            attempt.error,
            attempt.next_attempt_at,
        )


def _reply_of(response: httpx.Response) -> Reply:
    if response.is_success:
        return Reply(response.status_code)
    error = f"HTTP {response.status_code} {httpx.codes.get_reason_phrase(response.status_code)}"
    retry_after = response.headers.get("Retry-After", "")
    seconds = float(retry_after) if retry_after.isdigit() else None
    return Reply(response.status_code, error, seconds)


def retryable(reply: Reply) -> bool:
    """No answer, a timeout, 429 and 5xx may pass; any other status will not change."""
    code = reply.status_code
    if reply.final:
        return False
    return code is None or code == 429 or code >= 500


def judge(reply: Reply, number: int, settings: WebhookSettings, now: datetime) -> Attempt:
    """What attempt `number` (1-based) means for the delivery: done, failed, or retry when."""
    code = reply.status_code
    if code is not None and 200 <= code < 300:
        return Attempt("delivered", code, None, None)
    if not retryable(reply) or number >= settings.max_attempts:
        return Attempt("failed", code, reply.error, None)
    delay = backoff_s(number, settings, reply.retry_after_s)
    return Attempt("pending", code, reply.error, now + timedelta(seconds=delay))


def backoff_s(number: int, settings: WebhookSettings, retry_after_s: float | None = None) -> float:
    """Exponential backoff after attempt `number`, with jitter, capped; honours Retry-After."""
    ceiling = min(settings.backoff_cap_s, settings.backoff_base_s * 2 ** (number - 1))
    delay = ceiling * random.uniform(0.5, 1.0)  # jitter spreads retries of a receiver's outage
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, settings.backoff_cap_s))
    return delay
