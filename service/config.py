"""One Settings object, read from TUNEDESK_* environment variables (nested with __) or .env."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.console.settings import ConsoleSettings

PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "admin", "password", ""}
SAMPLE_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "sample"


class ModelSettings(BaseModel):
    """Where the base model's Hugging Face artefacts live."""

    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "tunedesk" / "models",
        description="Directory that `tunedesk model prepare` converts models into.",
    )
    name: str = Field(default="gemma-3-270m", description="Model name inside the cache.")
    path: Path | None = Field(
        default=None, description="Explicit model directory; overrides cache_dir/name."
    )

    @property
    def directory(self) -> Path:
        """The Hugging Face model directory the engines load."""
        return self.path if self.path is not None else self.cache_dir / self.name


class EngineSettings(BaseModel):
    """Which LLM engine answers, and how hard it may be pushed."""

    kind: Literal["local", "vllm", "openvino"] = Field(
        default="local",
        description="local: transformers on CPU; vllm: a vLLM server over HTTP; openvino: "
        "OpenVINO GenAI continuous batching on CPU (`tunedesk model prepare --engine openvino`).",
    )
    adapter: str | None = Field(default=None, description="LoRA adapter that answers by default.")
    vllm_url: str = Field(
        default="http://127.0.0.1:8001/v1", description="OpenAI-compatible base URL of vLLM."
    )
    vllm_api_key: str = Field(default="EMPTY", description="Bearer key vLLM was started with.")
    served_model_name: str | None = Field(
        default=None, description="Base model name on the vLLM server (default: the model name)."
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Longest wait for vLLM to answer.")
    max_retries: int = Field(default=2, ge=0, description="Retries before the first token only.")
    weights: Literal["int8", "int8-head", "fp32"] = Field(
        default="int8",
        description="int8: dynamic int8 linear layers, about 5x faster CPU decoding than fp32; "
        "int8-head: only the output projection in int8, the layers in fp32 (docs/evaluation.md).",
    )
    max_new_tokens: int = Field(default=192, ge=1, le=4096, description="Answer length cap.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 means greedy.")
    max_concurrency: int = Field(default=1, ge=1, description="Generations running at once.")
    max_queue: int = Field(default=16, ge=0, description="Requests waiting before 503.")
    batch_size: int = Field(
        default=16, ge=1, description="Requests the openvino engine decodes together."
    )
    threads: int | None = Field(default=None, description="torch CPU threads (default: all).")
    prefix_cache_size: int = Field(
        default=8, ge=0, description="Stable prompt prefixes whose KV cache the CPU engine keeps."
    )
    adapters_dir: Path | None = Field(
        default=None,
        description="LoRA adapters, one folder each, loaded at start; tunedesk publish copies "
        "new ones here (default: <data_dir>/adapters).",
    )


class KnowledgeSettings(BaseModel):
    """The knowledge base: Qdrant location, collection and retrieval depth."""

    qdrant_path: Path | None = Field(default=None, description="Knowledge base directory.")
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL (overrides path).")
    store: Literal["edge", "local"] = Field(
        default="edge", description="Embedded store: edge (Qdrant Edge) or local (local mode)."
    )
    collection: str = Field(default="tunedesk", description="Qdrant collection name.")
    top_k: int = Field(default=4, ge=1, le=20, description="Chunks placed in the prompt.")
    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Largest document accepted by upload."
    )
    catalog_dir: Path = Field(
        default=SAMPLE_KNOWLEDGE_DIR,
        description="Folder with products.yaml, troubleshooting/ and prompts/.",
    )


class ChatSettings(BaseModel):
    """Limits on what a customer may send."""

    max_message_chars: int = Field(default=4000, ge=1, description="Longest accepted message.")
    history_messages: int = Field(default=6, ge=0, description="Past messages considered.")
    max_prompt_tokens: int = Field(
        default=1536, ge=256, description="Prompt budget; rules and question are never cut."
    )
    history_tokens: int = Field(default=384, ge=0, description="Budget share kept for history.")
    source_chars: int = Field(
        default=700,
        ge=100,
        description="Most characters of one source in a prompt; a longer source shows the "
        "lines that match the question (service/prompting/excerpt.py).",
    )
    max_examples: int = Field(default=2, ge=0, description="Few-shot examples per prompt.")
    example_similarity: float = Field(
        default=0.75, ge=0, le=1, description="Least question similarity for an example."
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="On SIGTERM, how long answers being streamed may go on; then each ends "
        "with an `error` event (code shutting_down) and its `final` event.",
    )


class RateLimitSettings(BaseModel):
    """Requests allowed per API key and per client IP (`limits` notation, e.g. 60/minute)."""

    per_key: str = Field(default="600/minute", description="Per API key, across replicas.")
    per_ip: str = Field(default="300/minute", description="Per client IP address.")
    storage_url: str | None = Field(
        default=None,
        description="memory:// or redis://host:port/db (default: redis_url, else in-process).",
    )


class WebhookSettings(BaseModel):
    """Webhook deliveries: how long to wait for a receiver and how to retry."""

    max_attempts: int = Field(default=10, ge=1, description="Attempts before a delivery fails.")
    backoff_base_s: float = Field(default=30.0, gt=0, description="First retry delay; doubles.")
    backoff_cap_s: float = Field(default=3600.0, gt=0, description="Longest delay between tries.")
    timeout_s: float = Field(default=10.0, gt=0, description="Longest wait for a receiver.")
    poll_interval_s: float = Field(default=5.0, gt=0, description="How often due rows are sought.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Private or loopback targets webhooks may reach anyway (on-premises "
        'helpdesks): host names, IP addresses or CIDR networks, e.g. ["helpdesk.corp", '
        '"10.20.0.0/16"]. Every other target must be a public address.',
    )


class Settings(BaseSettings):
    """Everything configurable about tunedesk."""

    model_config = SettingsConfigDict(
        env_prefix="TUNEDESK_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default=Path("var"), description="Database and Qdrant files.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL (default SQLite).")
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=256 * 1024, description="Largest accepted request body.")
    admin_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for /v1/admin routes; unset disables them."
    )
    redis_url: str | None = Field(
        default=None, description="Redis for limits shared by replicas, e.g. redis://host:6379/0."
    )
    model: ModelSettings = ModelSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    engine: EngineSettings = EngineSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    chat: ChatSettings = ChatSettings()
    webhooks: WebhookSettings = WebhookSettings()
    console: ConsoleSettings = ConsoleSettings()

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        key = self.admin_api_key.get_secret_value() if self.admin_api_key else None
        if self.environment == "production" and key in PLACEHOLDER_SECRETS:
            raise ValueError(
                "TUNEDESK_ADMIN_API_KEY is a placeholder; set a long random value in production"
            )
        return self

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'tunedesk.db'}"
        if self.knowledge.qdrant_path is None and self.knowledge.qdrant_url is None:
            self.knowledge.qdrant_path = self.data_dir / "qdrant"
        if self.engine.adapters_dir is None:
            self.engine.adapters_dir = self.data_dir / "adapters"
        return self

    def as_env(self) -> dict[str, str]:
        """These settings as TUNEDESK_* variables, so that a `tunedesk` subprocess (a console
        job) runs with exactly the service's configuration, whatever set it (environment,
        .env, flags or code). A field left at None is left out: the subprocess's default."""
        env: dict[str, str] = {}

        def add(name: str, value: Any) -> None:
            if isinstance(value, BaseModel):
                for field in type(value).model_fields:
                    add(f"{name}__{field}" if name else field, getattr(value, field))
            elif isinstance(value, SecretStr):
                env[name] = value.get_secret_value()
            elif isinstance(value, bool):
                env[name] = "true" if value else "false"
            elif isinstance(value, str | Path | int | float):
                env[name] = str(value)
            elif value is not None:  # lists and mappings: pydantic-settings reads them as JSON
                env[name] = json.dumps(to_jsonable_python(value))

        add("", self)
        return {f"TUNEDESK_{name.upper()}": value for name, value in env.items()}

    @property
    def rate_limit_storage(self) -> str:
        """Where rate-limit counters live: explicit, else Redis when configured, else memory."""
        return self.rate_limits.storage_url or self.redis_url or "memory://"

    @property
    def db_url(self) -> str:
        """The database URL, always set after validation."""
        assert self.database_url is not None
        return self.database_url
