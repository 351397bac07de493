"""The body-size limit holds for bodies sent without a length (`Transfer-Encoding: chunked`).

Sent over a real HTTP connection to a live uvicorn server, since only a real server hands the
app a chunked body piece by piece.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from knowledge.embedding import Embedder
from service.config import Settings
from service.store.tenants import KeySpec
from tests.test_openai_compat import live_server

E5 = "my router shows error E5, what do I do?"
UPLOAD_LIMIT = 64 * 1024  # per document; an upload may be ten times that


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body as an iterator, so httpx sends it chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def server(settings: Settings, embedder: Embedder) -> Iterator[tuple[httpx.Client, Settings]]:
    """A live server with a small upload limit, and a client holding an all-scopes key."""
    knowledge = settings.knowledge.model_copy(update={"max_upload_bytes": UPLOAD_LIMIT})
    settings = settings.model_copy(update={"knowledge": knowledge})
    with live_server(settings, embedder) as (base, app):
        tenants = app.state.components.tenants
        key = tenants.create_key("default", KeySpec("limit", "secret", ["chat", "admin"]))[1]
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            yield client, settings


def assert_too_large(r: httpx.Response) -> None:
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request", "body_too_large")
    assert "limit" in error["message"]


def test_a_chunked_json_body_over_the_limit_is_refused(
    server: tuple[httpx.Client, Settings],
) -> None:
    client, settings = server
    # valid JSON, so without the limit it would reach the chat service
    body = json.dumps({"message": "x" * (8 * settings.max_body_bytes)}).encode()
    json_type = {"Content-Type": "application/json"}
    assert_too_large(client.post("/v1/chat", content=chunks(body), headers=json_type))
    assert client.get("/v1/conversations").json()["data"] == []  # nothing was stored
    small = json.dumps({"message": E5}).encode()
    r = client.post("/v1/chat", content=chunks(small, 8), headers=json_type)
    assert r.status_code == 200, r.text  # chunked bodies under the limit still work


def test_a_chunked_upload_over_the_limit_is_refused(
    server: tuple[httpx.Client, Settings],
) -> None:
    client, _ = server
    boundary = "tunedesk-boundary"
    page = b"# Huge page\n\n" + b"words " * (2 * UPLOAD_LIMIT)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.md"\r\n'
        "Content-Type: text/markdown\r\n\r\n"
    )
    body = head.encode() + page + f"\r\n--{boundary}--\r\n".encode()
    assert len(body) > 10 * UPLOAD_LIMIT
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = client.post("/v1/knowledge/documents", content=chunks(body), headers=multipart)
    assert_too_large(r)
    assert "huge.md" not in client.get("/v1/knowledge/sources").text
