"""Widget configurations: read and written per publishable key, kept across key rotations."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from service.errors import InvalidRequest, KeyNotFound
from service.store.models import ApiKey, WidgetConfig, utcnow
from service.widget.schemas import WidgetConfig as Config

MAX_ROTATIONS = 20  # how far back a rotated key looks for its predecessor's configuration


class WidgetConfigStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, tenant_id: str, key_id: str) -> Config:
        """The key's configuration; a rotated key keeps the one of the key it replaced."""
        with self._sessions() as s:
            key = _publishable(s, tenant_id, key_id)
            current: ApiKey | None = key
            for _ in range(MAX_ROTATIONS):
                if current is None:
                    break
                row = s.get(WidgetConfig, current.id)
                if row is not None:
                    return Config.model_validate(row.config)
                current = s.get(ApiKey, current.rotated_from) if current.rotated_from else None
        return Config()

    def put(self, tenant_id: str, key_id: str, config: Config) -> Config:
        """Replace the key's configuration."""
        with self._sessions.begin() as s:
            _publishable(s, tenant_id, key_id)
            row = s.get(WidgetConfig, key_id)
            if row is None:
                row = WidgetConfig(key_id=key_id, tenant_id=tenant_id, config={})
                s.add(row)
            row.config = config.model_dump(mode="json")
            row.updated_at = utcnow()
        return config


def _publishable(s: Session, tenant_id: str, key_id: str) -> ApiKey:
    key = s.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise KeyNotFound(f"No key with id {key_id!r}.")
    if key.kind != "publishable":
        raise InvalidRequest(
            f"Key {key_id!r} is a secret key; widgets run on publishable keys (td_pk_...)."
        )
    return key
