"""The widget's server side: its script and size, its configuration per publishable key (public
read from the key's origins, admin write with validation), and the demo site's one key."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.config import Settings
from service.widget.routes import SCRIPT
from tests.conftest import new_key
from tests.test_api import assert_error

SITE = "https://shop.example.com"
WIDGET_BUDGET = 30 * 1024  # gzipped bytes a page downloads for the widget


@pytest.fixture
def widget_key(client: TestClient) -> tuple[str, str]:
    """A publishable key for SITE: (id, plain key), made through the admin API."""
    body = {"name": "site", "kind": "publishable", "allowed_origins": [SITE]}
    r = client.post("/v1/keys", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def from_site(key: str, origin: str = SITE) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Origin": origin}


def test_the_script_is_served_as_javascript_and_stays_small(client: TestClient) -> None:
    r = client.get("/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"
    size = len(gzip.compress(SCRIPT.read_bytes(), compresslevel=9))
    print(f"widget.js: {len(SCRIPT.read_bytes())} bytes, {size} gzipped")
    assert size <= WIDGET_BUDGET
    assert "innerHTML" not in r.text and "insertAdjacentHTML" not in r.text  # text nodes only


def test_a_key_s_configuration_is_set_by_its_admin_and_read_by_its_widget(
    client: TestClient, widget_key: tuple[str, str]
) -> None:
    key_id, key = widget_key
    default = client.get("/v1/widget/config", headers=from_site(key)).json()
    assert default["title"] == "Support" and "AI assistant" in default["strings"]["disclosure"]

    config = {
        "title": "Acme help",
        "greeting": "Hello!",
        "position": "bottom-left",
        "language": "de",
        "colours": {"accent": "#0F766E", "accent_text": "#fff"},
        "strings": {"send": "Senden", "disclosure": "Sie chatten mit einem KI-Assistenten."},
        "suggested_questions": ["Router zeigt E3?"],
    }
    r = client.put(f"/v1/keys/{key_id}/widget", json=config)
    assert r.status_code == 200, r.text
    seen = client.get("/v1/widget/config", headers=from_site(key)).json()
    assert (seen["title"], seen["position"], seen["colours"]["accent"]) == (
        "Acme help",
        "bottom-left",
        "#0f766e",
    )
    assert seen["strings"]["send"] == "Senden" and seen["strings"]["retry"] == "Retry"
    assert client.get(f"/v1/keys/{key_id}/widget").json() == seen

    rotated = client.post(f"/v1/keys/{key_id}/rotate", json={"grace_seconds": 0}).json()
    after = client.get("/v1/widget/config", headers=from_site(rotated["key"])).json()
    assert after["title"] == "Acme help"  # a rotated key keeps its widget


@pytest.mark.parametrize(
    ("config", "hint"),
    [
        ({"colours": {"accent": "blue"}}, "'blue' is not a colour: write it as #rgb or #rrggbb"),
        ({"colours": {"text": "#eeeeee"}}, "text #eeeeee on background #ffffff has contrast"),
        (
            {"strings": {"disclosure": " "}},
            "the AI disclosure is always shown and cannot be removed",
        ),
        ({"position": "top"}, "bottom-right"),
        ({"suggested_questions": ["x"] * 7}, "at most 6"),
        ({"colour": {}}, "colour"),
    ],
)
def test_a_bad_configuration_is_refused_saying_what_to_fix(
    client: TestClient, widget_key: tuple[str, str], config: dict[str, object], hint: str
) -> None:
    key_id, key = widget_key
    assert_error(
        client.put(f"/v1/keys/{key_id}/widget", json=config), 422, "validation_error", hint
    )
    assert client.get("/v1/widget/config", headers=from_site(key)).json()["title"] == "Support"


def test_only_the_key_s_admin_sets_it_and_only_its_origins_read_it(
    client: TestClient, widget_key: tuple[str, str]
) -> None:
    key_id, key = widget_key
    assert_error(
        client.get("/v1/widget/config", headers=from_site(key, "https://evil.example")),
        403,
        "forbidden",
        "allowed origins",
    )
    chat_only = {"Authorization": f"Bearer {new_key(client, ['chat'])}"}
    r = client.put(f"/v1/keys/{key_id}/widget", json={}, headers=chat_only)
    assert_error(r, 403, "forbidden", "admin")
    r = client.put(f"/v1/keys/{key_id}/widget", json={}, headers=from_site(key))
    assert_error(r, 403, "forbidden", "admin")
    secret_id = client.post("/v1/keys", json={"name": "s"}).json()["id"]
    assert_error(
        client.put(f"/v1/keys/{secret_id}/widget", json={}), 422, "invalid_request", "td_pk_"
    )
    assert_error(client.put("/v1/keys/nope/widget", json={}), 404, "key_not_found", "nope")


@pytest.fixture
def demo_client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"port": 8123}), Overrides(embedder=embedder))
    with TestClient(app, base_url="http://127.0.0.1:8123") as test_client:
        yield test_client


def test_the_demo_site_embeds_one_key_for_the_configured_origins_only(
    demo_client: TestClient,
) -> None:
    """Issue 13, item 4: Host headers mint no keys and open no CORS origins."""
    tenants = demo_client.app.state.components.tenants  # type: ignore[attr-defined]
    pages = [
        demo_client.get(path, headers={"Host": host})
        for host in ("127.0.0.1:8123", "evil.example", "a.example:1", "b.example", "localhost")
        for path in ("/", "/products/x1000")
    ]
    assert all(p.status_code == 200 for p in pages)
    keys = [k for k in tenants.list_keys("default") if k.kind == "publishable"]
    assert len(keys) == 1
    assert keys[0].allowed_origins == ["http://127.0.0.1:8123", "http://localhost:8123"]
    assert tenants.widget_origins() == {"http://127.0.0.1:8123", "http://localhost:8123"}
    html = pages[0].text
    assert html.count("<script") == 1 and 'src="/widget.js"' in html and 'data-key="td_pk_' in html
    assert 'data-product="halcyon-router-x1000"' in pages[1].text
    preflight = demo_client.options(
        "/v1/chat",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert_error(demo_client.get("/products/nope"), 404, "not_found", "x1000")
