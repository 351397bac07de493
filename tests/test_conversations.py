"""The conversations API on SQLite and PostgreSQL: lifecycle, pagination, idempotent retries."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from service.store.models import Message
from tests.test_api import assert_error

E5 = "my router shows error E5, what do I do?"


def message_count(client: TestClient) -> int:
    url = client.app.state.components.settings.db_url  # type: ignore[attr-defined]
    with create_engine(url).connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Message)) or 0)


def sse(
    client: TestClient, url: str, body: dict[str, Any], **headers: str
) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    headers = {"Accept": "text/event-stream", **headers}
    with client.stream("POST", url, json=body, headers=headers) as r:
        assert r.status_code == 200, r.read()
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_a_conversation_from_start_to_resolution(db_client: TestClient) -> None:
    r = db_client.post(
        "/v1/conversations", json={"product": "halcyon-router-x1000", "customer_ref": "T-1"}
    )
    assert r.status_code == 201, r.text
    conversation = r.json()
    assert (conversation["status"], conversation["channel"]) == ("open", "api")
    url = f"/v1/conversations/{conversation['id']}"

    answer = db_client.post(f"{url}/messages", json={"message": E5})
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversation_id"] == conversation["id"]
    rated = db_client.post(
        f"/v1/messages/{answer.json()['message_id']}/rating",
        json={
            "rating": "bad",
            "by": "agent",
            "corrected_answer": "Plug in the WAN cable [1].",
            "tags": ["incomplete"],
        },
    )
    assert rated.status_code == 201, rated.text

    detail = db_client.get(url).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    reply = detail["messages"][1]
    assert reply["sources"] and reply["model"] and reply["latency_ms"] > 0
    assert reply["ratings"][0]["corrected_answer"] == "Plug in the WAN cable [1]."
    assert reply["ratings"][0]["tags"] == ["incomplete"]

    handed = db_client.post(f"{url}/handoff", json={"reason": "customer is a VIP"}).json()
    assert (handed["status"], handed["handoff_reason"]) == ("handoff", "customer is a VIP")
    closed = db_client.post(f"{url}/close").json()
    assert closed["status"] == "resolved" and closed["closed_at"] is not None
    assert db_client.post(f"{url}/close").json()["closed_at"] == closed["closed_at"]
    before = message_count(db_client)
    assert_error(
        db_client.post(f"{url}/messages", json={"message": "hello?"}), 409, "conflict", "resolved"
    )
    assert message_count(db_client) == before


def test_listing_filters_and_pages_without_gaps_or_repeats(db_client: TestClient) -> None:
    made = [
        db_client.post("/v1/conversations", json={"customer_ref": f"c{i % 2}"}).json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = db_client.get("/v1/conversations", params=params).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    only = db_client.get("/v1/conversations", params={"customer_ref": "c1"}).json()["data"]
    assert {c["id"] for c in only} == {made[1], made[3]}
    db_client.post(f"/v1/conversations/{made[0]}/close")
    resolved = db_client.get("/v1/conversations", params={"status": "resolved"}).json()["data"]
    assert [c["id"] for c in resolved] == [made[0]]
    assert_error(
        db_client.get("/v1/conversations", params={"cursor": "garbage"}),
        422,
        "invalid_request",
        "cursor",
    )
    assert_error(
        db_client.get("/v1/conversations", params={"status": "lost"}),
        422,
        "validation_error",
        "status",
    )


def test_a_retry_with_the_same_idempotency_key_gets_the_same_answer(db_client: TestClient) -> None:
    conversation = db_client.post("/v1/conversations", json={}).json()["id"]
    url = f"/v1/conversations/{conversation}/messages"
    key = {"Idempotency-Key": "retry-1"}
    first = db_client.post(url, json={"message": E5}, headers=key)
    again = db_client.post(url, json={"message": E5}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert message_count(db_client) == 2  # one question, one answer
    streamed = sse(db_client, url, {"message": E5}, **key)
    assert [name for name, _ in streamed] == ["token", "final"]
    assert streamed[-1][1]["message_id"] == first.json()["message_id"]
    assert message_count(db_client) == 2
    assert_error(
        db_client.post(url, json={"message": "something else"}, headers=key),
        422,
        "idempotency_key_reused",
        "different request",
    )
    fresh = sse(db_client, url, {"message": E5}, **{"Idempotency-Key": "retry-2"})
    replay = sse(db_client, url, {"message": E5}, **{"Idempotency-Key": "retry-2"})
    assert replay[-1][1]["message_id"] == fresh[-1][1]["message_id"]
    assert message_count(db_client) == 4


def test_a_failed_request_frees_its_idempotency_key(db_client: TestClient) -> None:
    key = {"Idempotency-Key": "unknown-product"}
    body = {"message": E5, "product": "toaster"}
    assert_error(db_client.post("/v1/chat", json=body, headers=key), 422, "unknown_product", "")
    assert_error(db_client.post("/v1/chat", json=body, headers=key), 422, "unknown_product", "")


def test_nul_characters_are_refused_before_the_database(db_client: TestClient) -> None:
    conversation = db_client.post("/v1/conversations", json={}).json()["id"]
    before = message_count(db_client)
    url = f"/v1/conversations/{conversation}/messages"
    assert_error(db_client.post(url, json={"message": "E5\x00"}), 422, "nul_character", "NUL")
    assert_error(db_client.get("/v1/conversations/ab%00cd"), 422, "nul_character", "NUL")
    assert_error(
        db_client.get("/v1/conversations", params={"customer_ref": "a\x00"}),
        422,
        "nul_character",
        "NUL",
    )
    assert message_count(db_client) == before
