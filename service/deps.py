"""FastAPI dependencies: the components built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from knowledge.catalog import ProductCatalog
from knowledge.index import KnowledgeIndex
from service.chat.service import ChatService
from service.config import Settings
from service.engines.base import Engine
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
    metrics: Metrics


def get_components(request: Request) -> Components:
    components: Components = request.app.state.components
    return components


ComponentsDep = Annotated[Components, Depends(get_components)]
