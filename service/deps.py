"""FastAPI dependencies: the components built once in the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine as Database

from knowledge.catalog import ProductCatalog
from knowledge.index import KnowledgeIndex
from service.auth.authenticate import Authenticator
from service.auth.principal import Principal
from service.chat.ratings import RatingService
from service.chat.replies import Replies
from service.chat.service import ChatService
from service.chat.turn import Caller
from service.config import Settings
from service.conversations.service import ConversationService
from service.engines.base import Engine
from service.errors import Forbidden
from service.events import EventBus
from service.knowledge_admin.service import KnowledgeAdmin
from service.metrics import Metrics
from service.store.repository import ConversationStore
from service.store.tenants import TenantStore
from service.tenants.indexes import TenantIndexes
from service.versions.service import ModelVersions
from service.web.demo import DemoKeys
from service.webhooks.service import WebhookService
from service.widget.store import WidgetConfigStore


@dataclass
class Components:
    """Everything a request may need, built once per app."""

    settings: Settings
    database: Database
    store: ConversationStore
    index: KnowledgeIndex  # the default tenant's
    indexes: TenantIndexes
    engine: Engine
    catalog: ProductCatalog
    chat: ChatService
    ratings: RatingService
    metrics: Metrics
    tenants: TenantStore
    auth: Authenticator
    events: EventBus
    replies: Replies
    conversations: ConversationService
    demo_keys: DemoKeys
    knowledge: KnowledgeAdmin
    versions: ModelVersions
    webhooks: WebhookService
    widget_configs: WidgetConfigStore


def get_components(request: Request) -> Components:
    components: Components = request.app.state.components
    return components


ComponentsDep = Annotated[Components, Depends(get_components)]


def require(*scopes: str) -> Callable[..., Principal]:
    """A dependency: the authenticated caller, who must hold one of `scopes`."""

    def dependency(request: Request, components: ComponentsDep) -> Principal:
        principal = components.auth.authenticate(request)
        request.state.principal = principal
        if not principal.allows(*scopes):
            needed = " or ".join(repr(s) for s in scopes)
            raise Forbidden(f"This API key lacks the {needed} scope this endpoint needs.")
        return principal

    return dependency


ChatCaller = Annotated[Principal, Depends(require("chat", "widget"))]
ReaderCaller = Annotated[Principal, Depends(require("chat", "agent", "admin"))]
# one conversation: whoever may list them, and a widget key for the ones it started
ConversationReader = Annotated[Principal, Depends(require("chat", "widget", "agent", "admin"))]
AgentCaller = Annotated[Principal, Depends(require("agent", "admin"))]
AdminCaller = Annotated[Principal, Depends(require("admin"))]
OperatorCaller = Annotated[Principal, Depends(require("operator"))]


def caller_of(
    principal: Principal,
    components: Components,
    customer_ref: str | None = None,
    channel: str | None = None,
) -> Caller:
    """The chat service's view of the caller: tenant, channel and the tenant's products."""
    tenant = components.tenants.get_tenant(principal.tenant_id)
    products = tuple(tenant.products) if tenant.products is not None else None
    channel = "widget" if principal.kind == "publishable" else (channel or principal.channel)
    return Caller(principal.tenant_id, channel, customer_ref, products, principal.conversation_key)
