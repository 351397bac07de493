"""The demo page in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
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


@pytest.fixture
def live_server(settings: Settings, embedder: Embedder) -> Iterator[str]:
    port = free_port()
    app = create_app(settings, Overrides(embedder=embedder))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_ask_watch_the_answer_stream_and_rate_it(
    live_server: str, settings: Settings, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(live_server)
        expect(page.locator("#product option")).to_have_count(4)
        page.select_option("#product", "halcyon-router-x1000")
        page.fill("#message", "my router shows error E5, what do I do?")
        page.keyboard.press("Enter")
        expect(page.locator(".msg.user")).to_have_text("my router shows error E5, what do I do?")
        sources = page.locator(".msg.bot .sources li")
        expect(sources.first).to_contain_text(
            "docs/halcyon-router-x1000/error-codes.md", timeout=60_000
        )
        assert page.locator(".msg.bot span").inner_text().strip()  # the streamed answer text
        page.get_by_role("button", name="Helpful", exact=True).click()
        expect(page.locator(".msg.bot .meta")).to_contain_text("Thanks for the feedback")
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        browser.close()
    with Session(create_engine(settings.db_url)) as s:
        rating = s.scalars(select(Rating)).one()
    assert (rating.label, rating.rater) == ("good", "customer")
