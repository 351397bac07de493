"""The vLLM engine: a client of `vllm serve`'s OpenAI-compatible API, adapters by model name.

Retries happen only before the first token (the openai client retries connection errors, 429s
and 5xxs on the request itself); once text has streamed, a failure ends the answer with an
error instead of repeating it. Concurrency is bounded here so a slow server does not pile up
requests without limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx
import openai

from service.engines.base import (
    ChatMessage,
    Completion,
    EngineEvent,
    EngineHealth,
    SamplingParams,
    TextDelta,
)
from service.errors import (
    AdapterNotFound,
    EngineBusy,
    EngineUnavailable,
    InvalidAdapter,
    TunedeskError,
)

FINISH = {"stop": "stop", "length": "length"}


class VLLMEngine:
    """Streams chat completions from a vLLM server (or `tunedesk engine serve`)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_concurrency: int = 64,
        max_queue: int = 256,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._model = model
        timeout = httpx.Timeout(timeout_s, connect=5.0)
        self._client = openai.AsyncOpenAI(
            base_url=self._base, api_key=api_key, timeout=timeout_s, max_retries=max_retries
        )
        headers = {"Authorization": f"Bearer {api_key}"}
        self._http = httpx.AsyncClient(base_url=self._base, timeout=timeout, headers=headers)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_waiting = max_concurrency + max_queue
        self._in_flight = 0

    @property
    def model_name(self) -> str:
        return self._model

    async def start(self) -> None:
        """Nothing to load; a server that is down is reported by health(), not here."""

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    async def health(self) -> EngineHealth:
        try:
            response = await self._http.get(self._base.removesuffix("/v1") + "/health")
        except httpx.HTTPError as exc:
            return EngineHealth(ok=False, model=self._model, detail=f"unreachable: {exc}")
        detail = f"{self._in_flight} in flight; server says {response.status_code}"
        return EngineHealth(ok=response.status_code == 200, model=self._model, detail=detail)

    async def list_adapters(self) -> list[str]:
        models = await self._call("GET", "/models")
        return sorted(m["id"] for m in models["data"] if m.get("parent"))

    async def load_adapter(self, name: str, path: str) -> None:
        await self._call("POST", "/load_lora_adapter", {"lora_name": name, "lora_path": path})

    async def unload_adapter(self, name: str) -> None:
        await self._call("POST", "/unload_lora_adapter", {"lora_name": name})

    async def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise EngineUnavailable(f"vLLM at {self._base} is unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise EngineUnavailable(f"vLLM answered {response.status_code}: {response.text}")
        if response.status_code == 404:
            raise AdapterNotFound(_message(response))
        if response.status_code >= 400:
            raise InvalidAdapter(_message(response))
        return (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else response.text
        )

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        if self._in_flight >= self._max_waiting:
            raise EngineBusy("The engine is busy; retry shortly.", headers={"Retry-After": "2"})
        self._in_flight += 1
        try:
            async with self._slots:
                async for event in self._stream(messages, params, adapter):
                    yield event
        finally:
            self._in_flight -= 1

    async def _stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None
    ) -> AsyncGenerator[EngineEvent]:
        started = time.perf_counter()
        stream = await self._open(messages, params, adapter)
        first: float | None = None
        usage: Any = None
        finish = "cancelled"
        stopped_on: str | None = None
        try:
            async for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        first = first or time.perf_counter()
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        finish = FINISH.get(choice.finish_reason, "stop")
                        stopped_on = _stop_string(choice, params.stop)
        except (openai.APIError, httpx.HTTPError) as exc:
            raise EngineUnavailable(f"vLLM stream broke off: {exc}") from exc
        finally:
            await stream.close()  # closing the response makes vLLM abort the request
        ttft = first - started if first else None
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        yield Completion(
            prompt_tokens,
            completion_tokens,
            ttft,
            finish,  # type: ignore[arg-type]
            stopped_on,
        )

    async def _open(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None
    ) -> Any:
        try:
            return await self._client.chat.completions.create(  # type: ignore[call-overload]
                model=adapter or self._model,
                messages=list(messages),
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed,
                stop=list(params.stop) or None,
                extra_body={"ignore_eos": True} if params.ignore_eos else None,
            )
        except openai.NotFoundError as exc:
            raise AdapterNotFound(f"vLLM does not serve {adapter or self._model!r}.") from exc
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise EngineUnavailable(f"vLLM at {self._base} is unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500:
                raise EngineUnavailable(f"vLLM answered {exc.status_code}: {exc.message}") from exc
            raise TunedeskError(f"vLLM refused the request: {exc.message}") from exc


def _stop_string(choice: Any, stops: tuple[str, ...]) -> str | None:
    """vLLM names the stop string that ended the answer in `stop_reason` (an EOS id: an int)."""
    reason = getattr(choice, "stop_reason", None)
    return reason if isinstance(reason, str) and reason in stops else None


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or response.text)
    except ValueError:
        return response.text
