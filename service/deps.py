"""FastAPI dependencies: the components built once in the app's lifespan."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from knowledge.catalog import ProductCatalog
from knowledge.index import KnowledgeIndex
from service.chat.ratings import RatingService
from service.chat.service import ChatService
from service.config import Settings
from service.engines.base import Engine
from service.errors import Forbidden, Unauthorized
from service.metrics import Metrics
from service.store.repository import ConversationStore


@dataclass
class Components:
    """Everything a request may need, built once per app."""

    settings: Settings
    store: ConversationStore
    index: KnowledgeIndex
    engine: Engine
    catalog: ProductCatalog
    chat: ChatService
    ratings: RatingService
    metrics: Metrics


def get_components(request: Request) -> Components:
    components: Components = request.app.state.components
    return components


ComponentsDep = Annotated[Components, Depends(get_components)]


def require_admin(components: ComponentsDep, authorization: str = Header(default="")) -> None:
    """Admin routes need `Authorization: Bearer <TUNEDESK_ADMIN_API_KEY>`."""
    key = components.settings.admin_api_key
    if key is None:
        raise Forbidden("Admin routes are disabled: set TUNEDESK_ADMIN_API_KEY to enable them.")
    given = authorization.removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise Unauthorized("Send the admin key as `Authorization: Bearer <key>`.")


AdminDep = Depends(require_admin)
