"""Shared fixtures: real parts everywhere (SQLite, Qdrant local mode, MiniLM, a tiny Gemma)."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from knowledge.embedding import Embedder
from knowledge.index import open_index
from knowledge.ingest import ingest
from service.app import Overrides, create_app
from service.auth.keys import KeyKind
from service.config import SAMPLE_KNOWLEDGE_DIR, Settings
from service.engines.artifacts import prepare_tokenizer
from service.store.models import DEFAULT_TENANT_ID
from service.store.tenants import KeySpec
from tests.tiny_model import build_tiny_adapter, build_tiny_gemma

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LIBC = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
SERVED = "tiny-gemma"  # the model name `tunedesk engine serve` serves the tiny model under


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Free what the test's apps and engines held before the next test builds its own.

    An app is a web of reference cycles (routes, middleware, components), so only the cyclic
    collector frees it; left to its thresholds, several apps' models and clients pile up first.
    """
    try:
        yield
    finally:
        gc.collect()
        _return_free_memory()


def _return_free_memory() -> None:
    """Hand freed heap pages back to the kernel (glibc keeps them otherwise), so RSS falls."""
    trim = getattr(LIBC, "malloc_trim", None)  # glibc only; elsewhere the next test reuses them
    if trim is not None:
        trim(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the `bigmem` tests first, while the process holds no embedder, models or heap debris yet:
    # that keeps the whole run's peak to the conversion's own (docs: README, Development)
    items.sort(key=lambda item: "bigmem" not in item.keywords)
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; no GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged MiniLM, loaded once for the whole run."""
    return Embedder()


@pytest.fixture(scope="session")
def gemma_tokenizer_dir() -> Path:
    """The real Gemma 3 tokenizer, read from the packaged GGUF once and cached."""
    return prepare_tokenizer(Settings().model.cache_dir / "gemma-3-tokenizer", report=print)


@pytest.fixture(scope="session")
def tiny_model_dir(gemma_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(gemma_tokenizer_dir, tmp_path_factory.mktemp("tiny") / "tiny-gemma")


@pytest.fixture(scope="session")
def tiny_adapters(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two LoRA adapters for the tiny model: name → folder."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: build_tiny_adapter(tiny_model_dir, root / name, seed)
        for name, seed in [("alpha", 1), ("beta", 2)]
    }


@pytest.fixture(scope="session")
def sample_index_dir(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample knowledge base ingested once, in the service's default store."""
    path = tmp_path_factory.mktemp("qdrant-sample")
    index = open_index("tunedesk", embedder, store=Settings().knowledge.store, path=path)
    try:
        ingest(index, SAMPLE_KNOWLEDGE_DIR / "docs")
    finally:
        index.close()
    return path


def copy_index(source: Path, target: Path) -> None:
    """Copy a Qdrant folder keeping its files sparse.

    Qdrant Edge preallocates 32 MiB WAL segments and storage pages, mostly holes: the sample
    index takes 2 MiB on disk but 186 MiB once ``shutil.copytree`` writes the holes out, and the
    suite copies it for every app it starts. ``cp --sparse=always`` keeps the holes.
    """
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(target)], check=True)


def make_settings(tmp_path: Path, model_dir: Path, qdrant_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        model={"path": model_dir},  # type: ignore[arg-type]
        knowledge={"qdrant_path": qdrant_dir},  # type: ignore[arg-type]
        engine={"max_new_tokens": 12},  # type: ignore[arg-type]
        **extra,
    )


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path, sample_index_dir: Path) -> Settings:
    qdrant = tmp_path / "qdrant"
    copy_index(sample_index_dir, qdrant)  # local mode locks its folder: one copy per app
    return make_settings(tmp_path, tiny_model_dir, qdrant)


ALL_SCOPES = ["chat", "agent", "admin"]


def new_key(
    app_client: TestClient,
    scopes: list[str] | None = None,
    tenant_id: str = DEFAULT_TENANT_ID,
    kind: KeyKind = "secret",
    origins: list[str] | None = None,
) -> str:
    """A real API key made through the tenant store of the client's app."""
    tenants = app_client.app.state.components.tenants  # type: ignore[attr-defined]
    spec = KeySpec("tests", kind, scopes or ALL_SCOPES, origins)
    return str(tenants.create_key(tenant_id, spec)[1])


@pytest.fixture
def client(settings: Settings, embedder: Embedder) -> Iterator[TestClient]:
    """The app, called with a secret key of the default tenant holding every scope."""
    app = create_app(settings, Overrides(embedder=embedder))
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {new_key(test_client)}"
        yield test_client


OPERATOR_KEY = "operator-key-for-tests-0123456789"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tunedesk.db'}"
        return
    yield from _fresh_postgres_database()


def _fresh_postgres_database() -> Iterator[str]:
    import uuid

    import psycopg

    name = f"tunedesk_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI has PostgreSQL: a missing server is a failure there, not a skip
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_client(settings: Settings, database_url: str, embedder: Embedder) -> Iterator[TestClient]:
    """Like `client`, on the database of the `database_url` parameter, with an operator key."""
    update = {"database_url": database_url, "admin_api_key": SecretStr(OPERATOR_KEY)}
    app = create_app(settings.model_copy(update=update), Overrides(embedder=embedder))
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {new_key(test_client)}"
        yield test_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def engine_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tunedesk engine serve` on the tiny model, as a separate process.

    Module-scoped: a server holds about 1 GB (torch, and 0.3 GB of it the Gemma tokenizer's
    262k-entry vocabulary), so it lives only while the module that needs it runs; kept for the
    whole session it sat beside every later test and took the suite's peak to 5.9 GiB."""
    yield from serve_engine(tiny_model_dir, tmp_path_factory, [])


def serve_engine(
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    args: list[str],
    **settings: str,
) -> Iterator[str]:
    """`tunedesk engine serve ARGS` on a model, with TUNEDESK_* settings; yields its /v1 URL."""
    port = free_port()
    env = os.environ | {
        "TUNEDESK_MODEL__PATH": str(model_dir),
        "TUNEDESK_ENGINE__SERVED_MODEL_NAME": SERVED,
        "TUNEDESK_DATA_DIR": str(tmp_path_factory.mktemp("engine-server")),
        **{f"TUNEDESK_{key.upper()}": value for key, value in settings.items()},
    }
    log = (tmp_path_factory.mktemp("logs") / "engine.log").open("w")
    cmd = [sys.executable, "-m", "service.cli", "engine", "serve", *args, "--port", str(port)]
    with log, start_child(cmd, env=env, stdout=log, stderr=subprocess.STDOUT) as process:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"engine server exited; see {log.name}"
            assert time.monotonic() < deadline, "engine server did not become healthy"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield f"{url}/v1"


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> None:
    """In the child, before exec: have the kernel send SIGTERM when the parent dies.

    That covers a pytest killed with SIGKILL, where no finalizer runs. The signal follows the
    parent *thread*, so fixture processes are started from pytest's main thread.
    """
    if LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def start_child(cmd: list[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A fixture process that dies with the test session: stopped on exit, or by the kernel."""
    preexec = _die_with_parent if sys.platform == "linux" else None
    process = subprocess.Popen(cmd, preexec_fn=preexec, **popen)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
