"""The agent console in a real browser (Debian's Chromium through Playwright): sign in, walk
the queue with the keyboard, rate, correct an answer, survive a session that ends mid-edit,
and find the correction in the export. Set TUNEDESK_CONSOLE_SCREENSHOTS=docs/screenshots to
write the screenshots the docs show."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.chat.records import source
from service.config import Settings
from service.console.accounts import AgentAccounts
from service.db import session_factory
from service.store.models import AgentSession, Message, utcnow
from service.store.repository import AnswerRecord, ConversationStore, RatingInput
from service.versions.store import ModelVersionStore, NewVersion
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"),
]
PASSWORD = "correct horse battery"
ROUTER = "halcyon-router-x1000"
CORRECTION = "Unplug the router for 30 seconds, then check that the WAN cable is in the blue port."
QUESTIONS = [
    ("my router shows error E5, what do I do?", "Restart the router and wait.", "stop", "bad"),
    ("router keeps dropping wifi", "Move the router away from the microwave.", "length", None),
    ("how do I reset the thermostat", "I'm not sure about that one.", "low_confidence", None),
    ("I want a human", "I'm connecting you with our team.", "handoff", None),
    ("camera night mode?", "Turn on night mode in the app [1].", "stop", "good"),
    ("update router firmware", "Open the app, then Settings › Firmware [1].", "stop", None),
]


def seed(settings: Settings, app: Any) -> list[str]:
    """Answers of two model versions over ten days, with real sources from the knowledge base."""
    sessions = session_factory(create_engine(settings.db_url))
    store = ConversationStore(sessions)
    index = app.state.components.indexes.default
    ids = []
    for i, (question, text, finish, verdict) in enumerate(QUESTIONS * 3):
        hits = index.search_text(question, None, 2)
        conversation = store.start_conversation("default", ROUTER, ["api", "widget"][i % 2])
        store.add_user_message(conversation.id, question, ROUTER, [])
        record = AnswerRecord(
            content=text,
            product=ROUTER if i % 3 else "halcyon-camera-c3",
            sources=[source(n, h).model_dump() for n, h in enumerate(hits, 1)],
            citations=[1] if "[1]" in text else [],
            troubleshooting_template_id="router-error-e5" if i == 0 else None,
            troubleshooting_template_version=1 if i == 0 else None,
            prompt_template_id="support-rag",
            prompt_template_version=3,
            model="gemma-3-270m",
            adapter="sample-sft-2" if i % 2 else None,
            model_version="v2" if i % 2 else "v1",
            prompt_tokens=900 + i,
            completion_tokens=40 + i,
            ttft_ms=500.0 + i,
            latency_ms=1800.0 + 10 * i,
            finish_reason=finish,
        )
        answer = store.add_answer(conversation.id, record)
        if verdict:
            store.rate("default", answer.id, RatingInput(rater="customer", label=verdict))
        if finish == "handoff":
            store.mark_handoff(conversation.id, "asked_for_human")
        if verdict == "good" or i % 4 == 1:
            store.close("default", conversation.id)
        with sessions.begin() as s:
            when = utcnow() - timedelta(days=i % 10, hours=i)
            s.execute(update(Message).where(Message.id == answer.id).values(created_at=when))
        ids.append(answer.id)
    AgentAccounts(sessions, 3600).create("default", "ana@example.com", PASSWORD, "admin", "Ana")
    return ids


@pytest.fixture
def live_app(settings: Settings, embedder: Embedder) -> Iterator[tuple[str, Any]]:
    port = free_port()
    app = create_app(settings, Overrides(embedder=embedder))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=30)


def shots(tmp_path: Path) -> Path:
    wanted = os.environ.get("TUNEDESK_CONSOLE_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path


def sign_in(page: Any) -> None:
    page.fill('input[name="email"]', "ana@example.com")
    page.fill('input[name="password"]', PASSWORD)
    page.keyboard.press("Enter")


def test_rate_and_correct_with_the_keyboard_and_find_it_in_the_export(
    live_app: tuple[str, Any], settings: Settings, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, app = live_app
    seed(settings, app)
    out = shots(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(f"{url}/console")
        expect(page).to_have_url(re.compile(r"/console/login\?next="))
        sign_in(page)
        rows = page.locator("#queue tr.item")
        expect(rows).to_have_count(len(QUESTIONS) * 3)
        expect(rows.first.locator(".need")).to_have_text("customer thumbs-down")
        page.screenshot(path=str(out / "console-queue.png"))
        ids = [rows.nth(i).get_attribute("data-id") for i in range(4)]
        page.keyboard.press("j")
        page.keyboard.press("j")
        page.keyboard.press("k")
        expect(rows.nth(1)).to_have_class(re.compile("selected"))
        page.keyboard.press("k")
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(f"/console/answers/{ids[0]}"))
        expect(page.locator(".msg.focus .citations li").first).to_be_visible()
        page.keyboard.press("b")
        page.keyboard.press("2")
        page.keyboard.press("e")
        page.keyboard.press("Control+A")
        page.keyboard.type(CORRECTION)
        page.keyboard.press("Escape")
        page.keyboard.press("t")
        page.keyboard.type("wrong-step")
        page.keyboard.press("Escape")
        page.screenshot(path=str(out / "console-conversation.png"), full_page=True)
        page.keyboard.press("s")  # saved: on to the next answer in the queue
        expect(page).to_have_url(re.compile(f"/console/answers/{ids[1]}"))
        page.keyboard.press("g")
        page.keyboard.press("5")
        page.keyboard.press("s")
        expect(page).to_have_url(re.compile(f"/console/answers/{ids[2]}"))
        # the session ends mid-edit: the draft waits in localStorage through the new sign-in
        page.keyboard.press("g")
        page.keyboard.press("c")
        page.keyboard.type("draft that survives")
        page.keyboard.press("Escape")
        with Session(create_engine(settings.db_url)) as s, s.begin():
            s.execute(update(AgentSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        page.keyboard.press("s")
        expect(page).to_have_url(re.compile(r"/console/login\?next="))
        sign_in(page)
        expect(page).to_have_url(re.compile(f"/console/answers/{ids[2]}"))
        expect(page.locator("#status")).to_have_text("Draft restored")
        expect(page.locator('input[name="comment"]')).to_have_value("draft that survives")
        page.keyboard.press("s")
        expect(page).to_have_url(re.compile(f"/console/answers/{ids[3]}"))
        page.goto(f"{url}/console/answers/{ids[0]}")
        expect(page.locator(".msg.focus .agreement")).to_contain_text("1 agent: 0 good · 1 bad")
        page.goto(f"{url}/console/dashboard")
        expect(page.locator("figure.chart svg").first).to_be_visible()
        page.screenshot(path=str(out / "console-dashboard.png"), full_page=True)
        exported = page.request.get(f"{url}/console/api/export?rating=rated").text()
        browser.close()
    lines = exported.splitlines()
    assert len(lines) == 3 and CORRECTION in exported and "draft that survives" in exported
    assert '"tags": ["wrong-step"]' in exported and '"by": "ana@example.com"' in exported


def test_the_versions_form_applies_and_refuses_a_version_that_skipped_the_gate(
    live_app: tuple[str, Any], settings: Settings
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, app = live_app
    seed(settings, app)
    versions = ModelVersionStore(session_factory(create_engine(settings.db_url)))
    base = app.state.components.engine.model_name
    versions.register("default", NewVersion("by-hand", None, base), "tests")
    verdict = {"passed": True, "setup": {"set": "knowledge/sample/eval", "questions": 20}}
    versions.register("default", NewVersion("gated", None, base, verdict), "tests")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(f"{url}/console/retrain")
        sign_in(page)
        expect(page).to_have_url(f"{url}/console/retrain")
        form = page.locator("form[action='/console/api/versions']")  # it has a field "action"
        form.locator('select[name="action"]').select_option("activate")
        form.locator('input[name="name"]').fill("by-hand")
        form.locator('button[type="submit"]').click()
        expect(page.locator("#out")).to_contain_text(
            "by-hand has not been through the publish gate"
        )
        form.locator('input[name="name"]').fill("gated")
        form.locator('button[type="submit"]').click()
        expect(page.locator("#out")).to_contain_text("gated: active")
        row = page.locator("table.plain tr", has_text=re.compile(r"^\s*gated"))
        expect(row).to_contain_text("active")  # after the page reloads
        expect(row).to_contain_text("passed on 20 questions")
        browser.close()
