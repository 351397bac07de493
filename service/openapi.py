"""The OpenAPI document: every operation documents the one error envelope it really returns."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "code"],
            "properties": {
                "type": {"type": "string", "example": "invalid_request"},
                "message": {"type": "string", "example": "message: must not be empty"},
                "code": {"type": "string", "example": "validation_error"},
                "retry_after_s": {
                    "type": "integer",
                    "description": "With 429 and 503: seconds to wait, as in Retry-After.",
                    "example": 5,
                },
            },
        }
    },
}
ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing, unknown, revoked or expired API key",
    "403": "The key lacks the scope, or a widget key came from another origin",
    "404": "Not found (also: another tenant's resource)",
    "409": "Conflict with the resource's state",
    "413": "Request body too large",
    "422": "Invalid request: the message says which field and why",
    "429": "Rate limit reached: retry after `Retry-After` seconds",
    "500": "Internal error: logged on the server; the envelope carries no details",
    "503": "The engine is busy or down, the database is unavailable, or the server is "
    "shutting down: retry after `Retry-After` seconds",
}
PUBLIC = {"/healthz", "/metrics"}
DOCS_ASSETS = "/docs/assets"  # Swagger UI's files, from the swagger-ui-bundle-v2 package


def install_openapi(app: FastAPI) -> None:
    """Replace FastAPI's default 422 schema with the envelope and document the other errors."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            _document_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_docs(app)


def install_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from files served here, so it works without internet access."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.add_api_route("/docs", docs, include_in_schema=False)


async def docs(request: Request) -> HTMLResponse:
    """Swagger UI for the calling app. A module-level function on purpose: FastAPI caches every
    endpoint function process-wide, so one that closed over `app` would keep each app alive."""
    app: FastAPI = request.app
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} API",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
    )


def _document_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema.get("paths", {}).items():
        if path in PUBLIC:
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses[status] = {
                    "description": description,
                    "content": {"application/json": {"schema": ref}},
                }
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "td_sk_… or td_pk_… key"}
    }
    schema["security"] = [{"bearer": []}]
