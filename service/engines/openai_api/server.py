"""`tunedesk engine serve`: an engine behind the same OpenAI-compatible routes vLLM serves.

It lets the CPU engine run as its own process, and gives the vLLM client a real server to
talk to where no GPU exists.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from service.engines.base import ChatMessage, Completion, Engine, EngineEvent, SamplingParams
from service.engines.openai_api import protocol as p
from service.errors import AdapterNotFound, install_error_handlers

router = APIRouter()


def create_engine_app(engine: Engine, served_name: str) -> FastAPI:
    """The OpenAI-compatible app for one engine, served under `served_name`."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.aclose()

    app = FastAPI(title="tunedesk engine", lifespan=lifespan)
    app.state.engine = engine
    app.state.served_name = served_name
    install_error_handlers(app)
    app.include_router(router)
    return app


def _engine(request: Request) -> tuple[Engine, str]:
    return request.app.state.engine, request.app.state.served_name


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    engine, _ = _engine(request)
    status = await engine.health()
    return JSONResponse({"ok": status.ok, "detail": status.detail}, 200 if status.ok else 503)


@router.get("/v1/models")
async def models(request: Request) -> p.ModelList:
    engine, name = _engine(request)
    cards = [p.ModelCard(id=name, root=name)]
    cards += [p.ModelCard(id=a, root=a, parent=name) for a in await engine.list_adapters()]
    return p.ModelList(data=cards)


@router.post("/v1/load_lora_adapter")
async def load_lora_adapter(body: p.LoadLoRAAdapterRequest, request: Request) -> JSONResponse:
    engine, _ = _engine(request)
    await engine.load_adapter(body.lora_name, body.lora_path)
    return JSONResponse({"message": f"Adapter {body.lora_name!r} loaded."})


@router.post("/v1/unload_lora_adapter")
async def unload_lora_adapter(body: p.UnloadLoRAAdapterRequest, request: Request) -> JSONResponse:
    engine, _ = _engine(request)
    await engine.unload_adapter(body.lora_name)
    return JSONResponse({"message": f"Adapter {body.lora_name!r} unloaded."})


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: p.ChatCompletionRequest, request: Request
) -> p.ChatCompletion | EventSourceResponse:
    engine, name = _engine(request)
    adapter = None if body.model == name else body.model
    if adapter is not None and adapter not in await engine.list_adapters():
        raise AdapterNotFound(f"The model `{body.model}` does not exist.")
    messages: list[ChatMessage] = [m.model_dump() for m in body.messages]  # type: ignore[misc]
    params = SamplingParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or 256,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        ignore_eos=body.ignore_eos,
        stop=body.stop_strings(),
    )
    events = engine.stream(messages, params, adapter)
    first = await anext(events)  # refusals (busy, bad adapter) still get an error status
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return EventSourceResponse(_chunks(first, events, body.model, usage), ping=15)
    return await _whole(first, events, body.model)


async def _chunks(
    first: EngineEvent, rest: AsyncGenerator[EngineEvent], model: str, include_usage: bool
) -> AsyncIterator[str]:
    cid = p.completion_id()

    def chunk(
        delta: p.Delta,
        finish: str | None = None,
        usage: p.Usage | None = None,
        stop: str | None = None,
    ) -> str:
        choice = p.ChunkChoice(delta=delta, finish_reason=finish, stop_reason=stop)
        choices = [choice] if usage is None else []
        return p.ChatCompletionChunk(
            id=cid, model=model, choices=choices, usage=usage
        ).model_dump_json()

    yield chunk(p.Delta(role="assistant", content=""))
    try:
        async for event in _prepend(first, rest):
            if isinstance(event, Completion):
                yield chunk(p.Delta(), finish=event.finish_reason, stop=event.stop_sequence)
                if include_usage:
                    yield chunk(p.Delta(), usage=_usage(event))
            else:
                yield chunk(p.Delta(content=event.text))
    finally:
        await rest.aclose()  # a closed connection stops the generation
    yield "[DONE]"


async def _whole(
    first: EngineEvent, rest: AsyncGenerator[EngineEvent], model: str
) -> p.ChatCompletion:
    text: list[str] = []
    completion: Completion | None = None
    async for event in _prepend(first, rest):
        if isinstance(event, Completion):
            completion = event
        else:
            text.append(event.text)
    assert completion is not None
    message = p.Message(role="assistant", content="".join(text))
    choice = p.Choice(
        message=message,
        finish_reason=completion.finish_reason,
        stop_reason=completion.stop_sequence,
    )
    return p.ChatCompletion(
        id=p.completion_id(), model=model, choices=[choice], usage=_usage(completion)
    )


async def _prepend(
    first: EngineEvent, rest: AsyncGenerator[EngineEvent]
) -> AsyncIterator[EngineEvent]:
    yield first
    async for event in rest:
        yield event


def _usage(completion: Completion) -> p.Usage:
    total = completion.prompt_tokens + completion.completion_tokens
    return p.Usage(
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        total_tokens=total,
    )
