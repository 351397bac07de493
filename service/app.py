"""create_app(settings): the FastAPI application with its parts built once in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from knowledge.catalog import (
    ProductCatalog,
    check_handoff_replies,
    load_guardrails,
    load_products,
    load_system_prompt,
    load_templates,
)
from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex, open_store
from service.admin.routes import router as admin_router
from service.auth.authenticate import Authenticator
from service.auth.cors import WidgetCORSMiddleware
from service.body_limit import BodyLimit
from service.chat.ratings import RatingService
from service.chat.replies import Replies
from service.chat.routes import router as chat_router
from service.chat.service import ChatLimits, ChatService, PromptLayer
from service.config import Settings
from service.console.routes import router as console_router
from service.conversations.routes import router as conversations_router
from service.conversations.service import ConversationService
from service.db import make_engine, migrate, session_factory
from service.deps import Components
from service.engines.base import Engine, SamplingParams
from service.engines.local import LocalEngine
from service.engines.openvino import OpenVINOEngine
from service.engines.vllm import VLLMEngine
from service.errors import install_error_handlers
from service.events import EventBus
from service.knowledge_admin.routes import router as knowledge_router
from service.knowledge_admin.service import KnowledgeAdmin
from service.metrics import Metrics, install_request_metrics
from service.nul_guard import NulGuard
from service.openai_compat.routes import router as openai_router
from service.openapi import install_openapi
from service.ops.routes import router as ops_router
from service.prompting.builder import PromptBudget, PromptBuilder, token_counter
from service.prompting.examples import ExampleStore
from service.prompting.guardrails import Guardrails
from service.prompting.scope import ScopeGuard
from service.prompting.selection import TemplateSelector
from service.ratelimit import RateLimiter
from service.store.idempotency import IdempotencyStore
from service.store.repository import ConversationStore
from service.store.tenants import TenantStore
from service.tenants.indexes import TenantIndexes
from service.tenants.routes import router as tenants_router
from service.versions.chooser import RegistryVersions
from service.versions.routes import router as versions_router
from service.versions.service import ModelVersions
from service.versions.store import ModelVersionStore
from service.web.demo import DemoKeys
from service.web.routes import router as web_router
from service.webhooks.routes import router as webhooks_router
from service.webhooks.service import build_webhooks
from service.widget.routes import router as widget_router
from service.widget.store import WidgetConfigStore


def build_engine(settings: Settings) -> Engine:
    """The LLM engine that settings.engine.kind names."""
    builders: dict[str, Callable[[Settings], Engine]] = {
        "local": build_local_engine,
        "vllm": build_vllm_engine,
        "openvino": build_openvino_engine,
    }
    return builders[settings.engine.kind](settings)


def build_local_engine(settings: Settings) -> LocalEngine:
    engine = settings.engine
    return LocalEngine(
        settings.model.directory,
        max_concurrency=engine.max_concurrency,
        max_queue=engine.max_queue,
        threads=engine.threads,
        weights=engine.weights,
        prefix_cache_size=engine.prefix_cache_size,
        adapters_dir=engine.adapters_dir,
    )


def build_openvino_engine(settings: Settings) -> OpenVINOEngine:
    engine = settings.engine
    return OpenVINOEngine(
        settings.model.directory,
        batch_size=engine.batch_size,
        max_queue=engine.max_queue,
        threads=engine.threads,
        weights=engine.weights,
        prefix_caching=engine.prefix_cache_size > 0,
        adapters_dir=engine.adapters_dir,
    )


def build_vllm_engine(settings: Settings) -> VLLMEngine:
    engine = settings.engine
    return VLLMEngine(
        engine.vllm_url,
        engine.served_model_name or settings.model.name,
        api_key=engine.vllm_api_key,
        timeout_s=engine.timeout_s,
        max_retries=engine.max_retries,
        max_concurrency=engine.max_concurrency,
        max_queue=engine.max_queue,
    )


@dataclass
class Overrides:
    """Parts a caller (tests, benchmarks) supplies instead of building them from settings."""

    engine: Engine | None = None
    embedder: Embedder | None = None


def build_components(settings: Settings, overrides: Overrides) -> Components:
    db = make_engine(settings.db_url)
    migrate(db)
    sessions = session_factory(db)
    store = ConversationStore(sessions)
    tenants = TenantStore(sessions)
    widget_configs = WidgetConfigStore(sessions)
    knowledge = settings.knowledge
    client, vectors = open_store(knowledge.store, knowledge.qdrant_path, knowledge.qdrant_url)
    embedder = overrides.embedder or Embedder()
    indexes = TenantIndexes(client, knowledge.collection, embedder, vectors)
    catalog = load_products(knowledge.catalog_dir)
    engine = overrides.engine or build_engine(settings)
    metrics = Metrics()
    events = EventBus()
    prompting = build_prompt_layer(settings, catalog, indexes.default)
    version_store = ModelVersionStore(sessions)
    chooser = RegistryVersions(version_store.list_versions, settings.engine.adapter)
    versions = ModelVersions(version_store, engine, chooser, settings.engine.adapters_dir)
    chat = ChatService(
        store=store,
        indexes=indexes,
        events=events,
        engine=engine,
        catalog=catalog,
        prompting=prompting,
        metrics=metrics,
        versions=chooser,
        load_adapter=versions.ensure_loaded,
        limits=ChatLimits(
            max_message_chars=settings.chat.max_message_chars,
            history_messages=settings.chat.history_messages,
            top_k=knowledge.top_k,
            adapter=settings.engine.adapter,
            max_examples=settings.chat.max_examples,
            example_similarity=settings.chat.example_similarity,
            sampling=SamplingParams(
                max_tokens=settings.engine.max_new_tokens,
                temperature=settings.engine.temperature,
            ),
        ),
    )
    ratings = RatingService(store, prompting.examples, metrics, events)
    limiter = RateLimiter(
        settings.rate_limit_storage, settings.rate_limits.per_key, settings.rate_limits.per_ip
    )
    return Components(
        settings=settings,
        database=db,
        store=store,
        index=indexes.default,
        indexes=indexes,
        engine=engine,
        catalog=catalog,
        chat=chat,
        ratings=ratings,
        metrics=metrics,
        tenants=tenants,
        auth=Authenticator(settings, tenants, limiter),
        events=events,
        replies=Replies(chat, IdempotencyStore(sessions), settings.chat.shutdown_grace_s),
        conversations=ConversationService(store, catalog, events, metrics, chooser),
        demo_keys=DemoKeys(tenants, widget_configs),
        widget_configs=widget_configs,
        knowledge=KnowledgeAdmin(settings.data_dir, settings.knowledge.max_upload_bytes),
        versions=versions,
        webhooks=build_webhooks(sessions, events, settings.webhooks, metrics),
    )


def build_prompt_layer(
    settings: Settings, catalog: ProductCatalog, index: KnowledgeIndex
) -> PromptLayer:
    """System prompt, template selection, prompt builder and guardrails from the YAML files."""
    directory = settings.knowledge.catalog_dir
    system = load_system_prompt(directory)
    guardrails = load_guardrails(directory)
    check_handoff_replies(directory, system, guardrails)
    budget = PromptBudget(settings.chat.max_prompt_tokens, settings.chat.history_tokens)
    count = token_counter(settings.model.directory)
    embedder = index.embedder
    examples = ExampleStore(
        index.client, f"{settings.knowledge.collection}-examples", embedder, embedder.dimension
    )
    return PromptLayer(
        system=system,
        selector=TemplateSelector(load_templates(directory, catalog), embedder),
        builder=PromptBuilder(
            system, count_tokens=count, budget=budget, max_chunk_chars=settings.chat.source_chars
        ),
        guardrails=Guardrails(guardrails, embedder),
        examples=examples,
        scope=ScopeGuard(embedder),
    )


def create_app(settings: Settings | None = None, overrides: Overrides | None = None) -> FastAPI:
    """The tunedesk API, demo page and metrics."""
    settings = settings or Settings()
    components = build_components(settings, overrides or Overrides())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await components.engine.start()
        await components.versions.restore()
        await _warm_up(components)
        await components.webhooks.start()
        try:
            yield
        finally:
            if (console := getattr(app.state, "console", None)) is not None:
                await asyncio.to_thread(console.jobs.stop_all)  # retraining jobs it started
            await components.replies.aclose()  # answers still being written get their grace
            await components.webhooks.aclose()
            await components.engine.aclose()
            components.index.close()
            components.database.dispose()

    app = FastAPI(
        title="tunedesk",
        version="0.1.0",
        summary="Self-hosted support chatbot: product-tuned model + retrieval-grounded prompts.",
        lifespan=lifespan,
        docs_url=None,  # install_openapi serves /docs from local assets (no CDN)
        redoc_url=None,
    )
    app.state.components = components
    install_error_handlers(app)
    install_openapi(app)
    install_request_metrics(app, components.metrics)
    app.add_middleware(NulGuard)
    upload_limit = settings.knowledge.max_upload_bytes
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, upload_limit=upload_limit)
    app.add_middleware(WidgetCORSMiddleware, tenants=components.tenants)
    app.include_router(chat_router)
    app.include_router(conversations_router)
    app.include_router(openai_router)
    app.include_router(knowledge_router)
    app.include_router(tenants_router)
    app.include_router(versions_router)
    app.include_router(admin_router)
    app.include_router(webhooks_router)
    app.include_router(widget_router)
    app.include_router(console_router)
    app.include_router(web_router)
    app.include_router(ops_router)
    return app


async def _warm_up(components: Components) -> None:
    """Load the embedder now rather than on the first customer's question."""
    import asyncio

    await asyncio.to_thread(components.index.embedder.embed, ["warm up"])
