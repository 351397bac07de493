"""Issue 13 hardening through HTTP: text the database cannot store, refused before it is stored."""

from __future__ import annotations

from fastapi.testclient import TestClient

JSON = {"Content-Type": "application/json"}


def test_the_literal_text_backslash_u0000_is_an_ordinary_message(client: TestClient) -> None:
    # The JSON string "\\u0000" decodes to six characters, backslash-u-0-0-0-0: harmless text.
    body = rb'{"description": "escape it as \\u0000 in C", "url": "https://example.com/hook"}'
    response = client.post("/v1/webhooks", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "escape it as \\u0000 in C"


def test_a_json_escaped_nul_is_still_refused(client: TestClient) -> None:
    body = rb'{"description": "a\u0000b", "url": "https://example.com/hook"}'
    response = client.post("/v1/webhooks", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "nul_character"
    assert client.get("/v1/webhooks").json() == []


def conversation_ids(client: TestClient) -> list[str]:
    return [c["id"] for c in client.get("/v1/conversations").json()["data"]]


def test_a_lone_surrogate_is_refused_before_a_conversation_is_created(client: TestClient) -> None:
    before = conversation_ids(client)
    response = client.post("/v1/chat", content=rb'{"message": "hi \ud800"}', headers=JSON)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "lone_surrogate"
    assert "surrogate" in error["message"] and "\\ud800" in error["message"]
    assert conversation_ids(client) == before


def test_a_surrogate_pair_is_ordinary_text(client: TestClient) -> None:
    body = rb'{"description": "smile \ud83d\ude00", "url": "https://example.com/hook"}'
    response = client.post("/v1/webhooks", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "smile \U0001f600"
