"""Issue 13's probes and faults against a live `tunedesk serve`, with what happened.

Starts the real service as a subprocess (prepared Gemma 3 270M on the CPU engine, MiniLM, the
sample knowledge base), on loopback only, and runs each probe: webhook SSRF, a chunked 100 MB
body, a lone surrogate, every key type against another tenant, SIGTERM mid-stream, the engine
killed mid-stream, a PostgreSQL restart (a throwaway cluster of its own), Redis going away (a
redis-server of its own) and a 50-request burst. Prints one block per probe; docs/reliability.md
quotes a run. Usage: python -m bench.probes [--only ssrf,burst,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from service.config import SAMPLE_KNOWLEDGE_DIR
from service.db import make_engine, migrate, session_factory
from service.store.models import DEFAULT_TENANT_ID
from service.store.tenants import KeySpec, TenantStore

QUESTION = "my router shows error E5, what do I do?"
OPERATOR_KEY = "probe-operator-key-0123456789abcdef"
SITE = "https://shop.example.com"
Report = dict[str, Any]


@dataclass
class Server:
    """A `tunedesk serve` process on a loopback port, with its keys."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, key: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}", **extra}

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingested(root: Path) -> Path:
    """The sample docs ingested once; each server gets a copy (an embedded store locks it)."""
    base = root / "base"
    if not (base / "qdrant").exists():
        env = os.environ | {"TUNEDESK_DATA_DIR": str(base)}
        docs = str(SAMPLE_KNOWLEDGE_DIR / "docs")
        subprocess.run([sys.executable, "-m", "service.cli", "ingest", docs], env=env, check=True)
    return base / "qdrant"


def make_keys(database_url: str) -> dict[str, str]:
    """Tenant A (the default) and B, with a key of every kind and scope."""
    engine = make_engine(database_url)
    migrate(engine)
    tenants = TenantStore(session_factory(engine))
    other = tenants.create_tenant("tenant-b", "Tenant B", None).id
    specs = {
        "a_secret": (DEFAULT_TENANT_ID, KeySpec("a", "secret", ["chat", "agent", "admin"], None)),
        "a_widget": (DEFAULT_TENANT_ID, KeySpec("a-w", "publishable", ["widget"], [SITE])),
        "b_chat": (other, KeySpec("b-chat", "secret", ["chat"], None)),
        "b_agent": (other, KeySpec("b-agent", "secret", ["agent"], None)),
        "b_admin": (other, KeySpec("b-admin", "secret", ["admin"], None)),
        "b_widget": (other, KeySpec("b-w", "publishable", ["widget"], [SITE])),
    }
    keys = {name: str(tenants.create_key(t, spec)[1]) for name, (t, spec) in specs.items()}
    engine.dispose()
    return keys | {"operator": OPERATOR_KEY, "b_tenant_id": other}


@contextmanager
def serve(root: Path, name: str, **env: str) -> Iterator[Server]:
    data = root / name
    data.mkdir()
    shutil.copytree(ingested(root), data / "qdrant")
    database_url = env.get("TUNEDESK_DATABASE_URL", f"sqlite:///{data / 'tunedesk.db'}")
    keys = make_keys(database_url)
    port = free_port()
    full_env = os.environ | {
        "TUNEDESK_DATA_DIR": str(data),
        "TUNEDESK_ADMIN_API_KEY": OPERATOR_KEY,
        "TUNEDESK_ENGINE__MAX_NEW_TOKENS": "48",  # keeps the burst short on a CPU
        **env,
    }
    log = (data / "serve.log").open("w")
    cmd = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, data, keys)
    try:
        wait_until(lambda: _up(server), 300, f"server {name} did not start; see {log.name}")
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)
        log.close()


def _up(server: Server) -> bool:
    assert server.process.poll() is None, "tunedesk serve exited"
    try:
        return httpx.get(f"{server.url}/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(probe: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.5)


def error_of(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"]["code"])
    return response.headers.get("content-type", "")


def sse(server: Server, body: dict[str, Any], on_token: Callable[[], None] | None = None) -> Report:
    """One streamed answer: its status, the event names in order, and how long it took."""
    started, names, last = time.monotonic(), [], {}
    headers = server.headers("a_secret", Accept="text/event-stream")
    with httpx.stream(
        "POST", f"{server.url}/v1/chat", json=body, headers=headers, timeout=120
    ) as response:
        if response.status_code != 200:
            response.read()
            return {"status": response.status_code, "error": error_of(response)}
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                names.append(name)
                last[name] = json.loads(line.removeprefix("data: "))
                if name == "token" and names.count("token") == 3 and on_token:
                    on_token()
    error = last.get("error", {}).get("error", {}).get("code")
    return {
        "status": 200,
        "tokens": names.count("token"),
        "ended_with": names[-2:],
        "error_code": error,
        "answer_chars": len(last.get("final", {}).get("answer", "")),
        "seconds": round(time.monotonic() - started, 2),
    }


# --- the probes -------------------------------------------------------------------------------

SSRF_URLS = [
    "http://127.0.0.1:8000/v1/admin",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://[::1]:8000/",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0:8000/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/hook",
    "http://192.168.1.1/hook",
    "http://localhost:6379/",
]


def probe_ssrf(server: Server) -> Report:
    out = {}
    for url in SSRF_URLS:
        r = httpx.post(
            f"{server.url}/v1/webhooks", json={"url": url}, headers=server.headers("a_secret")
        )
        out[url] = f"{r.status_code} {error_of(r)}"
    listed = httpx.get(f"{server.url}/v1/webhooks", headers=server.headers("a_secret")).json()
    return {"registrations": out, "endpoints stored": len(listed)}


def probe_chunked(server: Server, megabytes: int = 100) -> Report:
    def body() -> Iterator[bytes]:
        chunk = b"x" * (1024 * 1024)
        for _ in range(megabytes):
            yield chunk

    before = server.rss_mib()
    started = time.monotonic()
    headers = server.headers("a_secret", **{"Content-Type": "application/json"})
    try:
        r = httpx.post(f"{server.url}/v1/chat", content=body(), headers=headers, timeout=60)
        outcome = f"{r.status_code} {error_of(r)}"
    except httpx.HTTPError as exc:  # the server answered 413 and closed while we still sent
        outcome = f"connection closed while sending ({type(exc).__name__})"
    return {
        "sent": f"{megabytes} MB, Transfer-Encoding: chunked",
        "outcome": outcome,
        "seconds": round(time.monotonic() - started, 2),
        "server RSS MiB before/after": [round(before), round(server.rss_mib())],
    }


def probe_surrogate(server: Server) -> Report:
    headers = server.headers("a_secret", **{"Content-Type": "application/json"})
    count = lambda: len(  # noqa: E731
        httpx.get(f"{server.url}/v1/conversations?limit=100", headers=headers).json()["data"]
    )
    before = count()
    r = httpx.post(f"{server.url}/v1/chat", content=rb'{"message": "hi \ud800"}', headers=headers)
    return {
        "outcome": f"{r.status_code} {error_of(r)}",
        "message": r.json()["error"]["message"][:120],
        "conversations before/after": [before, count()],
    }


def probe_cross_tenant(server: Server) -> Report:
    """Tenant A's conversation, answer and webhook, tried with each of tenant B's keys."""
    a = server.headers("a_secret")
    chat = httpx.post(
        f"{server.url}/v1/chat", json={"message": "I want a human please"}, headers=a, timeout=60
    ).json()
    conversation, answer = chat["conversation_id"], chat["message_id"]
    hook = httpx.post(
        f"{server.url}/v1/webhooks", json={"url": "https://helpdesk.example.com/h"}, headers=a
    ).json()["id"]
    attempts = {
        "read conversation": ("GET", f"/v1/conversations/{conversation}", None),
        "post message": ("POST", f"/v1/conversations/{conversation}/messages", {"message": "x"}),
        "hand off": ("POST", f"/v1/conversations/{conversation}/handoff", {"reason": "x"}),
        "rate answer": ("POST", f"/v1/messages/{answer}/rating", {"rating": "good"}),
        "read webhook": ("GET", f"/v1/webhooks/{hook}", None),
        "list conversations": ("GET", "/v1/conversations", None),
    }
    callers = {
        "B secret chat": server.headers("b_chat"),
        "B secret agent": server.headers("b_agent"),
        "B secret admin": server.headers("b_admin"),
        "B widget": server.headers("b_widget", Origin=SITE),
        "operator as B": server.headers(
            "operator", **{"Tunedesk-Tenant": server.keys["b_tenant_id"]}
        ),
        "A widget (api conversation)": server.headers("a_widget", Origin=SITE),
    }
    matrix = {}
    for who, headers in callers.items():
        row = {}
        for what, (method, path, body) in attempts.items():
            r = httpx.request(method, f"{server.url}{path}", json=body, headers=headers)
            leaked = what == "list conversations" and conversation in r.text
            row[what] = f"{r.status_code}{' LEAK' if leaked else ''}"
        matrix[who] = row
    return matrix


def probe_burst(server: Server, n: int = 50) -> Report:
    headers = server.headers("a_secret")

    def one(i: int) -> tuple[int, str, str | None]:
        body = {"message": f"{QUESTION} (customer {i})"}
        r = httpx.post(f"{server.url}/v1/chat", json=body, headers=headers, timeout=300)
        return (
            r.status_code,
            error_of(r) if r.status_code != 200 else "",
            r.headers.get("Retry-After"),
        )

    def stored() -> int:
        page = httpx.get(f"{server.url}/v1/conversations?limit=100", headers=headers).json()
        return len(page["data"])

    before, started = stored(), time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    return {
        "requests": n,
        "outcomes": dict(Counter(f"{s} {c}".strip() for s, c, _ in results)),
        "Retry-After on every 503": all(ra for s, _, ra in results if s == 503),
        "seconds": round(time.monotonic() - started, 1),
        "conversations stored (one per 200)": stored() - before,
    }


# the demo adapter answers in streamed sentences (the base model's text is mostly held back
# by answer hygiene and replaced), and 192 tokens leave time to act mid-stream
ANSWERING = {
    "TUNEDESK_ENGINE__ADAPTERS_DIR": str(SAMPLE_KNOWLEDGE_DIR / "adapters"),
    "TUNEDESK_ENGINE__ADAPTER": "sample-sft-2",
    "TUNEDESK_ENGINE__MAX_NEW_TOKENS": "192",
}


def probe_sigterm(root: Path) -> Report:
    env = ANSWERING | {"TUNEDESK_CHAT__SHUTDOWN_GRACE_S": "0.5"}
    with serve(root, "sigterm", **env) as server:
        signalled: list[float] = []

        def terminate() -> None:
            signalled.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)

        cut = sse(server, {"message": QUESTION}, on_token=terminate)
        code = server.process.wait(timeout=60)
    log = (server.data_dir / "serve.log").read_text()
    return {
        "grace": "0.5 s",
        "stream": cut,
        "exit": code,
        "clean shutdown": "Application shutdown complete" in log,
    }


def probe_engine_killed(root: Path) -> Report:
    port = free_port()
    env = os.environ | ANSWERING | {"TUNEDESK_DATA_DIR": str(root / "engine")}
    cmd = [sys.executable, "-m", "service.cli", "engine", "serve", "--port", str(port)]
    engine_log = (root / "engine.log").open("w")
    engine = subprocess.Popen(cmd, env=env, stdout=engine_log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/health"), 300, "engine down")
        vllm = ANSWERING | {
            "TUNEDESK_ENGINE__KIND": "vllm",
            "TUNEDESK_ENGINE__VLLM_URL": f"http://127.0.0.1:{port}/v1",
            "TUNEDESK_ENGINE__MAX_RETRIES": "0",
        }
        with serve(root, "engine-killed", **vllm) as server:
            killed = sse(server, {"message": QUESTION}, on_token=engine.kill)
            after = httpx.post(
                f"{server.url}/v1/chat",
                json={"message": QUESTION},
                headers=server.headers("a_secret"),
            )
            return {
                "stream while the engine was SIGKILLed": killed,
                "next request": f"{after.status_code} {error_of(after)}",
                "Retry-After": after.headers.get("Retry-After"),
            }
    finally:
        engine.kill()
        engine.wait()
        engine_log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def probe_postgres_restart(root: Path) -> Report:
    """A PostgreSQL cluster of this probe's own (the machine's shared one is left alone)."""
    port = free_port()
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "probe"]
    subprocess.run(
        ["pg_createcluster", version, "probe", "-p", str(port), "--", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run([*ctl, "start"], check=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        with serve(root, "postgres", TUNEDESK_DATABASE_URL=url) as server:
            return _through_restart(server, ctl)
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, "probe"], check=False)


def _through_restart(server: Server, ctl: list[str]) -> Report:
    get = lambda: httpx.get(  # noqa: E731
        f"{server.url}/v1/conversations", headers=server.headers("a_secret"), timeout=30
    )
    before = get()
    subprocess.run([*ctl, "stop", "-m", "fast"], check=True)
    down = get()
    subprocess.run([*ctl, "start"], check=True)
    after = get()
    return {
        "before": before.status_code,
        "while stopped": f"{down.status_code} {error_of(down)}",
        "Retry-After while stopped": down.headers.get("Retry-After"),
        "envelope while stopped": down.json().get("error", {}),
        "after start": after.status_code,
    }


def probe_redis_down(root: Path) -> Report:
    """A redis-server of this probe's own holds the rate-limit counters, then goes away."""
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        env = {
            "TUNEDESK_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "TUNEDESK_RATE_LIMITS__PER_KEY": "5/minute",
        }
        with serve(root, "redis", **env) as server:
            up = _statuses(server, 7)
            redis.kill()
            redis.wait()
            down = _statuses(server, 7)
            redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            time.sleep(1)
            back = _statuses(server, 7)
        return {
            "limit": "5/minute per key",
            "7 requests, Redis up": up,
            "7 requests, Redis killed": down,
            "7 requests, Redis restarted (empty)": back,
        }
    finally:
        redis.kill()
        redis.wait()


def _statuses(server: Server, n: int) -> dict[str, Any]:
    started = time.monotonic()
    codes = [
        httpx.get(f"{server.url}/v1/products", headers=server.headers("a_secret")).status_code
        for _ in range(n)
    ]
    return {"statuses": dict(Counter(codes)), "seconds": round(time.monotonic() - started, 2)}


SHARED = {"ssrf": probe_ssrf, "chunked": probe_chunked, "surrogate": probe_surrogate,
          "cross_tenant": probe_cross_tenant, "burst": probe_burst}  # fmt: skip
OWN = {"sigterm": probe_sigterm, "engine_killed": probe_engine_killed,
       "postgres_restart": probe_postgres_restart, "redis_down": probe_redis_down}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Comma-separated probe names.")
    args = parser.parse_args()
    wanted = set(filter(None, args.only.split(","))) or set(SHARED) | set(OWN)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if wanted & set(SHARED):
            with serve(root, "shared") as server:
                for name in [n for n in SHARED if n in wanted]:
                    show(name, partial(SHARED[name], server))
        for name in [n for n in OWN if n in wanted]:
            show(name, partial(OWN[name], root))


def show(name: str, run: Callable[[], Report]) -> None:
    started = time.monotonic()
    try:
        result: Any = run()
    except Exception as exc:  # one failed probe is reported; the others still run
        result = {"probe failed": f"{type(exc).__name__}: {exc}"}
    print(f"== {name} ({time.monotonic() - started:.0f} s)")
    print(json.dumps(result, indent=2, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    threading.current_thread().name = "probes"
    main()
