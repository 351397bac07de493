"""Each tenant's knowledge base is its own Qdrant collection on one client."""

from __future__ import annotations

import threading

from qdrant_client import QdrantClient

from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex
from knowledge.stores.base import VectorStore
from service.store.models import DEFAULT_TENANT_ID


class TenantIndexes:
    """The default tenant keeps the configured collection (what `tunedesk ingest` fills);
    any other tenant gets `<collection>--<tenant id>`."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        embedder: Embedder,
        store: VectorStore | None = None,
    ) -> None:
        self.client = client
        self.store = store  # where the chunks live (None: in the client's own collections)
        self.embedder = embedder
        self._collection = collection
        self._indexes: dict[str, KnowledgeIndex] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> KnowledgeIndex:
        return self.for_tenant(DEFAULT_TENANT_ID)

    def collection_for(self, tenant_id: str) -> str:
        if tenant_id == DEFAULT_TENANT_ID:
            return self._collection
        return f"{self._collection}--{tenant_id}"

    def for_tenant(self, tenant_id: str) -> KnowledgeIndex:
        with self._lock:
            index = self._indexes.get(tenant_id)
            if index is None:
                collection = self.collection_for(tenant_id)
                index = KnowledgeIndex(self.client, collection, self.embedder, store=self.store)
                self._indexes[tenant_id] = index
            return index
