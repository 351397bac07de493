"""The widget in a real browser: Debian's Chromium driven by Playwright, on a page served from
a second loopback origin, talking to the API on the first across CORS.

The answers come from a scripted engine (the engine protocol, a fixed text streamed a few
characters at a time) because these tests need to know what the answer says: citation
numbers, Markdown, an HTML payload. The demo site with the tiny model is tests/test_browser.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.engines.base import ChatMessage, EngineEvent, SamplingParams
from service.store.models import DEFAULT_TENANT_ID
from service.store.tenants import KeySpec
from tests.conftest import copy_index, make_settings
from tests.test_answer_hygiene import ScriptedEngine
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed"),
]
ROUTER = "halcyon-router-x1000"
QUESTION = "My router shows error E3, what do I do?"
ANSWER = (
    "E3 means the router sees no cable on its WAN port [1].\n\n"
    "- Push the cable firmly into the **blue WAN port** [1]\n"
    "- Try another Ethernet cable and check that the modem is on [2]\n\n"
    "If the light stays red, restart the router."
)
PAYLOAD = (
    'Here: <img src=x onerror="window.__pwned=1"> and '
    "<script>window.__pwned=2</script> [<a href=javascript:window.__pwned=3>link</a>](x) "
    "**still** text about the WAN port [1]."
)


class SlowScripted(ScriptedEngine):
    """The scripted engine with a pause between deltas, so tokens visibly arrive one by one."""

    def say(self, text: str) -> None:
        self.pieces = [text[i : i + 4] for i in range(0, len(text), 4)]

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None = None
    ) -> AsyncGenerator[EngineEvent]:
        async for event in super().stream(messages, params, adapter):
            await asyncio.sleep(0.02)
            yield event


@dataclass
class Sites:
    api: str  # the tunedesk service
    host: str  # the vendor's site, allowed by the key
    other: str  # another site, not allowed
    key: str  # publishable, for `host`
    secret: str  # a secret key of the same tenant, to check through the API
    engine: SlowScripted

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.secret}"}
        r = httpx.get(f"{self.api}/v1/conversations/{conversation_id}", headers=headers)
        assert r.status_code == 200, r.text
        return dict(r.json())


def host_page(api: str, key: str) -> bytes:
    """A vendor's page: its own CSS (which must not reach the widget) and the one tag."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Vendor</title>
<style>* {{ font-family: serif !important; color: red; }} button {{ background: lime; }}</style>
</head><body><h1>A vendor's site</h1><p><a href="/other-page">Another page</a></p>
<script src="{api}/widget.js" data-key="{key}" data-product="{ROUTER}" async></script>
</body></html>""".encode()


@contextmanager
def static_site(bind: str, port: int, body: bytes) -> Iterator[str]:
    """A plain HTTP server on bind:port (0: any) answering every path with `body`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((bind, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{bind}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def sites(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
    sample_index_dir: Path,
    embedder: Embedder,
) -> Iterator[Sites]:
    """The API, the vendor's site its widget key allows, and a site it does not."""
    root = tmp_path_factory.mktemp("widget")
    copy_index(sample_index_dir, root / "qdrant")
    settings = make_settings(root, tiny_model_dir, root / "qdrant")
    engine_settings = settings.engine.model_copy(update={"max_new_tokens": 192})
    settings = settings.model_copy(update={"engine": engine_settings})
    engine = SlowScripted(ANSWER)
    app = create_app(settings, Overrides(engine=engine, embedder=embedder))
    tenants = app.state.components.tenants
    host_port = free_port()
    host = f"http://127.0.0.1:{host_port}"
    _, key = tenants.create_key(
        DEFAULT_TENANT_ID, KeySpec("site", "publishable", ["widget"], [host])
    )
    _, secret = tenants.create_key(DEFAULT_TENANT_ID, KeySpec("check", "secret", ["chat", "agent"]))
    with serve(app) as api:
        page = host_page(api, key)
        with static_site("127.0.0.1", host_port, page), static_site("127.0.0.2", 0, page) as other:
            yield Sites(api, host, other, key, secret, engine)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, sites: Sites) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    sites.engine.say(ANSWER)
    try:
        yield context.new_page()
    finally:
        context.close()


def shadow(page: Page, expression: str) -> Any:
    """Evaluate `expression` with `r` bound to the widget's shadow root."""
    root = "document.querySelector('tunedesk-chat').shadowRoot"
    return page.evaluate(f"() => {{ const r = {root}; return {expression}; }}")


def open_widget(page: Page, url: str) -> None:
    """Load the page and open the panel from the keyboard."""
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("button", name="Chat with support").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Support")).to_be_visible()


def ask(page: Page, question: str) -> None:
    page.keyboard.type(question)  # focus is in the message box once the panel opens
    page.keyboard.press("Enter")


def conversation_id(page: Page) -> str:
    return str(page.evaluate("() => localStorage.getItem(Object.keys(localStorage)[0])"))


WATCH_STREAM = """() => {
  window.__lengths = [];
  const r = document.querySelector('tunedesk-chat').shadowRoot;
  new MutationObserver(() => {
    const bubble = [...r.querySelectorAll('.msg.bot')].pop();
    if (bubble && bubble.getAttribute('aria-busy') === 'true' && !bubble.querySelector('.typing'))
      window.__lengths.push(bubble.querySelector('.body').textContent.length);
  }).observe(r, {subtree: true, childList: true, characterData: true});
}"""


def test_an_answer_streams_token_by_token_and_its_citations_link_to_its_sources(
    page: Page, sites: Sites
) -> None:
    from playwright.sync_api import expect

    open_widget(page, sites.host)
    expect(page.get_by_text("You are chatting with an AI assistant.")).to_be_visible()
    assert shadow(page, "r.activeElement.localName") == "textarea"
    launcher = "getComputedStyle(r.querySelector('.launcher')).backgroundColor"
    assert shadow(page, launcher) != "rgb(0, 255, 0)"  # the vendor's `button` CSS stays out
    page.evaluate(WATCH_STREAM)
    ask(page, QUESTION)
    expect(page.locator(".msg.bot .cite").first).to_have_text("[1]", timeout=60_000)
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths), lengths  # it grew, piece by piece
    expect(page.locator(".msg.bot strong")).to_have_text("blue WAN port")
    expect(page.locator(".msg.bot .body > ul > li")).to_have_count(2)

    answer = sites.conversation(conversation_id(page))["messages"][-1]
    numbers = sorted(s["number"] for s in answer["sources"])
    shown = page.locator(".sources li b").all_inner_texts()
    assert sorted(int(t.strip("[]")) for t in shown) == numbers  # every number, none renumbered
    cited = {int(t.strip("[]")) for t in page.locator(".msg.bot .cite").all_inner_texts()}
    assert cited == {1, 2} == set(answer["citations"])
    second = next(s for s in answer["sources"] if s["number"] == 2)
    page.locator(".cite", has_text="[2]").click()
    focused = shadow(page, "r.activeElement.textContent")
    assert "[2]" in focused and second["title"] in focused and second["source"] in focused
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert shadow(page, "r.activeElement.className") == "launcher"


def test_a_rating_reaches_the_api_and_the_conversation_survives_reload_and_navigation(
    page: Page, sites: Sites
) -> None:
    from playwright.sync_api import expect

    open_widget(page, sites.host)
    ask(page, QUESTION)
    page.get_by_role("button", name="Not helpful").click(timeout=60_000)
    page.get_by_role("textbox", name="Tell us more (optional)").fill("Say which LED")
    page.get_by_role("button", name="Send comment").click()
    expect(page.locator(".rate")).to_have_text("Thanks for the feedback.")
    conversation = sites.conversation(conversation_id(page))
    ratings = conversation["messages"][1]["ratings"]
    assert [(r["rating"], r["by"], r["comment"]) for r in ratings] == [
        ("bad", "customer", "Say which LED")
    ]

    page.reload()  # the panel was open: it opens again, with the conversation
    expect(page.locator(".msg.user")).to_have_text("You: " + QUESTION)
    expect(page.locator(".msg.bot .cite").first).to_be_visible()
    expect(page.locator(".rate")).to_have_text("Thanks for the feedback.")  # rated: no buttons
    expect(page.get_by_role("button", name="Helpful", exact=True)).to_have_count(0)
    page.get_by_role("link", name="Another page").click()
    page.wait_for_url("**/other-page")
    expect(page.locator(".msg.user")).to_have_text("You: " + QUESTION)
    ask(page, "How do I update the router's firmware?")
    expect(page.locator(".msg.bot")).to_have_count(2)
    expect(page.locator(".msg.bot[aria-busy]")).to_have_count(0, timeout=60_000)
    messages = sites.conversation(conversation_id(page))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2  # one conversation


def test_asking_for_a_human_hands_off_and_the_panel_says_so(page: Page, sites: Sites) -> None:
    from playwright.sync_api import expect

    open_widget(page, sites.host)
    ask(page, "I want to talk to a human please")
    expect(page.locator(".handoff")).to_contain_text("A human has been asked for.", timeout=60_000)
    human = page.get_by_role("button", name="Talk to a human")
    expect(human).to_have_attribute("aria-disabled", "true")
    expect(page.locator(".msg.bot .rate")).to_have_count(0)  # the fixed reply is not rated
    assert sites.conversation(conversation_id(page))["status"] == "handoff"
    page.reload()
    expect(page.locator(".handoff")).to_contain_text("A human has been asked for.")


def test_html_in_an_answer_is_shown_as_text_and_runs_nothing(page: Page, sites: Sites) -> None:
    from playwright.sync_api import expect

    sites.engine.say(PAYLOAD)
    open_widget(page, sites.host)
    ask(page, QUESTION)
    expect(page.get_by_role("button", name="Helpful", exact=True)).to_be_visible(timeout=60_000)
    body = page.locator(".msg.bot .body").last
    expect(body).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(body).to_contain_text("<script>window.__pwned=2</script>")
    expect(body.locator("strong")).to_have_text("still")
    assert page.evaluate("window.__pwned") is None
    assert shadow(page, "r.querySelectorAll('img, script, iframe, object').length") == 0
    hrefs = shadow(page, "[...r.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert all(h.startswith(("#td-src-", "http")) for h in hrefs), hrefs


def test_a_dropped_connection_offers_a_retry_that_is_not_stored_twice(
    page: Page, sites: Sites
) -> None:
    from playwright.sync_api import Route, expect

    def answer_then_drop(route: Route) -> None:
        route.fetch()  # the service answers in full, but the page never hears it
        route.abort("connectionreset")

    open_widget(page, sites.host)
    page.route("**/v1/chat", answer_then_drop, times=1)
    ask(page, QUESTION)
    expect(page.get_by_text("the connection dropped")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg.bot .cite").first).to_be_visible(timeout=60_000)
    messages = sites.conversation(conversation_id(page))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]  # the retry was a replay


def test_an_answer_cut_off_mid_stream_says_so(page: Page, sites: Sites) -> None:
    from playwright.sync_api import Route, expect

    def cut_before_the_end(route: Route) -> None:
        response = route.fetch()
        text = response.text()
        route.fulfill(response=response, body=text[: text.index("event: final")])

    open_widget(page, sites.host)
    page.route("**/v1/chat", cut_before_the_end, times=1)
    ask(page, QUESTION)
    expect(page.get_by_text("This answer was cut short.")).to_be_visible(timeout=60_000)
    expect(page.locator(".msg.bot .body").last).to_contain_text("E3 means")  # what did arrive
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg.bot .cite").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("This answer was cut short.")).to_have_count(0)


def test_a_page_on_an_origin_the_key_does_not_allow_gets_no_chat(page: Page, sites: Sites) -> None:
    with page.expect_console_message(lambda m: "[tunedesk widget]" in m.text) as message:
        page.goto(sites.other)
    assert f"does not allow this page's origin {sites.other}" in message.value.text
    assert message.value.type == "error"
    assert shadow(page, "r.childElementCount") == 0
    assert page.get_by_role("button", name="Chat with support").count() == 0


def test_on_a_phone_the_panel_fits_and_a_human_can_be_asked_for_at_any_time(
    browser: Browser, sites: Sites, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    phone: ViewportSize = {"width": 375, "height": 740}
    context = browser.new_context(viewport=phone, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        open_widget(page, sites.host)
        for name in ("Send", "Talk to a human", "Close chat"):
            box = page.get_by_role("button", name=name, exact=True).bounding_box()
            assert box is not None and box["x"] >= 0 and box["y"] >= 0, name
            assert box["x"] + box["width"] <= phone["width"], name
            assert box["y"] + box["height"] <= phone["height"], name
        page.get_by_role("button", name="Talk to a human").click()
        expect(page.locator(".handoff")).to_contain_text("A human has been asked for.")
        assert sites.conversation(conversation_id(page))["status"] == "handoff"
        page.screenshot(path=str(tmp_path / "widget-phone.png"))
    finally:
        context.close()


def test_an_answer_that_hit_the_length_cap_says_it_was_cut_short(page: Page, sites: Sites) -> None:
    from playwright.sync_api import expect

    steps = " ".join(f"Step {n}: look at light {n} and note colour {n}." for n in range(120))
    sites.engine.say(steps)  # more pieces than max_new_tokens: finish_reason "length"
    open_widget(page, sites.host)
    ask(page, QUESTION)
    expect(page.get_by_role("button", name="Helpful", exact=True)).to_be_visible(timeout=60_000)
    expect(page.locator(".msg.bot .notice")).to_have_text("This answer was cut short.")
    answer = sites.conversation(conversation_id(page))["messages"][-1]
    assert answer["finish_reason"] == "length"
