"""The embedded CPU engine: the HF model runtime driven from worker threads, streamed async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from service.engines.artifacts import read_manifest
from service.engines.base import (
    ChatMessage,
    Completion,
    EngineEvent,
    EngineHealth,
    SamplingParams,
    TextDelta,
)
from service.engines.hf_model import HFModel, Prompt
from service.engines.stops import find_stop, partial_stop
from service.errors import EngineBusy, EngineUnavailable, ModelNotPrepared

_DONE = object()


class _QueueStreamer:
    """A transformers streamer that decodes incrementally and hands text to the event loop.

    With stop strings it holds back text that could still become one; on the first it sends
    what came before, sets `cancel` (generation stops) and remembers it in `stopped_on`."""

    def __init__(
        self,
        tokenizer: Any,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Any],
        stops: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ):
        self._tokenizer = tokenizer
        self._loop = loop
        self._queue = queue
        self._stops = stops
        self._cancel = cancel
        self._ids: list[int] = []
        self._text = ""
        self._sent = 0
        self._prompt_seen = False
        self.first_token_at: float | None = None
        self.stopped_on: str | None = None

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt itself
            self._prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self.stopped_on is not None:
            return
        self._ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
            return
        self._text = text
        if (hit := find_stop(text, self._stops)) is not None:
            self.stopped_on = hit[1]
            if self._cancel is not None:
                self._cancel.set()
            self._send(hit[0])
        else:
            self._send(len(text) - partial_stop(text, self._stops))

    def end(self) -> None:
        if self.stopped_on is None:
            self._send(len(self._text))  # what was held back for a stop string that never came

    def _send(self, end: int) -> None:
        if end > self._sent:
            delta = TextDelta(self._text[self._sent : end])
            self._loop.call_soon_threadsafe(self._queue.put_nowait, delta)
            self._sent = end


class LocalEngine:
    """transformers on CPU; at most `max_concurrency` generations, `max_queue` waiting."""

    def __init__(
        self,
        model_dir: Path,
        *,
        max_concurrency: int = 1,
        max_queue: int = 16,
        threads: int | None = None,
        weights: str = "int8",
        prefix_cache_size: int = 8,
        adapters_dir: Path | None = None,
    ) -> None:
        self._runtime = HFModel(model_dir, weights, prefix_cache_size)
        self._max_concurrency = max_concurrency
        self._max_waiting = max_concurrency + max_queue
        self._threads = threads
        self._adapters_dir = adapters_dir
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="local-engine")
        self._closed = False
        self._slots = asyncio.Semaphore(max_concurrency)

    @property
    def model_name(self) -> str:
        return self._runtime.model_dir.name

    @property
    def runtime(self) -> HFModel:
        return self._runtime

    async def start(self) -> None:
        if not (self._runtime.model_dir / "config.json").is_file():
            raise ModelNotPrepared(
                f"No model in {self._runtime.model_dir}. Run `tunedesk model prepare` first."
            )
        await asyncio.to_thread(self._runtime.load, self._threads)
        folder = self._adapters_dir
        for path in sorted(folder.iterdir()) if folder and folder.is_dir() else []:
            if (path / "adapter_config.json").is_file():
                await self.load_adapter(path.name, str(path))

    async def aclose(self) -> None:
        """Stop the workers; the engine is unusable afterwards."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def health(self) -> EngineHealth:
        loaded = self._runtime.model is not None
        detail = f"{self._in_flight} in flight" if loaded else "model not loaded"
        manifest = read_manifest(self._runtime.model_dir) or {}
        model = manifest.get("base_model", self.model_name)
        return EngineHealth(ok=loaded, model=model, detail=detail)

    async def list_adapters(self) -> list[str]:
        return sorted(self._runtime.adapters)

    async def load_adapter(self, name: str, path: str) -> None:
        async with self._exclusive():
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._runtime.load_adapter, name, Path(path)
            )

    async def unload_adapter(self, name: str) -> None:
        async with self._exclusive():
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self._runtime.unload_adapter, name
            )

    def _exclusive(self) -> _AllSlots:
        return _AllSlots(self._slots, self._max_concurrency)

    def render(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Prompt token ids, rendered with the tokenizer's chat template."""
        return self._runtime.render(list(messages)).ids

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        if self._closed:
            raise EngineUnavailable("The local engine has been shut down.")
        if self._in_flight >= self._max_waiting:
            raise EngineBusy("The engine is busy; retry shortly.", headers={"Retry-After": "5"})
        self._in_flight += 1
        try:
            async with self._slots:
                prompt = self._runtime.render(list(messages))
                async for event in self._generate(prompt, params, adapter):
                    yield event
        finally:
            self._in_flight -= 1

    async def _generate(
        self, prompt: Prompt, params: SamplingParams, adapter: str | None
    ) -> AsyncGenerator[EngineEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        streamer = _QueueStreamer(self._runtime.tokenizer, loop, queue, params.stop, cancel)
        started = time.perf_counter()

        def work() -> None:
            try:
                generated = self._runtime.generate(prompt, params, adapter, streamer, cancel)
                completion = self._completion(prompt, generated, params, cancel, streamer, started)
                loop.call_soon_threadsafe(queue.put_nowait, completion)
            except BaseException as exc:  # handed to the event loop, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self._executor, work)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # the client went away or we finished: stop the worker either way
            await asyncio.shield(future)

    def _completion(
        self,
        prompt: Prompt,
        generated: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        streamer: _QueueStreamer,
        started: float,
    ) -> Completion:
        if streamer.stopped_on is not None:
            reason: Any = "stop"
        elif cancel.is_set():
            reason = "cancelled"
        elif generated and generated[-1] in self._runtime.stop_ids:
            reason = "stop"
        else:
            reason = "length" if len(generated) >= params.max_tokens else "stop"
        ttft = streamer.first_token_at - started if streamer.first_token_at else None
        return Completion(len(prompt.ids), len(generated), ttft, reason, streamer.stopped_on)


class _AllSlots:
    """Holds every generation slot: adapters change only while nothing is generating."""

    def __init__(self, slots: asyncio.Semaphore, count: int) -> None:
        self._slots = slots
        self._count = count
        self._held = 0

    async def __aenter__(self) -> None:
        for _ in range(self._count):
            await self._slots.acquire()
            self._held += 1

    async def __aexit__(self, *exc_info: object) -> None:
        for _ in range(self._held):
            self._slots.release()
        self._held = 0
