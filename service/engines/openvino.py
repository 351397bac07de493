"""The batching CPU engine: OpenVINO GenAI's continuous-batching pipeline, driven from one thread.

Every request is added to a running pipeline and decoded together with the others (paged KV
cache, prefix caching, chunked prefill), instead of one generation at a time. OpenVINO GenAI
applies one LoRA adapter to a whole batch, so each adapter gets its own pipeline ("lane") with
the adapter applied once at build; the base model is a lane too. One driver thread steps every
lane that has work. Prompts are rendered and text decoded with the model's Hugging Face
tokenizer, exactly as the reference engine does (so no OpenVINO chat template, no second <bos>).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.engines.artifacts import read_manifest
from service.engines.base import (
    ChatMessage,
    Completion,
    EngineEvent,
    EngineHealth,
    SamplingParams,
)
from service.engines.chat_template import END_OF_TURN
from service.engines.local import _QueueStreamer
from service.engines.openvino_lanes import (
    Lane,
    LaneSpec,
    build_lane,
    finish_reason,
    import_openvino_genai,
    lora_scale,
    tensor,
)
from service.engines.openvino_prepare import is_exported, openvino_dir
from service.errors import (
    AdapterNotFound,
    EngineBusy,
    EngineUnavailable,
    InvalidAdapter,
    ModelNotPrepared,
)

_DONE = object()
BASE_LANE = ""


@dataclass
class _Request:
    ids: list[int]
    config: Any  # openvino_genai.GenerationConfig
    streamer: _QueueStreamer
    cancel: threading.Event
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    started: float
    max_tokens: int
    handle: Any = None
    generated: list[int] = field(default_factory=list)
    finish: str | None = None
    stopping: bool = False


class OpenVINOEngine:
    """OpenVINO GenAI continuous batching on CPU: `batch_size` decoded together, `max_queue` more
    waiting, 503 beyond that."""

    def __init__(
        self,
        model_dir: Path,
        *,
        batch_size: int = 16,
        max_queue: int = 16,
        threads: int | None = None,
        weights: str = "int8",
        prefix_caching: bool = True,
        adapters_dir: Path | None = None,
        cache_gb: int = 1,
        ov_dir: Path | None = None,
    ) -> None:
        self._model_dir = model_dir
        self._explicit_dir = ov_dir is not None  # a fresh export being verified
        self._ov_dir = ov_dir or openvino_dir(model_dir, weights)
        self._weights = weights
        self._batch_size = batch_size
        self._max_waiting = batch_size + max_queue
        self._threads = threads
        self._prefix_caching = prefix_caching
        self._adapters_dir = adapters_dir
        self._cache_gb = cache_gb
        self._og: Any = None
        self._tokenizer: Any = None
        self._stop_ids: set[int] = set()
        self._lanes: dict[str, Lane] = {}
        self._retired: list[Lane] = []
        self._inbox: list[tuple[Lane, _Request]] = []
        self._wake = threading.Condition()
        self._driver: threading.Thread | None = None
        self._next_id = 0
        self._in_flight = 0
        self._closed = False
        self._adapter_lock = asyncio.Lock()

    @property
    def model_name(self) -> str:
        return self._model_dir.name

    async def start(self) -> None:
        exported = (self._ov_dir / "openvino_model.xml").is_file()
        if not (exported if self._explicit_dir else is_exported(self._model_dir, self._weights)):
            raise ModelNotPrepared(
                f"No OpenVINO export in {self._ov_dir}. "
                "Run `tunedesk model prepare --engine openvino` first."
            )
        self._og = import_openvino_genai()
        await asyncio.to_thread(self._load_tokenizer)
        self._lanes[BASE_LANE] = await asyncio.to_thread(self._build_lane, None, None)
        self._driver = threading.Thread(target=self._drive, name="openvino-engine", daemon=True)
        self._driver.start()
        folder = self._adapters_dir
        for path in sorted(folder.iterdir()) if folder and folder.is_dir() else []:
            if (path / "adapter_config.json").is_file():
                await self.load_adapter(path.name, str(path))

    def _load_tokenizer(self) -> None:
        from service.engines.tokenizer import shared_tokenizer

        self._tokenizer = shared_tokenizer(self._ov_dir)  # the token counter's, same files
        end_of_turn = self._tokenizer.convert_tokens_to_ids(END_OF_TURN)
        ids = {self._tokenizer.eos_token_id, end_of_turn}
        self._stop_ids = {int(i) for i in ids if i is not None}

    def _build_lane(self, name: str | None, adapter_dir: Path | None) -> Lane:
        spec = LaneSpec(
            self._ov_dir,
            self._batch_size,
            self._prefix_caching,
            self._cache_gb,
            self._threads,
            self._weights,
        )
        return build_lane(self._og, spec, name, adapter_dir, self._tokenizer.bos_token_id or 2)

    async def aclose(self) -> None:
        """Stop the driver and drop the pipelines; the engine is unusable afterwards."""
        self._closed = True
        with self._wake:
            self._wake.notify_all()
        if self._driver is not None:
            await asyncio.to_thread(self._driver.join, 30)
        self._lanes.clear()
        self._retired.clear()

    async def health(self) -> EngineHealth:
        alive = self._driver is not None and self._driver.is_alive() and not self._closed
        detail = f"{self._in_flight} in flight, {len(self._lanes)} pipelines"
        manifest = read_manifest(self._model_dir) or {}
        model = manifest.get("base_model", self.model_name)
        return EngineHealth(ok=alive, model=model, detail=detail if alive else "not running")

    async def list_adapters(self) -> list[str]:
        return sorted(name for name in self._lanes if name != BASE_LANE)

    async def load_adapter(self, name: str, path: str) -> None:
        adapter_dir = Path(path)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise InvalidAdapter(f"{path} is not a LoRA adapter (no adapter_config.json).")
        if not (adapter_dir / "adapter_model.safetensors").is_file():
            raise InvalidAdapter(f"{path} has no adapter_model.safetensors.")
        lora_scale(adapter_dir)  # refuses what OpenVINO cannot apply, before building anything
        async with self._adapter_lock:
            try:
                lane = await asyncio.to_thread(self._build_lane, name, adapter_dir)
            except RuntimeError as exc:
                raise InvalidAdapter(f"Adapter {name!r} does not fit this model: {exc}") from exc
            with self._wake:  # requests already in the old lane finish there
                self._retire(self._lanes.get(name))
                self._lanes[name] = lane

    async def unload_adapter(self, name: str) -> None:
        async with self._adapter_lock:
            with self._wake:
                lane = self._lanes.pop(name, None) if name != BASE_LANE else None
                if lane is None:
                    raise AdapterNotFound(f"No adapter named {name!r} is loaded.")
                self._retire(lane)

    def _retire(self, lane: Lane | None) -> None:
        if lane is not None:
            lane.retiring = True
            self._retired.append(lane)
            self._wake.notify_all()

    def render(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Prompt token ids, rendered with the tokenizer's chat template (its <bos> included)."""
        text = self._tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
        return list(self._tokenizer(text, add_special_tokens=False).input_ids)

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        if self._closed or self._driver is None:
            raise EngineUnavailable("The openvino engine is not running.")
        lane = self._lanes.get(adapter or BASE_LANE)
        if lane is None:
            raise AdapterNotFound(f"No adapter named {adapter!r} is loaded.")
        if self._in_flight >= self._max_waiting:
            raise EngineBusy("The engine is busy; retry shortly.", headers={"Retry-After": "2"})
        self._in_flight += 1
        try:
            request = self._request(self.render(messages), params)
            with self._wake:
                self._inbox.append((lane, request))
                self._wake.notify_all()
            try:
                while (item := await request.queue.get()) is not _DONE:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                request.cancel.set()  # the client went away or we finished: stop it either way
                with self._wake:
                    self._wake.notify_all()
        finally:
            self._in_flight -= 1

    def _request(self, ids: list[int], params: SamplingParams) -> _Request:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        streamer = _QueueStreamer(self._tokenizer, loop, queue, params.stop, cancel)
        streamer.put(_Ids(ids))  # the streamer skips the prompt, as with model.generate
        return _Request(
            ids,
            self._config(params),
            streamer,
            cancel,
            loop,
            queue,
            time.perf_counter(),
            params.max_tokens,
        )

    def _config(self, params: SamplingParams) -> Any:
        config = self._og.GenerationConfig()
        config.max_new_tokens = params.max_tokens
        config.stop_token_ids = self._stop_ids
        config.apply_chat_template = False
        if params.ignore_eos:
            config.ignore_eos = True
            config.min_new_tokens = params.max_tokens
        if params.temperature > 0:
            config.do_sample = True
            config.temperature = params.temperature
            config.top_p = params.top_p
            if params.seed is not None:
                config.rng_seed = params.seed
        return config

    # --- the driver thread -------------------------------------------------------------

    def _drive(self) -> None:
        try:
            self._drive_until_closed()
            self._fail_all(EngineUnavailable("The openvino engine shut down mid-answer."))
        except BaseException as exc:  # a crashed driver must not leave answers hanging
            self._closed = True
            self._fail_all(EngineUnavailable(f"The openvino engine failed: {exc!r}"))
            raise

    def _drive_until_closed(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._inbox and not self._has_work():
                    self._wake.wait()
                if self._closed:
                    break
                inbox, self._inbox = self._inbox, []
                lanes = [*self._lanes.values(), *self._retired]
            for lane, request in inbox:
                self._admit(lane, request)
            for lane in lanes:
                if lane.busy():
                    self._step(lane)
            self._drop_drained()

    def _has_work(self) -> bool:
        lanes = [*self._lanes.values(), *self._retired]
        return any(lane.busy() for lane in lanes)

    def _admit(self, lane: Lane, request: _Request) -> None:
        if request.cancel.is_set():  # gone before it started
            return self._finish(request, "cancelled")
        self._next_id += 1
        try:
            ids = tensor([request.ids])
            request.handle = lane.pipe.add_request(self._next_id, ids, request.config)
        except RuntimeError as exc:
            return self._send(request, EngineUnavailable(f"OpenVINO refused the request: {exc}"))
        lane.requests[self._next_id] = request

    def _step(self, lane: Lane) -> None:
        for request in lane.requests.values():
            if request.cancel.is_set() and not request.stopping:
                request.stopping = True
                request.handle.stop()
        try:
            lane.pipe.step()
        except RuntimeError as exc:
            for request in lane.requests.values():
                self._send(request, EngineUnavailable(f"OpenVINO failed mid-answer: {exc}"))
            lane.requests.clear()
            return
        for request_id, request in list(lane.requests.items()):
            if self._collect(request):
                del lane.requests[request_id]

    def _collect(self, request: _Request) -> bool:
        """Hand new tokens to the streamer; True once the request is over."""
        handle = request.handle
        reason = None
        while handle.can_read():
            for output in handle.read().values():
                new = list(output.generated_ids)
                if new and not request.stopping:
                    request.generated += new
                    request.streamer.put(_Ids(new))
                reason = finish_reason(output.finish_reason, self._og) or reason
        if handle.get_status() == self._og.GenerationStatus.RUNNING:
            return False
        request.streamer.end()
        self._finish(request, reason)
        return True

    def _finish(self, request: _Request, reason: str | None) -> None:
        streamer = request.streamer
        if streamer.stopped_on is not None:
            final: Any = "stop"
        elif request.cancel.is_set():
            final = "cancelled"
        elif reason is not None:
            final = reason
        else:
            final = "length" if len(request.generated) >= request.max_tokens else "stop"
        first = streamer.first_token_at
        ttft = first - request.started if first else None
        completion = Completion(
            len(request.ids), len(request.generated), ttft, final, streamer.stopped_on
        )
        self._send(request, completion)

    def _send(self, request: _Request, item: Any) -> None:
        put = request.queue.put_nowait
        request.loop.call_soon_threadsafe(put, item)
        request.loop.call_soon_threadsafe(put, _DONE)

    def _drop_drained(self) -> None:
        with self._wake:
            self._retired = [lane for lane in self._retired if lane.busy()]

    def _fail_all(self, error: Exception) -> None:
        lanes = [*self._lanes.values(), *self._retired]
        for lane in lanes:
            for request in lane.requests.values():
                self._send(request, error)
            lane.requests.clear()
        for _, request in self._inbox:
            self._send(request, error)
        self._inbox = []


class _Ids:
    """Token ids in the shape the reference engine's streamer reads (`reshape(-1).tolist()`)."""

    def __init__(self, ids: list[int]) -> None:
        self._ids = ids

    def reshape(self, *_: int) -> _Ids:
        return self

    def tolist(self) -> list[int]:
        return self._ids
