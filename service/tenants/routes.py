"""Tenants (operator only) and their API keys (a tenant's admin scope). Thin routes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter

from service.deps import AdminCaller, ComponentsDep, OperatorCaller, ReaderCaller
from service.store.tenants import KeySpec
from service.tenants.schemas import (
    KeyCreate,
    KeyCreated,
    KeyOut,
    KeyRotate,
    TenantCreate,
    TenantOut,
)

router = APIRouter(prefix="/v1", tags=["tenants and keys"])


@router.post(
    "/tenants",
    response_model=TenantOut,
    status_code=201,
    summary="Create a tenant (operator key)",
)
async def create_tenant(
    body: TenantCreate, _: OperatorCaller, components: ComponentsDep
) -> TenantOut:
    row = await asyncio.to_thread(
        components.tenants.create_tenant, body.slug, body.name, body.products
    )
    return TenantOut.of(row)


@router.get("/tenants", response_model=list[TenantOut], summary="List tenants (operator key)")
async def list_tenants(_: OperatorCaller, components: ComponentsDep) -> list[TenantOut]:
    rows = await asyncio.to_thread(components.tenants.list_tenants)
    return [TenantOut.of(r) for r in rows]


@router.get("/tenant", response_model=TenantOut, summary="The tenant of the calling key")
async def current_tenant(principal: ReaderCaller, components: ComponentsDep) -> TenantOut:
    row = await asyncio.to_thread(components.tenants.get_tenant, principal.tenant_id)
    return TenantOut.of(row)


@router.post(
    "/keys",
    response_model=KeyCreated,
    status_code=201,
    summary="Create an API key (shown once)",
)
async def create_key(
    body: KeyCreate, principal: AdminCaller, components: ComponentsDep
) -> KeyCreated:
    spec = KeySpec(body.name, body.kind, body.key_scopes(), body.origins() or None)
    row, plain = await asyncio.to_thread(components.tenants.create_key, principal.tenant_id, spec)
    return KeyCreated(**KeyOut.of(row).model_dump(), key=plain)


@router.get("/keys", response_model=list[KeyOut], summary="List API keys")
async def list_keys(
    principal: AdminCaller, components: ComponentsDep, include_revoked: bool = False
) -> list[KeyOut]:
    rows = await asyncio.to_thread(
        components.tenants.list_keys, principal.tenant_id, include_revoked
    )
    return [KeyOut.of(r) for r in rows]


@router.post(
    "/keys/{key_id}/rotate",
    response_model=KeyCreated,
    status_code=201,
    summary="Replace a key; the old one works for the grace period",
)
async def rotate_key(
    key_id: str, body: KeyRotate, principal: AdminCaller, components: ComponentsDep
) -> KeyCreated:
    grace = timedelta(seconds=body.grace_seconds)
    row, plain = await asyncio.to_thread(
        components.tenants.rotate_key, principal.tenant_id, key_id, grace
    )
    return KeyCreated(**KeyOut.of(row).model_dump(), key=plain)


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke a key")
async def revoke_key(key_id: str, principal: AdminCaller, components: ComponentsDep) -> KeyOut:
    row = await asyncio.to_thread(components.tenants.revoke_key, principal.tenant_id, key_id)
    return KeyOut.of(row)
