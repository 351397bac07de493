"""Issue 13 hardening through HTTP: text the database cannot store, refused before it is stored."""

from __future__ import annotations

import re

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


SITE = "https://shop.example.com"
HUMAN = "I want a human please"  # answered without the model: a quick answer to rate


def widget_key(client: TestClient) -> dict[str, str]:
    made = client.post(
        "/v1/keys", json={"name": "site", "kind": "publishable", "allowed_origins": [SITE]}
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}", "Origin": SITE}


def started(client: TestClient, headers: dict[str, str] | None = None) -> tuple[str, str]:
    """A conversation whose first answer exists: (conversation id, answer id)."""
    answer = client.post("/v1/chat", json={"message": HUMAN}, headers=headers or {})
    assert answer.status_code == 200, answer.text
    return answer.json()["conversation_id"], answer.json()["message_id"]


def actions(conversation: str, answer: str) -> list[tuple[str, str, dict[str, object]]]:
    return [
        ("GET", f"/v1/conversations/{conversation}", {}),
        ("POST", f"/v1/conversations/{conversation}/messages", {"message": "hello"}),
        ("POST", "/v1/chat", {"message": "hello", "conversation_id": conversation}),
        ("POST", f"/v1/conversations/{conversation}/handoff", {"reason": "a person"}),
        ("POST", f"/v1/messages/{answer}/rating", {"rating": "good"}),
    ]


def test_a_widget_key_acts_only_on_conversations_it_started(db_client: TestClient) -> None:
    mine, theirs = widget_key(db_client), widget_key(db_client)
    own = started(db_client, mine)
    for other in [started(db_client), started(db_client, theirs)]:  # the API's, a sibling key's
        for method, path, body in actions(*other):
            response = db_client.request(method, path, json=body or None, headers=mine)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["type"] == "not_found"
        assert db_client.get(f"/v1/conversations/{other[0]}").status_code == 200  # untouched
    assert db_client.get(f"/v1/conversations/{other[0]}").json()["status"] == "handoff"

    for method, path, body in actions(*own):
        if "messages" not in path or "rating" in path:  # posting asks the model: skip
            response = db_client.request(method, path, json=body or None, headers=mine)
            assert response.status_code in (200, 201), (method, path, response.text)
    for method, path, body in actions(*own)[:1] + actions(*own)[-1:]:  # secret: tenant-wide
        assert db_client.request(method, path, json=body or None).status_code in (200, 201)


def test_docs_load_swagger_ui_from_this_server_only(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'""", page.text)
    referenced = [u for pair in urls for u in pair if u]
    assert len(referenced) >= 3, page.text  # the script, the stylesheet, the favicon
    for url in referenced:
        assert url.startswith("/"), f"{url} is not on this server: /docs is blank offline"
        assert client.get(url).status_code == 200, url
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
