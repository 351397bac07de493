"""Webhooks through the real app, delivered to a real local HTTP receiver (pytest-httpserver)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.config import Settings, WebhookSettings
from service.db import make_engine, migrate, session_factory
from service.errors import WebhookTargetForbidden
from service.events import Event
from service.store.models import DEFAULT_TENANT_ID, utcnow
from service.webhooks.dispatcher import backoff_s
from service.webhooks.signing import InvalidSignature, sign, verify
from service.webhooks.store import Attempt, WebhookStore
from service.webhooks.targets import TargetPolicy, TargetUnresolved, refused_kind
from tests.conftest import copy_index, make_settings, new_key

T = TypeVar("T")
HANDOFF = "conversation.handoff"
MAX_ATTEMPTS = 3


FAST_RETRIES = WebhookSettings(
    max_attempts=MAX_ATTEMPTS,
    backoff_base_s=0.05,
    backoff_cap_s=0.2,
    timeout_s=5,
    poll_interval_s=0.2,
    allowed_hosts=["localhost"],  # the receivers' name; its address, 127.0.0.1, stays refused
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """conftest's settings, with retries a few milliseconds apart."""
    settings.webhooks = FAST_RETRIES
    return settings


@pytest.fixture(scope="module")
def app_client(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
    sample_index_dir: Path,
    embedder: Embedder,
) -> Iterator[TestClient]:
    """One app for the module (building one takes a while); each test gets its own tenant."""
    tmp = tmp_path_factory.mktemp("webhooks")
    copy_index(sample_index_dir, tmp / "qdrant")
    settings = make_settings(tmp, tiny_model_dir, tmp / "qdrant", webhooks=FAST_RETRIES)
    with TestClient(create_app(settings, Overrides(embedder=embedder))) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """The module's app, called with an every-scope key of a tenant new to this test."""
    tenants = app_client.app.state.components.tenants  # type: ignore[attr-defined]
    tenant = tenants.create_tenant("t-" + uuid4().hex[:16], "webhook tests", None)
    app_client.headers["Authorization"] = f"Bearer {new_key(app_client, tenant_id=tenant.id)}"
    return app_client


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A helpdesk's webhook URL: answers with scripted statuses, then `default`."""

    url: str
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    got: list[Received] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        self.got.append(Received(dict(request.headers), request.get_data()))
        status = self.statuses.pop(0) if self.statuses else self.default
        return Response("ok" if status < 400 else "receiver trouble", status=status)


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Receiver:
    path = f"/hook/{uuid4().hex}"  # a late retry from an earlier test cannot land here
    hook = Receiver(httpserver.url_for(path))
    httpserver.expect_request(path, method="POST").respond_with_handler(hook.handle)
    return hook


def wait_for(probe: Callable[[], T | None], timeout_s: float = 15.0) -> T:
    deadline = time.monotonic() + timeout_s
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out waiting for the webhook"
        time.sleep(0.05)
    return value


def register(client: TestClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "description": "tests"}
    if events is not None:
        body["events"] = events
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def hand_off(client: TestClient) -> str:
    conversation = client.post("/v1/conversations", json={"customer_ref": "ticket-1"}).json()
    response = client.post(
        f"/v1/conversations/{conversation['id']}/handoff", json={"reason": "wants a person"}
    )
    assert response.status_code == 200, response.text
    return str(conversation["id"])


def deliveries(client: TestClient, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def settled(client: TestClient, webhook_id: str) -> Callable[[], dict[str, Any] | None]:
    """A probe: the newest delivery once it is no longer pending."""

    def probe() -> dict[str, Any] | None:
        rows = deliveries(client, webhook_id)
        return rows[0] if rows and rows[0]["status"] != "pending" else None

    return probe


def metric(client: TestClient, outcome: str, event: str = "conversation.handoff") -> float:
    """The calling tenant's webhook delivery counter for `outcome`."""
    tenant = client.get("/v1/tenant").json()["id"]
    wanted = (
        f'tunedesk_webhook_deliveries_total{{event="{event}",outcome="{outcome}",'
        f'tenant="{tenant}"}} '
    )
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.removeprefix(wanted))
    return 0.0


def test_handoff_arrives_signed_and_verifies(client: TestClient, receiver: Receiver) -> None:
    webhook = register(client, receiver.url, ["conversation.handoff"])
    assert webhook["secret"].startswith("whsec_")
    assert "secret" not in client.get("/v1/webhooks").json()[0]

    conversation_id = hand_off(client)
    got = wait_for(lambda: receiver.got)[0]

    secret = webhook["secret"]
    verify(secret, got.headers["Tunedesk-Signature"], got.body)
    assert got.headers["Tunedesk-Event"] == "conversation.handoff"
    assert got.json()["type"] == "conversation.handoff"
    assert got.json()["data"]["conversation_id"] == conversation_id
    assert got.json()["data"]["reason"] == "wants a person"
    delivered = wait_for(settled(client, webhook["id"]))
    assert got.headers["Tunedesk-Delivery"] == delivered["id"]
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 1)
    assert datetime.fromisoformat(delivered["delivered_at"]).tzinfo is not None  # RFC 3339
    assert delivered["event_id"] == got.json()["id"]
    assert metric(client, "delivered") == 1


def test_signature_rejects_other_secret_tampering_and_old_timestamps() -> None:
    body = b'{"id":"evt_1","type":"conversation.handoff"}'
    header = sign("whsec_right", body)
    verify("whsec_right", header, body)
    for secret, sent, now in [
        ("whsec_wrong", body, None),
        ("whsec_right", body.replace(b"handoff", b"resolved"), None),
        ("whsec_right", body, time.time() + 600),
    ]:
        with pytest.raises(InvalidSignature):
            verify(secret, header, sent, tolerance_s=300, now=now)
    with pytest.raises(InvalidSignature):
        verify("whsec_right", "v1=abc", body)


def test_only_subscribed_events_are_delivered(client: TestClient, receiver: Receiver) -> None:
    webhook = register(client, receiver.url, ["conversation.resolved"])
    conversation_id = hand_off(client)
    assert deliveries(client, webhook["id"]) == []  # rows are written before the request returns
    client.post(f"/v1/conversations/{conversation_id}/close")
    assert [d["event"] for d in deliveries(client, webhook["id"])] == ["conversation.resolved"]
    assert wait_for(lambda: receiver.got)[0].json()["type"] == "conversation.resolved"


def test_two_server_errors_then_success_takes_three_attempts(
    client: TestClient, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    webhook = register(client, receiver.url)
    hand_off(client)

    delivery = wait_for(settled(client, webhook["id"]))
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    assert delivery["last_status_code"] == 200
    assert len(receiver.got) == 3
    assert {r.headers["Tunedesk-Delivery"] for r in receiver.got} == {delivery["id"]}
    assert {r.json()["id"] for r in receiver.got} == {delivery["event_id"]}
    for request in receiver.got:
        verify(webhook["secret"], request.headers["Tunedesk-Signature"], request.body)
    assert metric(client, "failed_attempt") == 2
    assert metric(client, "delivered") == 1


def test_receiver_that_always_fails_ends_failed_and_can_be_replayed(
    client: TestClient, receiver: Receiver
) -> None:
    receiver.default = 503
    webhook = register(client, receiver.url)
    hand_off(client)

    failed = wait_for(settled(client, webhook["id"]))
    assert (failed["status"], failed["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert failed["last_status_code"] == 503
    assert "HTTP 503" in failed["last_error"]
    assert len(receiver.got) == MAX_ATTEMPTS
    assert metric(client, "gave_up") == 1

    receiver.default = 200
    replay = client.post(f"/v1/webhook-deliveries/{failed['id']}/replay")
    assert replay.status_code == 202, replay.text
    assert replay.json()["id"] != failed["id"]
    assert replay.json()["event_id"] == failed["event_id"]
    replayed = wait_for(settled(client, webhook["id"]))
    assert (replayed["id"], replayed["status"]) == (replay.json()["id"], "delivered")
    assert receiver.got[-1].json() == failed["payload"]
    original = client.get(f"/v1/webhook-deliveries/{failed['id']}").json()
    assert original["status"] == "failed"


def test_client_errors_are_not_retried(client: TestClient, receiver: Receiver) -> None:
    receiver.default = 410
    webhook = register(client, receiver.url)
    hand_off(client)
    delivery = wait_for(settled(client, webhook["id"]))
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)


def test_unreachable_receiver_is_retried_then_failed(client: TestClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook = register(client, f"http://localhost:{port}/hook")
    hand_off(client)
    delivery = wait_for(settled(client, webhook["id"]))
    assert (delivery["status"], delivery["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert delivery["last_status_code"] is None
    assert delivery["last_error"] == "ConnectError"


def test_test_event_pagination_and_delete(client: TestClient, receiver: Receiver) -> None:
    webhook = register(client, receiver.url)
    for _ in range(3):
        assert client.post(f"/v1/webhooks/{webhook['id']}/test").status_code == 202
    wait_for(lambda: len(receiver.got) == 3)
    assert {r.json()["type"] for r in receiver.got} == {"webhook.test"}

    first = client.get(f"/v1/webhooks/{webhook['id']}/deliveries", params={"limit": 2}).json()
    rest = deliveries(client, webhook["id"], limit=2, cursor=first["next_cursor"])
    ids = [d["id"] for d in first["data"] + rest]
    assert len(ids) == len(set(ids)) == 3

    assert client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 204
    assert client.get("/v1/webhooks").json() == []
    assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 404
    hand_off(client)
    time.sleep(0.3)
    assert len(receiver.got) == 3


def test_other_tenants_webhooks_are_not_found(client: TestClient, receiver: Receiver) -> None:
    webhook = register(client, receiver.url)
    delivery = client.post(f"/v1/webhooks/{webhook['id']}/test").json()
    tenants = client.app.state.components.tenants  # type: ignore[attr-defined]
    other = tenants.create_tenant("b-" + uuid4().hex[:16], "Tenant B", None)
    as_b = {"Authorization": f"Bearer {new_key(client, ['admin'], tenant_id=other.id)}"}

    assert client.get("/v1/webhooks", headers=as_b).json() == []
    for method, path in [
        ("GET", f"/v1/webhooks/{webhook['id']}"),
        ("GET", f"/v1/webhooks/{webhook['id']}/deliveries"),
        ("POST", f"/v1/webhooks/{webhook['id']}/test"),
        ("DELETE", f"/v1/webhooks/{webhook['id']}"),
        ("GET", f"/v1/webhook-deliveries/{delivery['id']}"),
        ("POST", f"/v1/webhook-deliveries/{delivery['id']}/replay"),
    ]:
        response = client.request(method, path, headers=as_b)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["type"] == "not_found"
    assert client.get(f"/v1/webhooks/{webhook['id']}").status_code == 200


def test_webhooks_need_the_admin_scope(client: TestClient, receiver: Receiver) -> None:
    chat_only = {"Authorization": f"Bearer {new_key(client, ['chat'])}"}
    response = client.post("/v1/webhooks", json={"url": receiver.url}, headers=chat_only)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "https://example.com/" + "a" * 2000}, "url"),
        ({"url": "https://example.com/hook", "events": ["conversation.created"]}, "events"),
        ({"url": "https://example.com/hook", "events": []}, "events"),
    ],
)
def test_bad_registrations_get_422(
    client: TestClient, body: dict[str, Any], complaint: str
) -> None:
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(complaint)


def test_nul_characters_are_refused_before_the_store(client: TestClient) -> None:
    body = {"url": "https://example.com/hook", "description": "a\x00b"}
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "nul_character"


def test_pending_deliveries_are_sent_after_a_restart(
    settings: Settings, embedder: Embedder, receiver: Receiver
) -> None:
    app = create_app(settings, Overrides(embedder=embedder))
    with TestClient(app) as first:
        first.headers["Authorization"] = f"Bearer {new_key(first)}"
        webhook = register(first, receiver.url)
    # an event recorded just before the process stopped, never sent
    store = WebhookStore(session_factory(make_engine(settings.db_url)))
    event = Event(DEFAULT_TENANT_ID, "conversation.handoff", {"conversation_id": "c1"})
    [row] = store.record_event(event)
    assert receiver.got == []

    with TestClient(create_app(settings, Overrides(embedder=embedder))) as second:
        second.headers["Authorization"] = f"Bearer {new_key(second)}"
        got = wait_for(lambda: receiver.got)[0]
        assert got.json()["id"] == event.id
        assert wait_for(settled(second, webhook["id"]))["status"] == "delivered"
        assert got.headers["Tunedesk-Delivery"] == row.id

        # schemathesis and nested test clients run a second lifespan of the same app on
        # another event loop: the first one's dispatcher keeps sending what that loop asks for
        with TestClient(second.app) as third:
            third.headers["Authorization"] = second.headers["Authorization"]
            assert third.post(f"/v1/webhooks/{webhook['id']}/test").status_code == 202
            wait_for(lambda: len(receiver.got) == 2)
        assert second.post(f"/v1/webhooks/{webhook['id']}/test").status_code == 202
        wait_for(lambda: len(receiver.got) == 3)  # the inner lifespan's end did not stop it


def test_backoff_grows_is_jittered_and_capped() -> None:
    policy = WebhookSettings(backoff_base_s=10, backoff_cap_s=60)
    for number, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        delays = [backoff_s(number, policy) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert backoff_s(1, policy, retry_after_s=45) == 45
    assert backoff_s(1, policy, retry_after_s=5000) == 60


def test_store_claims_each_due_delivery_once_on_both_databases(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = WebhookStore(session_factory(engine))
    hook = store.create_endpoint(DEFAULT_TENANT_ID, "https://example.com/h", [HANDOFF], None)
    [row] = store.record_event(Event(DEFAULT_TENANT_ID, HANDOFF, {"conversation_id": "c1"}))
    assert store.record_event(Event(DEFAULT_TENANT_ID, "message.rated", {})) == []
    assert row.endpoint_id == hook.id

    now, lease = utcnow() + timedelta(seconds=1), timedelta(seconds=60)
    assert [r.id for r in store.claim_due(now, lease, limit=10)] == [row.id]
    assert store.claim_due(now, lease, limit=10) == []  # claimed: another replica gets nothing
    after_lease = now + lease + timedelta(seconds=1)
    assert [r.id for r in store.claim_due(after_lease, lease, limit=10)] == [row.id]
    store.record_attempt(row.id, Attempt("delivered", 200, None, None))
    delivered = store.get_delivery(DEFAULT_TENANT_ID, row.id)
    assert (delivered.status, delivered.attempts) == ("delivered", 1)
    assert store.claim_due(now + 3 * lease, lease, limit=10) == []
    engine.dispose()


def test_readme_verification_snippet_accepts_a_real_signature() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Webhooks") :]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    body = b'{"id":"evt_1"}'
    assert namespace["verify"]("whsec_k", sign("whsec_k", body), body)
    assert not namespace["verify"]("whsec_other", sign("whsec_k", body), body)


SSRF_TARGETS = [
    ("http://127.0.0.1:8000/v1/admin", "loopback"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 in decimal
    ("http://0x7f.1/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://[::1]:8000/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped IPv6
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.7/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("https://[fd00::1]/hook", "private"),
    ("http://100.64.0.1/hook", "not globally routable"),  # carrier-grade NAT
    ("http://224.0.0.1/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
]


@pytest.mark.parametrize(("url", "kind"), SSRF_TARGETS)
def test_non_public_targets_are_refused_at_registration(
    client: TestClient, url: str, kind: str
) -> None:
    response = client.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "webhook_target_forbidden"
    assert f"is a {kind} address" in error["message"]
    assert "TUNEDESK_WEBHOOKS__ALLOWED_HOSTS" in error["message"]
    assert client.get("/v1/webhooks").json() == []


def test_a_forbidden_target_is_refused_again_at_delivery(
    client: TestClient, httpserver: HTTPServer
) -> None:
    """A row registered before the check, or a name that now resolves to loopback (rebinding)."""
    got: list[Request] = []

    def internal(request: Request) -> Response:
        got.append(request)
        return Response("internal secrets")

    httpserver.expect_request("/internal", method="POST").respond_with_handler(internal)
    tenant = client.get("/v1/tenant").json()["id"]
    components = client.app.state.components  # type: ignore[attr-defined]
    store = WebhookStore(session_factory(components.database))
    url = f"http://127.0.0.1:{httpserver.port}/internal"
    endpoint = store.create_endpoint(tenant, url, [HANDOFF], None)

    assert client.post(f"/v1/webhooks/{endpoint.id}/test").status_code == 202
    delivery = wait_for(settled(client, endpoint.id))
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)  # never retried
    assert delivery["last_error"].startswith("refused: webhook URL host 127.0.0.1 is a loopback")
    assert got == []


def test_receiver_replies_are_never_reflected(client: TestClient, httpserver: HTTPServer) -> None:
    path = f"/hook/{uuid4().hex}"
    httpserver.expect_request(path, method="POST").respond_with_response(
        Response("root:x:0:0:root AKIA-SECRET", status=400)
    )
    webhook = register(client, httpserver.url_for(path))
    assert client.post(f"/v1/webhooks/{webhook['id']}/test").status_code == 202
    delivery = wait_for(settled(client, webhook["id"]))
    assert (delivery["last_status_code"], delivery["last_error"]) == (400, "HTTP 400 Bad Request")


def test_a_non_http_listener_is_named_not_quoted(client: TestClient) -> None:
    """Something like Redis on the allowed host answers bytes that are not HTTP."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        thread = threading.Thread(target=_answer_garbage, args=(listener,), daemon=True)
        thread.start()
        webhook = register(client, f"http://localhost:{port}/")
        assert client.post(f"/v1/webhooks/{webhook['id']}/test").status_code == 202
        delivery = wait_for(settled(client, webhook["id"]), timeout_s=30)
        thread.join(timeout=5)
    assert "SECRET" not in (delivery["last_error"] or "")
    assert delivery["last_error"] in {"RemoteProtocolError", "ReadError", "ConnectError"}


def _answer_garbage(listener: socket.socket) -> None:
    listener.settimeout(20)
    for _ in range(MAX_ATTEMPTS):
        with suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"-ERR SECRET-TOKEN unknown command 'POST'\r\n")


async def test_names_are_resolved_then_pinned_to_the_checked_address() -> None:
    with pytest.raises(WebhookTargetForbidden, match=r"localhost \(127.0.0.1\) is a loopback"):
        await TargetPolicy().pin("http://localhost:8080/hook")
    [target] = await TargetPolicy(["127.0.0.0/8"]).pin("http://localhost:8080/hook")
    assert (str(target.url), target.host_header) == ("http://127.0.0.1:8080/hook", "localhost:8080")
    [secure] = await TargetPolicy(["localhost"]).pin("https://localhost/hook")
    assert secure.extensions == {"sni_hostname": "localhost"}  # TLS still checks the name
    await TargetPolicy().check("https://helpdesk.invalid/hook")  # unresolvable: each attempt checks
    with pytest.raises(TargetUnresolved):
        await TargetPolicy().pin("https://helpdesk.invalid/hook")


def test_public_addresses_and_allowed_networks_pass() -> None:
    policy = TargetPolicy(["10.20.0.0/16", "Helpdesk.Corp."])
    public, internal = ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.20.3.4")
    assert policy.refusal("8.8.8.8", public) is None
    assert policy.refusal("2606:4700::1111", ipaddress.ip_address("2606:4700::1111")) is None
    assert policy.refusal("10.20.3.4", internal) is None
    assert policy.refusal("helpdesk.corp", ipaddress.ip_address("10.99.0.1")) is None
    assert policy.refusal("10.21.0.1", ipaddress.ip_address("10.21.0.1")) is not None
    assert refused_kind(ipaddress.ip_address("2002:7f00:1::")) == "loopback"  # 6to4 of 127.0.0.1
