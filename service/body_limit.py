"""Refuse request bodies over the size limit, however they are sent.

A `Content-Length` over the limit is refused before a byte of the body is read. A body without
one (`Transfer-Encoding: chunked`) is counted as the server hands it over: the moment it passes
the limit the client gets the same 413 and the app reads no more of it, so a huge body costs the
server one chunk of memory, not the whole body.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body

UPLOAD_PATH = "/v1/knowledge/documents"
UPLOAD_FILES = 10  # an upload may carry several documents, each up to the upload limit


class BodyTooLarge(Exception):
    """Raised to the app when the body it is reading passes the limit (the 413 is already sent)."""


class BodyLimit:
    """ASGI middleware: `limit` bytes per request body, `upload_limit` per uploaded document."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        uploading = scope.get("path") == UPLOAD_PATH
        limit = self.upload_limit * UPLOAD_FILES if uploading else self.limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, f"Request body is {declared} bytes; the limit is {limit} bytes.")
            return
        counted = _CountedBody(receive, send, limit)
        try:
            await self.app(scope, counted.receive, counted.send)
        except BodyTooLarge:
            if not counted.refused:
                raise  # not ours: some other body's limit


class _CountedBody:
    """The request's receive and send, with the body counted and the 413 sent when it is over."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._read = 0
        self._started = False
        self.refused = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if self._read > self._limit:
                await self._refuse()
                raise BodyTooLarge(f"the body passed {self._limit} bytes")
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the client has its 413; whatever the app makes of the cut-off body is moot
        self._started = True
        await self._send(message)

    async def _refuse(self) -> None:
        if self._started:  # the app answered before reading all of the body: too late for 413
            return
        self.refused = True
        message = f"Request body is over the limit of {self._limit} bytes."
        await _refuse(self._send, message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(send: Send, message: str) -> None:
    payload = json.dumps(error_body("invalid_request", message, "body_too_large")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
