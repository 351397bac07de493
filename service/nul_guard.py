"""Refuse text the database cannot store before it reaches the database.

PostgreSQL text columns cannot hold U+0000, and no database encodes a lone UTF-16 surrogate
(a `\\ud800` escape without its pair) as UTF-8, so either in a path, a query or a JSON body would
otherwise surface as a server error deep in the store, after part of the request was stored.
JSON bodies are small (they are under the body-size limit), so they are read once here and
replayed to the app; uploads pass untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body

MESSAGE = "Text must not contain NUL (U+0000) characters; remove them and send again."
SURROGATE_MESSAGE = (
    "Text must not contain a lone UTF-16 surrogate (an escape such as \\ud800 without its pair); "
    "send well-formed Unicode, escaping characters outside the BMP as a surrogate pair."
)
NUL = (MESSAGE, "nul_character")
LONE_SURROGATE = (SURROGATE_MESSAGE, "lone_surrogate")
# Only these escapes can decode to text the database refuses; other bodies are not parsed here.
RISKY_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")
SURROGATE = re.compile("[\\ud800-\\udfff]")  # json.loads joins a valid pair into one character


class NulGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope.get("path", "")) or b"%00" in scope.get("query_string", b""):
            await _refuse(send, NUL)
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if refusal := _refusal(body):
            await _refuse(send, refusal)
            return
        await self.app(scope, _replay(body, receive), send)


def _has_nul(path: str) -> bool:
    return "\x00" in path


def _refusal(body: bytes) -> tuple[str, str] | None:
    # `\\u0000` in the bytes is the harmless text backslash-u0000: only decoded strings count.
    if b"\x00" in body:
        return NUL
    if not RISKY_ESCAPE.search(body):
        return None
    try:
        document = json.loads(body)
    except ValueError:  # not JSON after all: the app answers it as such
        return None
    for text in _strings(document):
        if "\x00" in text:
            return NUL
        if SURROGATE.search(text):
            return LONE_SURROGATE
    return None


def _strings(value: object) -> Iterator[str]:
    """Every string in a decoded JSON document, object keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_json(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    return b"json" in headers.get(b"content-type", b"")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # then wait for the disconnect, as the server would send
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(send: Send, refusal: tuple[str, str]) -> None:
    message, code = refusal
    payload = json.dumps(error_body("invalid_request", message, code)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
