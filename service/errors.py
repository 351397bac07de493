"""Typed domain errors and the one JSON error envelope every response uses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class TunedeskError(Exception):
    """Base class: carries the HTTP status and a stable machine-readable code."""

    status_code = 500
    error_type = "internal_error"
    code = "internal_error"
    retry_after_s: int | None = None  # when a retry may succeed; sent as Retry-After

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers

    def response_headers(self) -> dict[str, str] | None:
        """The headers to send: the raiser's own, plus the class's Retry-After advice."""
        if self.retry_after_s is None or "Retry-After" in (self.headers or {}):
            return self.headers
        return {**(self.headers or {}), "Retry-After": str(self.retry_after_s)}


class InvalidRequest(TunedeskError):
    status_code = 422
    error_type = "invalid_request"
    code = "invalid_request"


class Unauthorized(TunedeskError):
    status_code = 401
    error_type = "unauthorized"
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(TunedeskError):
    status_code = 403
    error_type = "forbidden"
    code = "forbidden"


class NotFound(TunedeskError):
    status_code = 404
    error_type = "not_found"
    code = "not_found"


class ConversationNotFound(NotFound):
    code = "conversation_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class Conflict(TunedeskError):
    status_code = 409
    error_type = "conflict"
    code = "conflict"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"


class WebhookTargetForbidden(InvalidRequest):
    code = "webhook_target_forbidden"


class RateLimited(TunedeskError):
    status_code = 429
    error_type = "rate_limited"
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class UnknownProduct(InvalidRequest):
    code = "unknown_product"


class AdapterNotFound(NotFound):
    code = "adapter_not_found"


class InvalidAdapter(InvalidRequest):
    code = "invalid_adapter"


class EngineUnavailable(TunedeskError):
    status_code = 503
    error_type = "engine_unavailable"
    code = "engine_unavailable"
    retry_after_s: int | None = 10  # a restarting vLLM server is usually back within seconds


class EngineBusy(EngineUnavailable):
    code = "engine_busy"


class ModelNotPrepared(EngineUnavailable):
    code = "model_not_prepared"
    retry_after_s = None  # waiting does not prepare the model; `tunedesk model prepare` does


class ShuttingDown(TunedeskError):
    """The server was told to stop and the grace period for answers in flight ran out."""

    status_code = 503
    error_type = "shutting_down"
    code = "shutting_down"
    retry_after_s: int | None = 5  # another replica, or this one restarted


class DatabaseUnavailable(TunedeskError):
    status_code = 503
    error_type = "database_unavailable"
    code = "database_unavailable"
    retry_after_s: int | None = 5


def error_body(
    error_type: str, message: str, code: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The error envelope: {"error": {"type", "message", "code"}}, plus `retry_after_s` when
    the response says when to retry (429, 503), so clients need not parse headers."""
    error: dict[str, Any] = {"type": error_type, "message": message, "code": code}
    retry_after = (headers or {}).get("Retry-After", "")
    if retry_after.isdigit():
        error["retry_after_s"] = int(retry_after)
    return {"error": error}


def _describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "The request body is not valid JSON.", "malformed_json"
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return 422, "; ".join(parts), "validation_error"


async def _tunedesk_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TunedeskError)
    headers = exc.response_headers()
    body = error_body(exc.error_type, exc.message, exc.code, headers)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, message, code = _describe_validation(exc)
    return JSONResponse(error_body("invalid_request", message, code), status_code=status)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = error_body("http_error", str(exc.detail), code)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _database_outage(request: Request, exc: Exception) -> JSONResponse:
    """The database refused or lost the connection (a restart, a failover, a full pool)."""
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    outage = DatabaseUnavailable("The database is unavailable right now; retry shortly.")
    return await _tunedesk_error(request, outage)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: a 500 in the envelope; the exception itself goes to the log."""
    if isinstance(exc, DATABASE_OUTAGES):  # raised outside the routes (a middleware's query)
        return await _database_outage(request, exc)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "An internal error occurred; it has been logged. Retry, or report it if it persists."
    return JSONResponse(error_body("internal_error", message, "internal_error"), status_code=500)


# what a database outage raises, from connecting (OperationalError: refused, restarting, not
# accepting connections; InterfaceError: a connection closed under us) to waiting for the pool
DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, validation and unexpected ones included, as the JSON envelope."""
    app.add_exception_handler(TunedeskError, _tunedesk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, _database_outage)
    app.add_exception_handler(Exception, _unhandled)  # Starlette still re-raises it to log
