"""Publishing model versions: register, canary, activate, roll back, with the engine kept in step.

An adapter is loaded into the engine (vLLM's runtime adapter endpoint, or the CPU engine) when
its version is registered, and again before it starts to answer, since a restarted vLLM server
forgets runtime-loaded adapters. Nothing needs a restart.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from service.engines.base import Engine
from service.errors import InvalidAdapter, TunedeskError
from service.store.models import ModelVersion, ModelVersionEvent
from service.versions.chooser import RegistryVersions
from service.versions.store import ModelVersionStore, NewVersion, Rollback

logger = logging.getLogger(__name__)


class ModelVersions:
    def __init__(
        self,
        store: ModelVersionStore,
        engine: Engine,
        chooser: RegistryVersions,
        adapters_dir: Path | None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._chooser = chooser
        self._adapters_dir = adapters_dir

    @property
    def default_adapter(self) -> str | None:
        return self._chooser.default_adapter

    async def list_versions(self, tenant_id: str) -> list[ModelVersion]:
        return await asyncio.to_thread(self._store.list_versions, tenant_id)

    async def get(self, tenant_id: str, name: str) -> ModelVersion:
        return await asyncio.to_thread(self._store.get, tenant_id, name)

    async def events(self, tenant_id: str, name: str) -> list[ModelVersionEvent]:
        return await asyncio.to_thread(self._store.events, tenant_id, name)

    async def register(self, tenant_id: str, new: NewVersion, actor: str) -> ModelVersion:
        """A candidate version; its adapter must be loaded or in the adapters folder."""
        await self.ensure_loaded(new.adapter)
        return await asyncio.to_thread(self._store.register, tenant_id, new, actor)

    async def activate(self, tenant_id: str, name: str, actor: str) -> ModelVersion:
        await self.ensure_loaded((await self.get(tenant_id, name)).adapter)
        row = await asyncio.to_thread(self._store.activate, tenant_id, name, actor)
        self._chooser.invalidate(tenant_id)
        await self.unload_retired()
        return row

    async def canary(self, tenant_id: str, name: str, share: float, actor: str) -> ModelVersion:
        if share > 0:
            await self.ensure_loaded((await self.get(tenant_id, name)).adapter)
        row = await asyncio.to_thread(self._store.set_canary, tenant_id, name, share, actor)
        self._chooser.invalidate(tenant_id)
        return row

    async def rollback(self, tenant_id: str, name: str, actor: str) -> Rollback:
        result = await asyncio.to_thread(self._store.rollback, tenant_id, name, actor)
        if result.restored is not None:
            await self.ensure_loaded(result.restored.adapter)
        self._chooser.invalidate(tenant_id)
        await self.unload_retired()
        return result

    async def reject(
        self, tenant_id: str, name: str, actor: str, reason: str | None
    ) -> ModelVersion:
        row = await asyncio.to_thread(self._store.reject, tenant_id, name, actor, reason)
        self._chooser.invalidate(tenant_id)
        await self.unload_retired()
        return row

    async def unload_retired(self) -> None:
        """Free the engine of adapters no version can use any more (vLLM holds at most
        --max-loras at once). The configured default adapter stays; a retired version that is
        activated again by a rollback is loaded again."""
        retired = set(await asyncio.to_thread(self._store.retired_adapters))
        retired.discard(self._chooser.default_adapter or "")
        for adapter in sorted(retired & set(await self._engine.list_adapters())):
            try:
                await self._engine.unload_adapter(adapter)
            except TunedeskError as exc:  # already gone: nothing to free
                logger.info("adapter %r not unloaded: %s", adapter, exc.message)

    async def restore(self) -> None:
        """Load the adapters of every active and canary version (at start: a vLLM server that
        restarted has forgotten them). One that cannot load is logged, not fatal: its
        conversations fail with a clear error until it is fixed or rolled back."""
        for adapter in await asyncio.to_thread(self._store.serving_adapters):
            try:
                await self.ensure_loaded(adapter)
            except TunedeskError as exc:
                logger.warning("model version adapter %r not loaded: %s", adapter, exc.message)

    async def ensure_loaded(self, adapter: str | None) -> None:
        """Hot-load `adapter` from the adapters folder unless the engine already serves it."""
        if adapter is None or adapter in await self._engine.list_adapters():
            return
        folder = adapter_folder(self._adapters_dir, adapter)
        await self._engine.load_adapter(adapter, str(folder.resolve()))


def adapter_folder(adapters_dir: Path | None, adapter: str) -> Path:
    """Where the engine loads `adapter` from; InvalidAdapter when it is not there."""
    folder = adapters_dir / adapter if adapters_dir else None
    if folder is None or not (folder / "adapter_config.json").is_file():
        where = f"in {adapters_dir}" if adapters_dir else "(no adapters_dir set)"
        raise InvalidAdapter(
            f"Adapter {adapter!r} is neither loaded in the engine nor a LoRA adapter folder "
            f"{where}. Copy it there (tunedesk publish does) and try again."
        )
    return folder
