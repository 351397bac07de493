"""Model versions: list, register, canary, activate, roll back, audit trail. Thin routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from service.deps import AdminCaller, ComponentsDep
from service.versions.schemas import (
    CanaryUpdate,
    ModelVersionCreate,
    ModelVersionEventOut,
    ModelVersionList,
    ModelVersionOut,
    RejectRequest,
    RollbackOut,
)
from service.versions.store import NewVersion

router = APIRouter(prefix="/v1/models", tags=["model versions"])
Name = Annotated[str, PathParam(max_length=100, description="The version name")]


@router.get("", response_model=ModelVersionList, summary="List the tenant's model versions")
async def list_versions(principal: AdminCaller, components: ComponentsDep) -> ModelVersionList:
    versions = components.versions
    rows = await versions.list_versions(principal.tenant_id)
    return ModelVersionList(
        data=[ModelVersionOut.of(r) for r in rows], default_adapter=versions.default_adapter
    )


@router.post(
    "",
    response_model=ModelVersionOut,
    status_code=201,
    summary="Register a candidate version (its adapter is hot-loaded into the engine)",
)
async def register(
    body: ModelVersionCreate, principal: AdminCaller, components: ComponentsDep
) -> ModelVersionOut:
    new = NewVersion(
        body.name,
        body.adapter,
        body.base_model or components.engine.model_name,
        body.evaluation,
    )
    row = await components.versions.register(principal.tenant_id, new, principal.label)
    return ModelVersionOut.of(row)


@router.get("/{name}", response_model=ModelVersionOut, summary="One model version")
async def get_version(
    name: Name, principal: AdminCaller, components: ComponentsDep
) -> ModelVersionOut:
    return ModelVersionOut.of(await components.versions.get(principal.tenant_id, name))


@router.post(
    "/{name}/activate",
    response_model=ModelVersionOut,
    summary="Make this version answer every conversation (the active one is retired)",
)
async def activate(
    name: Name, principal: AdminCaller, components: ComponentsDep
) -> ModelVersionOut:
    row = await components.versions.activate(principal.tenant_id, name, principal.label)
    return ModelVersionOut.of(row)


@router.post(
    "/{name}/canary",
    response_model=ModelVersionOut,
    summary="Let a share of conversations use this version (0 ends the canary)",
)
async def canary(
    name: Name, body: CanaryUpdate, principal: AdminCaller, components: ComponentsDep
) -> ModelVersionOut:
    row = await components.versions.canary(principal.tenant_id, name, body.share, principal.label)
    return ModelVersionOut.of(row)


@router.post(
    "/{name}/rollback",
    response_model=RollbackOut,
    summary="Take this version off the air: the previously active one answers again",
)
async def rollback(name: Name, principal: AdminCaller, components: ComponentsDep) -> RollbackOut:
    result = await components.versions.rollback(principal.tenant_id, name, principal.label)
    restored = ModelVersionOut.of(result.restored) if result.restored else None
    return RollbackOut(rolled_back=ModelVersionOut.of(result.rolled_back), active=restored)


@router.post(
    "/{name}/reject", response_model=ModelVersionOut, summary="Mark a candidate not to be shipped"
)
async def reject(
    name: Name, body: RejectRequest, principal: AdminCaller, components: ComponentsDep
) -> ModelVersionOut:
    row = await components.versions.reject(principal.tenant_id, name, principal.label, body.reason)
    return ModelVersionOut.of(row)


@router.get(
    "/{name}/events",
    response_model=list[ModelVersionEventOut],
    summary="The version's audit trail: who registered, activated, rolled it back, and when",
)
async def events(
    name: Name, principal: AdminCaller, components: ComponentsDep
) -> list[ModelVersionEventOut]:
    rows = await components.versions.events(principal.tenant_id, name)
    return [ModelVersionEventOut.of(r, name) for r in rows]
