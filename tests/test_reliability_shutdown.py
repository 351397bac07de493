"""SIGTERM to a real `tunedesk serve` while answers stream: each one finishes within the grace
period or ends with an `error` event (shutting_down) and its `final`, never silently cut."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import make_engine, migrate, session_factory
from service.store.models import DEFAULT_TENANT_ID, Message
from service.store.tenants import KeySpec, TenantStore
from tests.conftest import copy_index, free_port, start_child

LONG = "my router shows error E5, what do I do?"
SHORT = "my router shows error E5, answer briefly please"
TOKEN_DELAY_S = 0.1
GRACE_S = 3.0
Event = tuple[str, dict[str, Any]]


class SlowVLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that streams one word every TOKEN_DELAY_S: 15 words for
    SHORT, 600 for anything else (a long answer on a slow GPU)."""

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": "tiny", "object": "model"}]})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        words = 15 if "answer briefly please" in body else 600
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for i in range(words):
                end = "." if i % 8 == 7 else ""
                self._chunk({"content": f" word{i}{end}"}, None)
                time.sleep(TOKEN_DELAY_S)
            self._chunk({}, "stop")
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service closed the stream: generation stops

    def _chunk(self, delta: dict[str, str], finish: str | None) -> None:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "tiny"}
        self.wfile.write(f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n".encode())
        self.wfile.flush()

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def slow_vllm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowVLLM)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def api_key(data_dir: Path) -> str:
    engine = make_engine(f"sqlite:///{data_dir / 'tunedesk.db'}")
    migrate(engine)
    _, key = TenantStore(session_factory(engine)).create_key(
        DEFAULT_TENANT_ID, KeySpec("shutdown test", "secret", ["chat"], None)
    )
    engine.dispose()
    return str(key)


def wait_until_serving(url: str, process: Any) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, "tunedesk serve exited early"
        assert time.monotonic() < deadline, "tunedesk serve did not start"
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)


def read_events(response: httpx.Response, first_token: threading.Event) -> list[Event]:
    events: list[Event] = []
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
            if name == "token":
                first_token.set()
    return events


def stream(url: str, key: str, question: str, first_token: threading.Event) -> list[Event]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    body = {"message": question}
    with httpx.stream("POST", f"{url}/v1/chat", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        return read_events(r, first_token)


def test_sigterm_mid_stream_finishes_or_flags_every_answer(
    tmp_path: Path, tiny_model_dir: Path, sample_index_dir: Path, slow_vllm: str
) -> None:
    copy_index(sample_index_dir, tmp_path / "qdrant")
    key = api_key(tmp_path)
    port = free_port()
    env = os.environ | {
        "TUNEDESK_DATA_DIR": str(tmp_path),
        "TUNEDESK_MODEL__PATH": str(tiny_model_dir),
        "TUNEDESK_KNOWLEDGE__QDRANT_PATH": str(tmp_path / "qdrant"),
        "TUNEDESK_ENGINE__KIND": "vllm",
        "TUNEDESK_ENGINE__VLLM_URL": slow_vllm,
        "TUNEDESK_ENGINE__SERVED_MODEL_NAME": "tiny",
        "TUNEDESK_ENGINE__MAX_CONCURRENCY": "4",
        "TUNEDESK_CHAT__SHUTDOWN_GRACE_S": str(GRACE_S),
    }
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    with log, start_child(cmd, env=env, stdout=log, stderr=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process)
        # one answer first: two first questions at once race to open the knowledge store
        warm = httpx.post(
            f"{url}/v1/chat",
            json={"message": SHORT},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert warm.status_code == 200, warm.text
        results: dict[str, list[Event]] = {}
        started = {"long": threading.Event(), "short": threading.Event()}
        questions = {"long": LONG, "short": SHORT}
        threads = [
            threading.Thread(
                target=lambda n=name: results.__setitem__(
                    n, stream(url, key, questions[n], started[n])
                )
            )
            for name in questions
        ]
        for thread in threads:
            thread.start()
        assert all(e.wait(60) for e in started.values()), "the answers did not start"
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        threads[0].join(timeout=60)
        cut_after = time.monotonic() - signalled
        threads[1].join(timeout=60)
        # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()

    short, long = results["short"], results["long"]
    assert [name for name, _ in short][-1] == "final" and "error" not in dict(short)
    assert "word14" in short[-1][1]["answer"]  # finished within the grace period, whole
    names = [name for name, _ in long]
    assert names[-2:] == ["error", "final"], names[-5:]
    assert long[-2][1]["error"]["code"] == "shutting_down"
    assert long[-1][1]["answer"].startswith("word0")
    assert GRACE_S <= cut_after < GRACE_S + 10
    with Session(make_engine(f"sqlite:///{tmp_path / 'tunedesk.db'}")) as s:
        stored = list(s.scalars(select(Message).where(Message.role == "assistant")))
    cut = [bool(m.error and "restarting" in m.error) for m in stored]
    assert sorted(cut) == [False, False, True]  # the warm-up, the short answer, the long one


def slow_settings(
    tmp_path: Path, model: Path, index: Path, vllm: str, grace_s: float = 10.0
) -> Settings:
    """The app on the slow engine, with its own copy of the sample index."""
    copy_index(index, tmp_path / "qdrant")
    return Settings(
        data_dir=tmp_path,
        model={"path": model},  # type: ignore[arg-type]
        knowledge={"qdrant_path": tmp_path / "qdrant"},  # type: ignore[arg-type]
        engine={"kind": "vllm", "vllm_url": vllm, "served_model_name": "tiny"},  # type: ignore[arg-type]
        chat={"shutdown_grace_s": grace_s},  # type: ignore[arg-type]
    )


def test_a_keyed_answer_whose_client_went_away_is_finished_and_replayed(
    tmp_path: Path, tiny_model_dir: Path, sample_index_dir: Path, slow_vllm: str, embedder: Any
) -> None:
    """The widget retries a dropped stream with the same Idempotency-Key: the answer goes on
    being written after the drop, and the retry gets all of it, stored once."""
    from tests.test_openai_compat import live_server

    settings = slow_settings(tmp_path, tiny_model_dir, sample_index_dir, slow_vllm)
    with live_server(settings, embedder) as (url, app):
        key = app.state.components.tenants.create_key(
            DEFAULT_TENANT_ID, KeySpec("widget", "secret", ["chat"])
        )[1]
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "drop-1"}
        body = {"message": SHORT}
        with httpx.stream(
            "POST",
            f"{url}/v1/chat",
            json=body,
            timeout=60,
            headers=headers | {"Accept": "text/event-stream"},
        ) as r:
            assert r.status_code == 200
            next(line for line in r.iter_lines() if line.startswith("event: token"))
        # the connection is closed after the first token; the answer is 1.5 s long
        deadline = time.monotonic() + 30
        while (
            retry := httpx.post(f"{url}/v1/chat", json=body, headers=headers)
        ).status_code == 409:
            assert retry.json()["error"]["code"] == "idempotency_in_progress"
            assert time.monotonic() < deadline, "the dropped answer was never finished"
            time.sleep(0.3)
        assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
        assert "word14" in retry.json()["answer"] and retry.json()["finish_reason"] == "stop"
        # without a key, going away stops the generation and keeps what was written
        plain = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        with httpx.stream(
            "POST", f"{url}/v1/chat", json={"message": LONG}, headers=plain, timeout=60
        ) as r:
            next(line for line in r.iter_lines() if line.startswith("event: token"))
        time.sleep(2)
    with Session(make_engine(f"sqlite:///{tmp_path / 'tunedesk.db'}")) as s:
        stored = list(s.scalars(select(Message).order_by(Message.created_at)))
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1].content == retry.json()["answer"]  # stored once, whole
    assert "word14" not in stored[3].content  # the unkeyed one stopped early


def test_a_keyed_answer_whose_client_went_away_is_cut_and_stored_at_shutdown(
    tmp_path: Path, tiny_model_dir: Path, sample_index_dir: Path, slow_vllm: str, embedder: Any
) -> None:
    """Nobody reads it, so no stream sees the shutdown: the app's own shutdown gives it the
    grace period, then cuts it like a streamed answer, stores it and completes its key."""
    from service.chat.replies import SHUTDOWN_MARGIN_S
    from service.store.models import IdempotencyRecord
    from tests.test_openai_compat import live_server

    settings = slow_settings(tmp_path, tiny_model_dir, sample_index_dir, slow_vllm, grace_s=1.0)
    with live_server(settings, embedder) as (url, app):
        key = app.state.components.tenants.create_key(
            DEFAULT_TENANT_ID, KeySpec("widget", "secret", ["chat"])
        )[1]
        headers = {
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": "drop-long",
            "Accept": "text/event-stream",
        }
        with httpx.stream(
            "POST", f"{url}/v1/chat", json={"message": LONG}, headers=headers, timeout=60
        ) as r:
            next(line for line in r.iter_lines() if line.startswith("event: token"))
        left = time.monotonic()
    took = time.monotonic() - left  # the 600-word answer would take a minute
    assert took < 1.0 + SHUTDOWN_MARGIN_S + 10, took
    with Session(make_engine(f"sqlite:///{tmp_path / 'tunedesk.db'}")) as s:
        answer = s.scalars(select(Message).where(Message.role == "assistant")).one()
        record = s.scalars(select(IdempotencyRecord)).one()
    assert answer.content.startswith("word0") and "word500" not in answer.content
    assert answer.error is not None and "restarting" in answer.error
    assert record.status_code == 200 and record.response is not None  # a retry replays it
    assert record.response["finish_reason"] == "error"
