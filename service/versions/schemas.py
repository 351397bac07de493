"""Request and response bodies of the model-version API.

The list is shaped like OpenAI's `GET /v1/models` (`object: list`, items with `id`, `object`,
`created`, `owned_by`), so OpenAI clients can list a tenant's versions too. (`POST
/v1/chat/completions` takes a product as `model`, not a version: versions are chosen per
conversation, by activation and canary share.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.store.models import ModelVersion, ModelVersionEvent, as_utc

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Status = Literal["candidate", "canary", "active", "retired", "rejected"]

EVALUATION_EXAMPLE: dict[str, Any] = {
    "passed": True,
    "margin": 0.02,
    "metrics": [
        {
            "metric": "token_f1",
            "candidate": 0.412,
            "active": 0.398,
            "delta": 0.014,
            "passed": True,
        }
    ],
}


class ModelVersionCreate(BaseModel):
    """A candidate version: a LoRA adapter the engine has loaded or can load from its folder."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique within the tenant, e.g. 2025-06-a")
    adapter: str | None = Field(
        pattern=NAME_PATTERN,
        description="Adapter name in the engine / folder in adapters_dir; null: the base model.",
    )
    base_model: str | None = Field(
        default=None, max_length=200, description="Default: the engine's base model."
    )
    evaluation: dict[str, Any] | None = Field(
        default=None, description="The gate's comparison with the active version."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"name": "router-2025-06", "adapter": "router-2025-06"},
                {
                    "name": "router-2025-07",
                    "adapter": "router-2025-07",
                    "evaluation": EVALUATION_EXAMPLE,
                },
            ]
        }
    }


class CanaryUpdate(BaseModel):
    share: float = Field(ge=0.0, le=1.0, description="Share of conversations; 0 ends the canary.")

    model_config = {"json_schema_extra": {"examples": [{"share": 0.1}]}}


class RejectRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500)

    model_config = {"json_schema_extra": {"examples": [{"reason": "worse on refusals"}]}}


class ModelVersionOut(BaseModel):
    """A model version, with the OpenAI model-object fields first."""

    id: str = Field(description="The version name (OpenAI model-object field).")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time of registration.")
    owned_by: str = Field(description="The tenant id.")
    name: str
    adapter: str | None
    base_model: str
    status: Status
    canary_share: float
    evaluation: dict[str, Any] | None
    created_at: datetime
    activated_at: datetime | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "router-2025-06",
                    "object": "model",
                    "created": 1750000000,
                    "owned_by": "default",
                    "name": "router-2025-06",
                    "adapter": "router-2025-06",
                    "base_model": "gemma-3-270m",
                    "status": "active",
                    "canary_share": 0.0,
                    "evaluation": EVALUATION_EXAMPLE,
                    "created_at": "2025-06-15T10:00:00Z",
                    "activated_at": "2025-06-16T09:00:00Z",
                }
            ]
        }
    }

    @classmethod
    def of(cls, row: ModelVersion) -> ModelVersionOut:
        return cls(
            id=row.name,
            created=int(as_utc(row.created_at).timestamp()),
            owned_by=row.tenant_id,
            name=row.name,
            adapter=row.adapter,
            base_model=row.base_model,
            status=row.status,  # type: ignore[arg-type]
            canary_share=row.canary_share,
            evaluation=row.evaluation,
            created_at=row.created_at,
            activated_at=row.activated_at,
        )


class ModelVersionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelVersionOut]
    default_adapter: str | None = Field(
        description="What answers while no version is active (settings' engine.adapter)."
    )


class RollbackOut(BaseModel):
    rolled_back: ModelVersionOut
    active: ModelVersionOut | None = Field(
        description="The version answering now; null: the configured default (default_adapter)."
    )


class ModelVersionEventOut(BaseModel):
    id: str
    version: str
    action: str = Field(description="registered, canary, canary_ended, activated, retired, ...")
    actor: str | None = Field(description="The API key id that made the change, or `operator`.")
    detail: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, row: ModelVersionEvent, version: str) -> ModelVersionEventOut:
        return cls(
            id=row.id,
            version=version,
            action=row.action,
            actor=row.actor,
            detail=row.detail,
            created_at=row.created_at,
        )
