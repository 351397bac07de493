"""Knowledge admin: upload documents, re-index, delete, list sources. Admin scope, per tenant."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from service.deps import AdminCaller, ComponentsDep
from service.errors import UnknownProduct
from service.knowledge_admin.service import Upload, report_dict

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])


class FailedSource(BaseModel):
    source: str
    reason: str


class IngestOut(BaseModel):
    """What one upload or re-index did, source by source."""

    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]
    failed: list[FailedSource]
    chunks: int = Field(description="Chunks written.")


class SourceOut(BaseModel):
    source: str
    status: str = Field(description="indexed, or failed (with the reason in detail)")
    chunks: int
    detail: str | None


@router.post(
    "/documents",
    response_model=IngestOut,
    summary="Upload documents (Markdown, HTML, PDF, text, docs.jsonl) and index them",
    description="Each bad file (corrupt, empty, binary, too large, of a type not read) is "
    "reported under `failed` with the reason (one of a type not read is never stored); the "
    "others are indexed. Re-uploading a file replaces its chunks.",
)
async def upload(
    principal: AdminCaller,
    components: ComponentsDep,
    files: Annotated[list[UploadFile], File(description="One or more documents")],
    product: Annotated[str | None, Form(max_length=100)] = None,
) -> dict[str, Any]:
    if product is not None and components.catalog.get(product) is None:
        known = ", ".join(components.catalog.ids)
        raise UnknownProduct(f"Unknown product {product!r}. Known products: {known}.")
    uploads = [Upload(f.filename or "document", await f.read()) for f in files]
    index = components.indexes.for_tenant(principal.tenant_id)
    report = await components.knowledge.upload(principal.tenant_id, index, product, uploads)
    return report_dict(report)


@router.post("/reindex", response_model=IngestOut, summary="Index every uploaded document again")
async def reindex(principal: AdminCaller, components: ComponentsDep) -> dict[str, Any]:
    index = components.indexes.for_tenant(principal.tenant_id)
    return report_dict(await components.knowledge.reindex(principal.tenant_id, index))


@router.get("/sources", response_model=list[SourceOut], summary="Sources and their status")
async def sources(principal: AdminCaller, components: ComponentsDep) -> list[SourceOut]:
    index = components.indexes.for_tenant(principal.tenant_id)
    rows = await asyncio.to_thread(components.knowledge.sources, principal.tenant_id, index)
    return [SourceOut(**vars(r)) for r in rows]


@router.delete(
    "/sources", status_code=204, summary="Delete a source: its chunks and its uploaded file"
)
async def delete_source(
    principal: AdminCaller,
    components: ComponentsDep,
    source: Annotated[str, Query(min_length=1, max_length=1000, description="As listed")],
) -> None:
    index = components.indexes.for_tenant(principal.tenant_id)
    await components.knowledge.delete(principal.tenant_id, index, source)
