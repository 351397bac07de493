"""The agent console, server side: sign-in and its cookie, CSRF, roles, tenant isolation, the
login rate limit, the review queue's order and filters, append-only ratings with agreement."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.console.parts import Console
from service.store.models import DEFAULT_TENANT_ID, Rating
from service.store.repository import AnswerRecord, RatingInput
from tests.conftest import new_key

PASSWORD = "correct horse battery"


def console_of(client: TestClient) -> Console:
    from service.console.parts import build_console

    state = client.app.state  # type: ignore[attr-defined]
    if getattr(state, "console", None) is None:
        state.console = build_console(state.components)
    console: Console = state.console
    return console


def make_agent(
    client: TestClient, email: str, role: str = "agent", tenant: str = DEFAULT_TENANT_ID
) -> str:
    return console_of(client).accounts.create(tenant, email, PASSWORD, role).id  # type: ignore[arg-type]


def sign_in(
    client: TestClient, email: str, tenant: str = "default", password: str = PASSWORD
) -> Any:
    form = {"tenant": tenant, "email": email, "password": password, "next": "/console"}
    return client.post("/console/login", data=form, follow_redirects=False)


def csrf_of(client: TestClient) -> str:
    page = client.get("/console").text
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def add_answer(
    client: TestClient,
    text: str,
    tenant: str = DEFAULT_TENANT_ID,
    product: str | None = "halcyon-router-x1000",
    **record: Any,
) -> str:
    """A stored question and answer (as the chat service stores them)."""
    store = client.app.state.components.store  # type: ignore[attr-defined]
    conversation = store.start_conversation(tenant, product, record.pop("channel", "api"))
    store.add_user_message(conversation.id, f"question for {text}", product, [])
    record.setdefault("finish_reason", "stop")
    answer = AnswerRecord(content=text, product=product, **record)
    return str(store.add_answer(conversation.id, answer).id)


@pytest.fixture
def browser_free(client: TestClient) -> TestClient:
    """The app's client without its API key: the console uses its own session cookie."""
    del client.headers["Authorization"]
    return client


def test_pages_need_a_session_and_the_cookie_is_httponly_and_samesite(
    browser_free: TestClient,
) -> None:
    client = browser_free
    r = client.get("/console", follow_redirects=False, headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/console/login?next=/console"
    make_agent(client, "ana@example.com")
    wrong = sign_in(client, "ana@example.com", password="not the password")
    assert wrong.status_code == 401 and "Wrong workspace, email or password" in wrong.text
    unknown = sign_in(client, "nobody@example.com")
    assert unknown.status_code == 401 and "Wrong workspace, email or password" in unknown.text
    r = sign_in(client, "ana@example.com")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "Queue" in client.get("/console").text
    stored = console_of(client).accounts.list(DEFAULT_TENANT_ID)[0].password_hash
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    r = client.post(
        "/console/login",
        data={"tenant": "default", "email": "ana@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"


def test_every_state_changing_call_needs_the_csrf_token(browser_free: TestClient) -> None:
    client = browser_free
    answer = add_answer(client, "Restart the router.")
    make_agent(client, "ana@example.com", "admin")
    sign_in(client, "ana@example.com")
    url = f"/console/api/answers/{answer}/ratings"
    missing = client.post(url, json={"label": "good"})
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    wrong = client.post(url, json={"label": "good"}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    invite = client.post("/console/api/agents", json={"email": "bo@example.com"})
    assert invite.status_code == 403
    assert client.post("/console/logout", follow_redirects=False).status_code == 403
    token = csrf_of(client)
    ok = client.post(url, json={"label": "good"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201, ok.text
    out = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    after = client.post(url, json={"label": "bad"}, headers={"X-CSRF-Token": token})
    assert after.status_code == 401 and after.json()["error"]["code"] == "session_required"


def test_roles_invitations_and_disabling(browser_free: TestClient) -> None:
    client = browser_free
    make_agent(client, "boss@example.com", "admin")
    sign_in(client, "boss@example.com")
    token = csrf_of(client)
    made = client.post(
        "/console/api/agents", json={"email": "Cy@Example.com"}, headers={"X-CSRF-Token": token}
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "invited" and made.json()["email"] == "cy@example.com"
    again = client.post(
        "/console/api/agents", json={"email": "cy@example.com"}, headers={"X-CSRF-Token": token}
    )
    assert again.status_code == 409
    link = made.json()["invite_url"].removeprefix("http://testserver")
    with TestClient(client.app) as invitee:
        short = invitee.post(link, data={"password": "short"}, follow_redirects=False)
        assert short.status_code == 422 and "10 characters" in short.text
        joined = invitee.post(link, data={"password": PASSWORD}, follow_redirects=False)
        assert joined.status_code == 303  # signed in at once
        assert invitee.post(link, data={"password": PASSWORD}).status_code == 404  # used up
        assert invitee.get("/console/agents", follow_redirects=False).status_code == 403
        assert invitee.get("/console/api/export").status_code == 403  # agents do not export
        assert "Queue" in invitee.get("/console").text
        r = client.post(
            f"/console/api/agents/{made.json()['id']}/disable", headers={"X-CSRF-Token": token}
        )
        assert r.status_code == 200 and r.json()["status"] == "disabled"
        ended = invitee.get("/console", follow_redirects=False, headers={"Accept": "text/html"})
        assert ended.status_code == 303  # a disabled agent's session ends at once
        assert sign_in(invitee, "cy@example.com").status_code == 401


def test_an_agent_sees_only_their_tenants_answers(browser_free: TestClient) -> None:
    client = browser_free
    tenants = client.app.state.components.tenants  # type: ignore[attr-defined]
    other = tenants.create_tenant("acme", "Acme", None).id
    ours = add_answer(client, "Ours: restart the router.")
    theirs = add_answer(client, "Theirs: acme's own answer.", tenant=other)
    make_agent(client, "ana@example.com", "admin")
    make_agent(client, "zed@acme.example", "admin", tenant=other)
    sign_in(client, "zed@acme.example", tenant="acme")
    queue = client.get("/console").text
    assert "acme&#39;s own answer" in queue and "Ours:" not in queue
    assert client.get(f"/console/answers/{ours}").status_code == 404
    rate = client.post(
        f"/console/api/answers/{ours}/ratings",
        json={"label": "bad"},
        headers={"X-CSRF-Token": csrf_of(client)},
    )
    assert rate.status_code == 404 and rate.json()["error"]["code"] == "message_not_found"
    assert client.get(f"/console/answers/{theirs}").status_code == 200
    exported = client.get("/console/api/export").text
    assert "Ours:" not in exported
    assert "Ours:" not in client.get("/console/dashboard").text
    # the same login on the other workspace's name fails: accounts are per tenant
    assert sign_in(client, "zed@acme.example", tenant="default").status_code == 401


def test_login_is_rate_limited_per_account(settings: Settings, embedder: Any) -> None:
    from service.app import Overrides, create_app

    settings.console.login_per_account = "3/minute"
    with TestClient(create_app(settings, Overrides(embedder=embedder))) as client:
        make_agent(client, "ana@example.com")
        for _ in range(3):
            assert sign_in(client, "ana@example.com", password="wrong password").status_code == 401
        limited = sign_in(client, "ana@example.com")  # even the right password now waits
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        assert sign_in(client, "someone@example.com").status_code == 401  # others are not


def test_queue_orders_by_need_and_filters(browser_free: TestClient) -> None:
    client = browser_free
    store = client.app.state.components.store  # type: ignore[attr-defined]
    plain = add_answer(client, "A plain answer.")
    handoff = add_answer(client, "Handed off.", finish_reason="handoff")
    capped = add_answer(client, "Cut at the cap.", finish_reason="length", model_version="v2")
    unsure = add_answer(client, "Not sure.", finish_reason="low_confidence")
    disliked = add_answer(client, "The customer disliked this.", channel="widget")
    store.rate(DEFAULT_TENANT_ID, disliked, RatingInput(rater="customer", label="bad"))
    camera = add_answer(client, "About the camera.", product="halcyon-camera-c3")
    make_agent(client, "ana@example.com")
    sign_in(client, "ana@example.com")
    page = client.get("/console").text
    order = [m for m in re.findall(r'data-id="([0-9a-f]+)"', page)]
    assert order[:4] == [disliked, unsure, capped, handoff]
    assert set(order[4:]) == {plain, camera}
    assert "customer thumbs-down" in page and "cut at the cap" in page
    ids = lambda query: re.findall(r'data-id="([0-9a-f]+)"', client.get(f"/console?{query}").text)  # noqa: E731
    assert ids("product=halcyon-camera-c3") == [camera]
    assert ids("channel=widget") == [disliked]
    assert ids("model_version=v2") == [capped]
    assert ids("rating=customer_bad") == [disliked]
    assert ids("since=2000-01-01&until=2000-01-02") == []
    token = csrf_of(client)
    client.post(
        f"/console/api/answers/{disliked}/ratings",
        json={"score": 2},
        headers={"X-CSRF-Token": token},
    ).raise_for_status()
    assert disliked not in ids("rating=unrated") and ids("rating=rated") == [disliked]
    assert ids("")[-1] == disliked  # rated by an agent: to the end of the queue
    assert client.get("/console?rating=nonsense").status_code == 422


def test_ratings_are_kept_with_who_and_when_and_agreement_is_shown(
    browser_free: TestClient,
) -> None:
    client = browser_free
    answer = add_answer(client, "Restart the router.")
    for email, body in [
        ("ana@example.com", {"label": "good", "score": 4, "tags": ["Clear", " clear "]}),
        ("bo@example.com", {"label": "bad", "corrected_answer": "Restart the modem first."}),
        ("ana@example.com", {"label": "bad", "comment": "changed my mind"}),
    ]:
        if not any(a.email == email for a in console_of(client).accounts.list("default")):
            make_agent(client, email)
        sign_in(client, email)
        r = client.post(
            f"/console/api/answers/{answer}/ratings",
            json=body,
            headers={"X-CSRF-Token": csrf_of(client)},
        )
        assert r.status_code == 201, r.text
    result = r.json()
    assert [(v["by"], v["label"]) for v in result["ratings"]] == [
        ("ana@example.com", "good"),
        ("bo@example.com", "bad"),
        ("ana@example.com", "bad"),
    ]  # append-only: ana's first rating is still there
    assert result["agreement"] == {"raters": 2, "good": 0, "bad": 2, "share": 1.0}
    page = client.get(f"/console/answers/{answer}").text
    assert "2 agents: 0 good · 2 bad · agreement 100%" in page
    assert "Restart the modem first." in page and "changed my mind" in page
    sessions = console_of(client).reviews.sessions
    with sessions() as s:
        rows = s.query(Rating).order_by(Rating.created_at).all()
    assert [r.tags for r in rows] == [["clear"], None, None]
    untouched = client.post(
        f"/console/api/answers/{answer}/ratings",
        json={"label": "good", "corrected_answer": "Restart the router."},
        headers={"X-CSRF-Token": csrf_of(client)},
    )
    assert untouched.json()["corrected_answer"] is None  # the editor left as the bot wrote it
    empty = client.post(
        f"/console/api/answers/{answer}/ratings",
        json={"tags": ["x"]},
        headers={"X-CSRF-Token": csrf_of(client)},
    )
    assert empty.status_code == 422 and "verdict" in empty.json()["error"]["message"]


def test_transcripts_export_needs_the_admin_scope(client: TestClient) -> None:
    answer = add_answer(client, "Restart the router.")
    store = client.app.state.components.store  # type: ignore[attr-defined]
    store.rate(DEFAULT_TENANT_ID, answer, RatingInput(rater="agent", label="good"))
    agent_key = new_key(client, ["agent"])
    r = client.get("/v1/transcripts/export", headers={"Authorization": f"Bearer {agent_key}"})
    assert r.status_code == 403
    r = client.get("/v1/transcripts/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert '"schema": "tunedesk.transcript/v1"' in r.text and "Restart the router." in r.text
