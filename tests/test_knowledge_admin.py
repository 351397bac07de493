"""Knowledge admin over HTTP: upload, re-index, list, delete; each tenant its own knowledge."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.store.models import DEFAULT_TENANT_ID
from tests.conftest import OPERATOR_KEY
from tests.test_api import assert_error

PAGE = b"""---
title: Quantum mesh pairing
---
# Pairing the Zephyr mesh node

Hold the PAIR button for 7 seconds until the ring blinks violet, then open the app.
"""
PRODUCT = "halcyon-router-x1000"


def upload(client: TestClient, *files: tuple[str, bytes], **headers: str) -> dict[str, object]:
    r = client.post(
        "/v1/knowledge/documents",
        files=[("files", f) for f in files],
        data={"product": PRODUCT},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def statuses(client: TestClient, **headers: str) -> dict[str, tuple[str, int]]:
    rows = client.get("/v1/knowledge/sources", headers=headers).json()
    return {r["source"]: (r["status"], r["chunks"]) for r in rows}


def test_upload_list_reindex_and_delete(client: TestClient) -> None:
    source = f"uploads/{PRODUCT}/zephyr-pairing.md"
    first = upload(client, ("zephyr pairing.md", PAGE), ("broken.pdf", b"%PDF-1.4 not really"))
    assert first["added"] == [source]
    failed: list[dict[str, str]] = first["failed"]  # type: ignore[assignment]
    assert [f["source"] for f in failed] == [f"uploads/{PRODUCT}/broken.pdf"]
    listed = statuses(client)
    assert listed[source][0] == "indexed" and listed[source][1] >= 1
    assert listed[f"uploads/{PRODUCT}/broken.pdf"] == ("failed", 0)
    assert "docs/halcyon-router-x1000/error-codes.md" in listed  # what `tunedesk ingest` put there

    hits = client.app.state.components.index.search("zephyr mesh PAIR button violet", PRODUCT)  # type: ignore[attr-defined]
    assert hits[0].source == source

    assert upload(client, ("zephyr pairing.md", PAGE))["unchanged"] == [source]
    changed = upload(client, ("zephyr pairing.md", PAGE + b"\nRelease when it blinks.\n"))
    assert changed["updated"] == [source]
    again = client.post("/v1/knowledge/reindex").json()
    assert source in again["unchanged"] and again["removed"] == []

    assert client.delete("/v1/knowledge/sources", params={"source": source}).status_code == 204
    assert source not in statuses(client)
    assert "docs/halcyon-router-x1000/error-codes.md" in statuses(client)  # nothing else lost
    assert_error(
        client.delete("/v1/knowledge/sources", params={"source": source}),
        404,
        "source_not_found",
        source,
    )


def test_bad_uploads_get_clear_errors(client: TestClient) -> None:
    r = client.post(
        "/v1/knowledge/documents", files=[("files", ("a.md", PAGE))], data={"product": "toaster"}
    )
    assert_error(r, 422, "unknown_product", "toaster")
    assert_error(client.post("/v1/knowledge/documents"), 422, "validation_error", "files")


def test_files_of_an_unsupported_type_are_refused_in_failed_and_never_stored(
    client: TestClient,
) -> None:
    refused = ["passwd", ".htaccess", "setup.exe"]
    body = upload(client, ("zephyr.md", PAGE), *[(name, b"root:x:0:0\n") for name in refused])
    assert body["added"] == [f"uploads/{PRODUCT}/zephyr.md"]
    failed: list[dict[str, str]] = body["failed"]  # type: ignore[assignment]
    assert [f["source"] for f in failed] == [f"uploads/{PRODUCT}/{name}" for name in refused]
    assert all("not a supported document type" in f["reason"] for f in failed)
    assert all(".md" in f["reason"] and ".pdf" in f["reason"] for f in failed)
    data_dir = client.app.state.components.settings.data_dir  # type: ignore[attr-defined]
    stored = data_dir / "knowledge" / DEFAULT_TENANT_ID / "uploads" / PRODUCT
    assert sorted(p.name for p in stored.iterdir()) == ["zephyr.md"]


def test_each_tenant_has_its_own_knowledge(db_client: TestClient) -> None:
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    tenant = db_client.post(
        "/v1/tenants", json={"slug": "initech", "name": "Initech"}, headers=operator
    ).json()
    theirs = {**operator, "Tunedesk-Tenant": tenant["id"]}
    assert statuses(db_client, **theirs) == {}
    upload(db_client, ("zephyr.md", PAGE), **theirs)
    assert list(statuses(db_client, **theirs)) == [f"uploads/{PRODUCT}/zephyr.md"]
    assert f"uploads/{PRODUCT}/zephyr.md" not in statuses(db_client)
