"""Issue 13's faults through the real app: a busy or unreachable engine, a database outage."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.config import Settings
from service.engines.vllm import VLLMEngine
from service.store.models import Conversation, Message
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    _fresh_postgres_database,
    copy_index,
    free_port,
    make_settings,
    new_key,
)

QUESTION = "my router shows error E5, what do I do?"
RETRY = "E5 again on my router, what now?"


def stored(settings: Settings) -> tuple[list[Conversation], list[Message]]:
    with Session(create_engine(settings.db_url)) as s:
        return list(s.scalars(select(Conversation))), list(s.scalars(select(Message)))


@contextmanager
def stalled_upstream() -> Iterator[tuple[str, threading.Event, Callable[[], None]]]:
    """A 'vLLM' that accepts connections and never answers: its one slot stays taken."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted, held = threading.Event(), []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            accepted.set()

    def hang_up() -> None:
        listener.close()
        for connection in held:
            connection.close()  # the request waiting on it now fails

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", accepted, hang_up
    finally:
        hang_up()
        thread.join(timeout=5)


@contextmanager
def app_on(settings: Settings, embedder: Embedder, engine: VLLMEngine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, Overrides(engine=engine, embedder=embedder))) as client:
        client.headers["Authorization"] = f"Bearer {new_key(client)}"
        yield client


def assert_retry_after(response: Any, code: str) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    error = dict(response.json()["error"])
    assert error["code"] == code
    assert int(response.headers["Retry-After"]) == error["retry_after_s"] > 0
    return error


def test_a_busy_engine_stores_nothing_so_a_retry_is_the_first_try(
    settings: Settings, embedder: Embedder
) -> None:
    with ExitStack() as stack:
        url, accepted, hang_up = stack.enter_context(stalled_upstream())
        one_slot = VLLMEngine(url, "tiny", max_concurrency=1, max_queue=0, max_retries=0)
        client = stack.enter_context(app_on(settings, embedder, one_slot))
        pool = stack.enter_context(ThreadPoolExecutor(1))
        first = pool.submit(client.post, "/v1/chat", json={"message": QUESTION})
        assert accepted.wait(60), "the first question never reached the engine"
        before = stored(settings)

        busy = client.post("/v1/chat", json={"message": RETRY}, headers={"Idempotency-Key": "k1"})
        assert_retry_after(busy, "engine_busy")
        started = before[0][0].id
        follow_up = {"message": RETRY, "conversation_id": started}
        assert_retry_after(client.post("/v1/chat", json=follow_up), "engine_busy")
        streamed = client.post(
            "/v1/chat", json={"message": RETRY}, headers={"Accept": "text/event-stream"}
        )
        assert_retry_after(streamed, "engine_busy")

        conversations, messages = stored(settings)
        assert [c.id for c in conversations] == [c.id for c in before[0]]  # no empty ones
        assert [m.content for m in messages] == [QUESTION]  # no question, no empty answer
        hang_up()  # the first question fails now, and still gets its 503
        assert first.result(timeout=60).status_code == 503


def test_an_unreachable_engine_says_when_to_retry(settings: Settings, embedder: Embedder) -> None:
    down = VLLMEngine(f"http://127.0.0.1:{free_port()}/v1", "tiny", max_retries=0)
    with app_on(settings, embedder, down) as client:
        error = assert_retry_after(
            client.post("/v1/chat", json={"message": QUESTION}), "engine_unavailable"
        )
        assert "unreachable" in error["message"]


@pytest.fixture(scope="module")
def postgres_client(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
    sample_index_dir: Path,
    embedder: Embedder,
) -> Iterator[tuple[TestClient, str]]:
    """The app on a fresh PostgreSQL database, and that database's name; 500s are responses."""
    tmp = tmp_path_factory.mktemp("postgres-outage")
    copy_index(sample_index_dir, tmp / "qdrant")
    for url in _fresh_postgres_database():
        settings = make_settings(tmp, tiny_model_dir, tmp / "qdrant", database_url=url)
        app = create_app(settings, Overrides(embedder=embedder))
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {new_key(client)}"
            yield client, url.rsplit("/", 1)[1]


@contextmanager
def connections_refused(database: str) -> Iterator[None]:
    """PostgreSQL refuses new connections to `database` and drops its open ones, as in a
    restart, while the shared server keeps serving every other database."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


@pytest.mark.postgres
def test_a_postgres_outage_is_a_503_with_retry_after_then_recovers(
    postgres_client: tuple[TestClient, str],
) -> None:
    client, database = postgres_client
    assert client.post("/v1/conversations", json={}).status_code == 201
    with connections_refused(database):
        for method, path in [("GET", "/v1/conversations"), ("POST", "/v1/chat")]:
            response = client.request(method, path, json={"message": QUESTION})
            error = assert_retry_after(response, "database_unavailable")
            assert response.headers["content-type"] == "application/json"
            assert error["type"] == "database_unavailable" and "retry" in error["message"]
    recovered = client.get("/v1/conversations")  # the pool's pre-ping replaces dead connections
    assert recovered.status_code == 200, recovered.text
    assert len(recovered.json()["data"]) == 1


@pytest.mark.postgres
def test_an_unexpected_error_is_a_500_in_the_envelope(
    postgres_client: tuple[TestClient, str],
) -> None:
    def broken() -> None:
        raise RuntimeError("internal detail: /srv/tunedesk/secret.key")

    client, _ = postgres_client
    client.app.add_api_route("/v1/broken", broken)  # type: ignore[attr-defined]
    response = client.get("/v1/broken")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("internal_error", "internal_error")
    assert "secret" not in response.text
