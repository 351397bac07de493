"""The model-version registry straight in the database, for a service that is not running.

`tunedesk publish --offline` uses it where no service answers yet: the set-up of a fresh
machine (`make run` publishes the sample's demo adapter this way) or a container's entrypoint.
It speaks the same dictionaries as the HTTP client (service.versions.client.ModelsClient), so
the publish code does not know which one it has. The service loads the adapters of active and
canary versions when it starts (ModelVersions.restore); a service that is already running only
learns of a change made here when it restarts, so use the HTTP API there.
"""

from __future__ import annotations

from typing import Any

from service.config import Settings
from service.versions.schemas import ModelVersionOut
from service.versions.service import adapter_folder
from service.versions.store import ModelVersionStore, NewVersion

ACTOR = "cli"  # the audit trail's actor for changes made on the server's machine


class OfflineRegistry:
    """register / activate / canary on one tenant's versions, recorded with actor `cli`."""

    def __init__(
        self, store: ModelVersionStore, tenant_id: str, settings: Settings, base_model: str
    ) -> None:
        self._store = store
        self._tenant = tenant_id
        self._adapters_dir = settings.engine.adapters_dir
        self._default_adapter = settings.engine.adapter
        self._base_model = base_model

    @classmethod
    def open(cls, settings: Settings, tenant_id: str) -> OfflineRegistry:
        """The registry in the configured database (migrated first, as the service does)."""
        from service.db import make_engine, migrate, session_factory

        engine = make_engine(settings.db_url)
        migrate(engine)
        store = ModelVersionStore(session_factory(engine))
        # the name the engines report as model_name, as the API's registration records it
        return cls(store, tenant_id, settings, settings.model.directory.name)

    def versions(self) -> dict[str, Any]:
        rows = self._store.list_versions(self._tenant)
        return {
            "data": [_json(ModelVersionOut.of(row)) for row in rows],
            "default_adapter": self._default_adapter,
        }

    def register(
        self, name: str, adapter: str | None, evaluation: dict[str, Any] | None
    ) -> dict[str, Any]:
        if adapter is not None:  # the service loads it from there when it starts
            adapter_folder(self._adapters_dir, adapter)
        new = NewVersion(name, adapter, self._base_model, evaluation)
        return _json(ModelVersionOut.of(self._store.register(self._tenant, new, ACTOR)))

    def activate(self, name: str) -> dict[str, Any]:
        return _json(ModelVersionOut.of(self._store.activate(self._tenant, name, ACTOR)))

    def canary(self, name: str, share: float) -> dict[str, Any]:
        row = self._store.set_canary(self._tenant, name, share, ACTOR)
        return _json(ModelVersionOut.of(row))


def _json(version: ModelVersionOut) -> dict[str, Any]:
    return version.model_dump(mode="json")
