"""The demo site in a real browser: Debian's Chromium driven by Playwright, the widget embedded
by its one script tag, answered by the tiny random model."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.config import Settings
from service.store.models import Rating

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """The app under uvicorn in a thread on loopback; stopped (lifespan closed) on exit."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def demo_site(settings: Settings, embedder: Embedder) -> Iterator[str]:
    """The service as `make run` serves it: its demo key is for the configured host:port."""
    port = free_port()
    app = create_app(settings.model_copy(update={"port": port}), Overrides(embedder=embedder))
    with serve(app, port) as url:
        yield url


def test_the_demo_site_s_widget_answers_and_takes_a_rating(
    demo_site: str, settings: Settings, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(demo_site + "/products/x1000")
        expect(page.get_by_role("heading", name="Halcyon X1000 Wi-Fi 6 Router")).to_be_visible()
        page.get_by_role("button", name="Chat with support").click()
        expect(page.get_by_role("dialog", name="Halcyon Home support")).to_be_visible()
        page.get_by_role("button", name="My router shows error E3, what do I do?").click()
        expect(page.locator(".msg.user")).to_have_text(
            "You: My router shows error E3, what do I do?"
        )
        helpful = page.get_by_role("button", name="Helpful", exact=True)
        expect(helpful).to_be_visible(timeout=120_000)
        assert page.locator(".msg.bot .body").last.inner_text().strip()  # the streamed answer
        assert int(page.locator(".msg.bot").last.get_attribute("data-tokens") or 0) >= 1
        expect(page.locator(".sources li").first).to_contain_text("halcyon-router-x1000")
        helpful.click()
        page.get_by_role("button", name="Send comment").click()
        expect(page.locator(".rate")).to_have_text("Thanks for the feedback.")
        page.screenshot(path=str(tmp_path / "demo.png"))
        browser.close()
    with Session(create_engine(settings.db_url)) as s:
        rating = s.scalars(select(Rating)).one()
    assert (rating.label, rating.rater) == ("good", "customer")
