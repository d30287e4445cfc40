"""The support widget in a real headless Chromium against real `ragtune serve` processes.

Two servers over the bundled knowledge plus two test documents (tests/serve/widget_kb: one whose
title, link and text carry HTML and script, one with a real link): an extractive one (no model:
fast, answers quote the documents verbatim, so hostile text reaches the browser unchanged) and a
generative one with the bundled SmolLM2 model, whose answers stream in many `delta` events. A
static "customer site" on another loopback origin embeds the widget cross-origin.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.conftest import KNOWLEDGE

from .browser import RagtuneServer, StaticSite, Widget, copy_data_dir, csp_messages, ingest_folder, start_chromium, wait_until

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # drives a headless Chromium
HERE = Path(__file__).parent
REFUND = "Can I get a refund on my annual plan?"
FOLLOW_UP = "And if I pay monthly?"
OUT_OF_SCOPE = "Do you sell pizza?"
COUPON = "How do I redeem an Orbit coupon?"
HANDOFF_TEXT = "I'll connect you with a person."
NETWORK_TEXT = "We could not reach the server. Check your connection and try again."
UNAVAILABLE_TEXT = "Sorry, the chat is not available here right now."
FAILED_TEXT = "Something went wrong on our side. Please try again."
BUSY_TEXT = "Many questions at once: please wait a moment and try again."
WIDGET_KEY = secrets.token_urlsafe(32)  # the shop's key: its site's origin is allowed
OTHER_KEY = secrets.token_urlsafe(32)  # another shop's key, for another origin
ADMIN_KEY = secrets.token_urlsafe(32)
NO_LIMITS = {"requests_per_key": 0, "requests_per_address": 0}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = StaticSite(tmp_path_factory.mktemp("customer-site"))
    yield site
    site.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, embedder, site):
    base = tmp_path_factory.mktemp("widget")
    shutil.copytree(KNOWLEDGE, base / "kb")
    shutil.copytree(HERE / "widget_kb", base / "kb" / "widget-tests")
    ingest_folder(base / "kb", base / "data", embedder)
    copy_data_dir(base / "data", base / "data-generative")
    # The extractive server checks keys; the generative one runs open to loopback (no key configured).
    keys = {
        "widget_keys": [
            {"name": "shop", "key": WIDGET_KEY, "origins": [site.origin]},
            {"name": "other-shop", "key": OTHER_KEY, "origins": ["https://other-shop.example"]},
        ],
        "admin_keys": [{"name": "ops", "key": ADMIN_KEY}],
    }
    extractive = RagtuneServer(base / "data", base / "extractive", {"llm": {"engine": "none"}, "auth": keys, "limits": NO_LIMITS})
    generative = RagtuneServer(
        base / "data-generative", base / "generative", {"chat": {"answer_mode": "generative"}, "limits": NO_LIMITS}
    )
    try:
        assert extractive.wait_ready()["mode"] == "extractive"
        assert generative.wait_ready()["mode"] == "generated"
        yield SimpleNamespace(extractive=extractive, generative=generative)
    finally:
        extractive.stop()
        generative.stop()


@pytest.fixture(scope="module")
def driver():
    driver = start_chromium()
    yield driver
    driver.quit()


def demo_url(server: RagtuneServer, key: str | None = WIDGET_KEY, **options: str) -> str:
    """The server's /demo page; the query becomes the widget's data-* options (the key among them)."""
    query = ({"key": key} if key else {}) | options
    return f"{server.url}/demo" + (f"?{urlencode(query)}" if query else "")


def host_page(site: StaticSite, api: str, name: str, head: str = "", attributes: str = "", key: str = WIDGET_KEY) -> str:
    """A page of the customer's site that embeds the widget from the API server with one script tag."""
    return site.page(
        name,
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Shop</title>{head}</head><body>"
        f"<h1>Our shop</h1><p id='copy'>Welcome.</p><button id='host-button'>Host button</button>"
        f"<script src='{api}/widget.js' data-key='{key}' data-contact='https://shop.example/contact' {attributes} defer>"
        "</script></body></html>",
    )


def test_conversation_sources_follow_up_reload_and_new_conversation(driver, servers):
    api = servers.extractive
    widget = Widget.fresh(driver, demo_url(api))
    assert not widget.find(".panel").is_displayed()
    widget.open()
    assert widget.focused() == "textarea."  # focus moves into the panel

    first = widget.ask(REFUND)
    answer = Widget.text(first)
    assert "within 30 days of the purchase or renewal date" in answer
    titles = [li.find_element(By.CSS_SELECTOR, ".st, a").text for li in first.find_elements(By.CSS_SELECTOR, ".src li")]
    assert any(t.startswith("Refund policy") for t in titles), titles
    # The cited quote shows on hover, and it is a sentence of the answer.
    item = first.find_element(By.CSS_SELECTOR, ".src li")
    quote_box = item.find_element(By.CSS_SELECTOR, ".q")
    assert not quote_box.is_displayed()
    ActionChains(driver).move_to_element(item).perform()
    wait_until(quote_box.is_displayed, what="the quote on hover")
    assert quote_box.text.strip("“”") in answer
    session = widget.stored()["sid"]

    # The follow-up is answered in the session's context: "monthly" refunds, not monthly billing.
    second = Widget.text(widget.ask(FOLLOW_UP))
    assert "Monthly payments are not refunded" in second
    assert widget.stored()["sid"] == session

    # After a reload the conversation is still there, panel open, sources included.
    driver.refresh()
    widget = Widget(driver)
    wait_until(lambda: widget.find(".panel").is_displayed(), what="the panel reopened")
    assert [Widget.text(b) for b in widget.find_all(".m.u")] == [REFUND, FOLLOW_UP]
    assert [Widget.text(b) for b in widget.answers()] == [answer, second]
    assert widget.answers()[0].find_elements(By.CSS_SELECTOR, ".src li")
    assert widget.stored()["sid"] == session

    # A new conversation starts empty, with a new session: the same follow-up now stands alone.
    widget.find("button.new").click()
    assert widget.answers() == [] and widget.find_all(".m.u") == []
    assert widget.focused() == "textarea."
    assert widget.stored()["sid"] != session
    alone = widget.ask(FOLLOW_UP)
    assert "Monthly payments are not refunded" not in Widget.text(alone)

    # The demo page runs under its strict CSP without a single violation (and a violation would show).
    assert csp_messages(driver) == []
    driver.execute_script("const s = document.createElement('script'); s.textContent = '1'; document.body.append(s);")
    assert wait_until(lambda: csp_messages(driver), what="the control CSP violation to be logged")


def test_streamed_text_grows_before_the_final_answer(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.generative, key=None))
    widget.open()
    # Record every state of the newest answer bubble while the events arrive.
    widget.js(
        "window.__states = [];"
        "new MutationObserver(() => {"
        "  const b = [...root.querySelectorAll('.m.b:not(.greet)')].pop();"
        "  if (b) window.__states.push({len: b.querySelector('.t').textContent.length,"
        "    busy: b.getAttribute('aria-busy'), logBusy: root.querySelector('.log').getAttribute('aria-busy'),"
        "    sources: !!b.querySelector('.src')});"
        "}).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});"
    )
    bubble = widget.ask("How do I reset my password?", timeout=120)
    states = driver.execute_script("return window.__states")
    streaming = [s for s in states if s["busy"] == "true"]
    partial = sorted({s["len"] for s in streaming if s["len"] > 0})
    assert len(partial) >= 3, partial  # the text grew in several steps
    assert not any(s["sources"] for s in streaming)  # sources come with the final answer only
    assert all(s["logBusy"] == "true" for s in streaming)
    assert widget.find(".log").get_attribute("aria-busy") == "false"
    final = Widget.text(bubble)
    assert final and final == widget.stored()["msgs"][-1]["t"]
    assert len(final) >= partial[-1]


def test_out_of_scope_question_hands_off_with_the_contact_link(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive))
    widget.open()
    bubble = widget.ask(OUT_OF_SCOPE)
    handoff = bubble.find_element(By.CSS_SELECTOR, ".ho")
    assert handoff.get_attribute("role") == "note"
    assert HANDOFF_TEXT in handoff.text
    link = handoff.find_element(By.CSS_SELECTOR, "a")
    assert link.get_attribute("href") == "mailto:support@northwind.example"  # the demo's data-contact
    assert bubble.find_elements(By.CSS_SELECTOR, ".src") == []
    # An answered question has no hand-off block.
    assert widget.ask(REFUND).find_elements(By.CSS_SELECTOR, ".ho") == []


HOSTILE_CSS = """<style>
* { font-size: 4px !important; color: #f0f !important; background: #0f0 !important; line-height: 0 !important;
    letter-spacing: 9px !important; box-sizing: content-box !important; }
ragtune-widget { all: unset !important; display: none !important; }
body > * { position: static !important; opacity: 0 !important; transform: scale(0) !important; }
div, section, form, button, textarea, span, ul, li, header, h2, a { display: none !important; }
[hidden] { display: block !important; }
button { background: rgb(255, 0, 255) !important; }
</style>"""


def test_hostile_host_css_cannot_break_the_widget_nor_the_widget_the_page(driver, servers, site):
    url = host_page(site, servers.extractive.url, "hostile.html", head=HOSTILE_CSS)
    widget = Widget.fresh(driver, url)
    launcher = widget.find(".launch")
    wait_until(launcher.is_displayed, what="the launcher")
    style = widget.js(
        "const s = getComputedStyle(root.querySelector('.launch'));"
        "return [s.fontSize, s.color, s.position, getComputedStyle(root.host).opacity, getComputedStyle(root.host).display];"
    )
    assert style == ["15px", "rgb(255, 255, 255)", "fixed", "1", "block"]
    rect = launcher.rect
    size = driver.get_window_size()
    assert rect["width"] > 60 and rect["height"] > 30 and rect["x"] + rect["width"] <= size["width"]

    widget.open()
    assert widget.find(".panel").size["width"] >= 300
    assert widget.find_all("[hidden]") and not any(e.is_displayed() for e in widget.find_all("[hidden]"))
    # The API is another origin: the answer comes through CORS, from the script's own origin.
    bubble = widget.ask(REFUND)
    assert "within 30 days" in Widget.text(bubble)
    assert bubble.find_elements(By.CSS_SELECTOR, ".src li")
    link = bubble.find_element(By.CSS_SELECTOR, ".src .st")
    assert link.value_of_css_property("font-size") == "13px"

    # ... and the widget leaves the page's own styles alone: nothing added to the document's styles.
    host = driver.execute_script(
        "const b = getComputedStyle(document.getElementById('host-button'));"
        "return [b.backgroundColor, b.fontSize, document.styleSheets.length, document.adoptedStyleSheets.length];"
    )
    assert host == ["rgb(255, 0, 255)", "4px", 1, 0]


def test_html_and_script_in_answers_sources_and_options_stay_text(driver, servers, site):
    title = "<img src=x onerror=\"window.__ragtunePwned='option'\">"
    url = host_page(site, servers.extractive.url, "plain.html", attributes=f'data-title="{html.escape(title)}"')
    widget = Widget.fresh(driver, url)
    widget.open()
    assert widget.find("h2").text == title
    bubble = widget.ask(COUPON)
    answer = Widget.text(bubble)
    assert "<img src=x onerror=\"window.__ragtunePwned='answer'\"><script>" in answer
    source = bubble.find_element(By.CSS_SELECTOR, ".src li")
    assert source.find_element(By.CSS_SELECTOR, ".st").text.startswith("Orbit coupons <img src=x onerror=")
    assert source.find_elements(By.CSS_SELECTOR, "a") == []  # its javascript: URL never becomes a link
    ActionChains(driver).move_to_element(source).perform()
    assert "<script>window.__ragtunePwned='script'</script>" in wait_until(
        lambda: source.find_element(By.CSS_SELECTOR, ".q").text, what="the quote"
    )
    time.sleep(0.5)  # an <img onerror> would have fired by now
    assert driver.execute_script("return window.__ragtunePwned") is None
    assert widget.js("return root.querySelectorAll('img, script, b').length") == 0

    # Control: the same text inserted as HTML into this page (no CSP here) does run.
    driver.execute_script("const d = document.createElement('div'); d.innerHTML = arguments[0]; document.body.append(d);", answer)
    assert wait_until(lambda: driver.execute_script("return window.__ragtunePwned"), what="the control") == "answer"


def test_sources_with_a_web_address_are_links(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive))
    widget.open()
    bubble = widget.ask("How long is the warranty on the Orbit desk lamp?")
    link = bubble.find_element(By.CSS_SELECTOR, ".src a")
    assert link.get_attribute("href") == "https://help.northwind.example/orbit-lamp"
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("target") == "_blank"
    quote_id = link.get_attribute("aria-describedby")
    assert "five-year warranty" in widget.find(f"#{quote_id}").get_attribute("textContent")


def test_keyboard_only(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive))
    keys = ActionChains(driver)
    for _ in range(20):  # Tab through the page to the launcher
        keys.send_keys(Keys.TAB).perform()
        if widget.focused() == "button.launch":
            break
    assert widget.focused() == "button.launch"
    keys.send_keys(Keys.ENTER).perform()
    wait_until(lambda: widget.find(".panel").is_displayed(), what="the panel")
    assert widget.focused() == "textarea."
    assert widget.find(".launch").get_attribute("aria-expanded") == "true"

    keys.send_keys("How do I").key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    assert widget.find("textarea").get_attribute("value") == "How do I\n"  # Shift+Enter: a new line, not sent
    before = len(widget.answers())
    keys.send_keys(" reset my password?", Keys.ENTER).perform()
    bubble = widget.wait_answer(before)
    assert "password" in Widget.text(bubble).lower()
    assert widget.focused() == "textarea."

    # Shift+Tab walks back through the answer: its rating buttons (Space rates), then its source,
    # whose quote shows on focus.
    def back() -> str:
        ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        return widget.js("const a = root.activeElement; return a.dataset.rating || a.tagName.toLowerCase() + '.' + a.className")

    assert back() == "down"
    assert back() == "up"
    ActionChains(driver).send_keys(Keys.SPACE).perform()
    wait_until(lambda: bubble.find_element(By.CSS_SELECTOR, ".fb [role=status]").text, what="the rating")
    assert bubble.find_element(By.CSS_SELECTOR, ".fb button[data-rating=up]").get_attribute("aria-pressed") == "true"
    assert back() in ("span.st", "a.")
    assert bubble.find_elements(By.CSS_SELECTOR, ".src li")[-1].find_element(By.CSS_SELECTOR, ".q").is_displayed()

    keys.send_keys(Keys.ESCAPE).perform()
    wait_until(lambda: not widget.find(".panel").is_displayed(), what="the panel to close")
    assert widget.focused() == "button.launch"
    assert widget.find(".launch").get_attribute("aria-expanded") == "false"


def _luminance(rgb: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(pair: list[str]) -> float:
    light, dark = sorted((_luminance(pair[0]), _luminance(pair[1])), reverse=True)
    return round((light + 0.05) / (dark + 0.05), 2)


COLOURS = """
const paint = (el) => { for (let n = el; n; n = n.parentNode || n.host) {
  if (n.nodeType !== 1) continue;
  const bg = getComputedStyle(n).backgroundColor; if (bg !== 'rgba(0, 0, 0, 0)') return bg; } return 'rgb(255, 255, 255)'; };
return Object.fromEntries(arguments[0].map((sel) => { const el = root.querySelector(sel);
  return [sel, [getComputedStyle(el).color, paint(el)]]; }));
"""
TEXTS = [".launch", "h2", "button.new", ".m.u .t", ".m.b:not(.greet) .t", ".src h3", ".src .st", "form button", "textarea"]


def test_roles_contrast_colours_and_reduced_motion(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive))
    launcher = widget.find(".launch")
    assert launcher.get_attribute("aria-haspopup") == "dialog" and launcher.get_attribute("aria-controls") == "rt-panel"
    panel = widget.find("#rt-panel")
    assert panel.get_attribute("role") == "dialog"
    title = widget.find("#" + panel.get_attribute("aria-labelledby"))
    assert title.get_attribute("textContent") == "Northwind Cloud support"
    log = widget.find(".log")
    assert (log.get_attribute("role"), log.get_attribute("aria-live")) == ("log", "polite")
    widget.open()
    widget.ask(REFUND)
    for selector, pair in widget.js(COLOURS, TEXTS).items():
        assert contrast(pair) >= 4.5, (selector, pair)
    assert widget.find(".panel").value_of_css_property("animation-name") == "rt-in"

    # A custom light accent gets dark text (still readable); a dark one keeps white text.
    widget = Widget.fresh(driver, demo_url(servers.extractive, accent="#ffd60a"))
    colours = widget.js(COLOURS, [".launch"])[".launch"]
    assert colours[1] == "rgb(255, 214, 10)" and contrast(colours) >= 4.5
    widget = Widget.fresh(driver, demo_url(servers.extractive, accent="#047857", position="left"))
    colours = widget.js(COLOURS, [".launch"])[".launch"]
    assert colours == ["rgb(255, 255, 255)", "rgb(4, 120, 87)"] and contrast(colours) >= 4.5
    assert widget.find(".launch").rect["x"] < 100  # position=left

    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    try:
        widget = Widget.fresh(driver, demo_url(servers.extractive))
        widget.open()
        assert widget.find(".panel").value_of_css_property("animation-name") == "none"
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def offline(driver, on: bool) -> None:
    driver.set_network_conditions(offline=on, latency=0, download_throughput=-1, upload_throughput=-1)


def test_network_errors_are_retried_then_offered_as_a_retry(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive))
    widget.open()
    # A short outage: the widget retries by itself and the answer arrives without an error.
    offline(driver, True)
    try:
        widget.find("textarea").send_keys(REFUND, Keys.ENTER)
        time.sleep(0.3)
    finally:
        offline(driver, False)
    assert "within 30 days" in Widget.text(widget.wait_answer(0))
    assert widget.find_all(".m.b.err") == []

    # A longer one: after its retries the widget says so and offers to try again.
    widget.find("button.new").click()
    offline(driver, True)
    try:
        widget.find("textarea").send_keys(REFUND, Keys.ENTER)
        failed = wait_until(lambda: widget.find_all(".m.b.err"), what="the network error")[0]
        assert Widget.text(failed) == NETWORK_TEXT
    finally:
        offline(driver, False)
    failed.find_element(By.CSS_SELECTOR, "button.retry").click()
    bubble = widget.wait_answer(0)
    assert "within 30 days" in Widget.text(bubble)
    assert widget.find_all(".m.b.err") == []
    assert [Widget.text(b) for b in widget.find_all(".m.u")] == [REFUND]  # the question is not repeated


def test_strings_are_translatable_and_overridable(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive, lang="de"))
    assert widget.find(".launch").text == "Chat mit uns"
    assert widget.find("textarea").get_attribute("placeholder") == "Ihre Frage"
    strings = json.dumps({"launcher": "Frag uns!", "send": "Los", "unknown": "ignored"})
    widget = Widget.fresh(driver, demo_url(servers.extractive, lang="de", strings=strings))
    assert widget.find(".launch").text == "Frag uns!"
    assert widget.find("form button").get_attribute("textContent") == "Los"  # in the closed panel
    assert (
        widget.find("button.new").get_attribute("textContent") == "Neues Gespräch"
    )  # the rest stays German  # the rest stays German


def widget_console(driver) -> list[str]:
    """The widget's own lines in the browser console since the last read."""
    return [entry["message"] for entry in driver.get_log("browser") if "ragtune widget:" in entry["message"]]


def test_refusals_show_the_customer_a_plain_line_and_the_reason_goes_to_the_console(driver, servers, site):
    """A missing key or a borrowed one once put "an API key is required: send Authorization: Bearer
    <key>" in front of the customer (issue 19): now a plain line, the contact link, and the API's
    reason in the console for the site's developer. /demo without a key says how to give it one."""
    driver.get_log("browser")  # start from an empty console
    # /demo without a key on a server that checks keys: a note on the page for the developer ...
    widget = Widget.fresh(driver, demo_url(servers.extractive, key=None))
    note = driver.find_element(By.CSS_SELECTOR, ".key-note")
    assert "requires API keys" in note.text and "/demo?key=WIDGET_KEY" in note.text
    # ... and for the visitor: the chat is not available, with the way to reach a person.
    widget.open()
    widget.find("textarea").send_keys(REFUND, Keys.ENTER)
    failed = wait_until(lambda: widget.find_all(".m.b.err"), what="the refusal")[0]
    assert Widget.text(failed) == UNAVAILABLE_TEXT
    assert not re.search(r"key|bearer|authorization|401", failed.text, re.I), failed.text
    assert not failed.find_elements(By.CSS_SELECTOR, "button.retry")  # trying again cannot help
    assert failed.find_element(By.CSS_SELECTOR, "a").get_attribute("href") == "mailto:support@northwind.example"
    logged = wait_until(lambda: widget_console(driver), what="the console line")
    assert any("/v1/chat answered 401 Unauthorized: an API key is required" in line for line in logged), logged

    # Another shop's key on this shop's site: refused for its origin (403); the same plain line.
    widget = Widget.fresh(driver, host_page(site, servers.extractive.url, "borrowed.html", key=OTHER_KEY))
    widget.open()
    widget.find("textarea").send_keys(REFUND, Keys.ENTER)
    failed = wait_until(lambda: widget.find_all(".m.b.err"), what="the refusal")[0]
    assert Widget.text(failed) == UNAVAILABLE_TEXT and "origin" not in failed.text.lower()
    assert failed.find_element(By.CSS_SELECTOR, "a").get_attribute("href") == "https://shop.example/contact"
    logged = wait_until(lambda: widget_console(driver), what="the console line")
    assert any(f"403 Forbidden: origin {site.origin} may not use widget key" in line for line in logged), logged

    # The right key from its own site answers (CORS for that origin, the key as a Bearer token).
    widget = Widget.fresh(driver, host_page(site, servers.extractive.url, "own.html"))
    widget.open()
    assert "within 30 days" in Widget.text(widget.ask(REFUND))
    # /demo with a key, or on a server without keys, has no note.
    driver.get(demo_url(servers.extractive))
    assert driver.find_elements(By.CSS_SELECTOR, ".key-note") == []
    driver.get(demo_url(servers.generative, key=None))
    assert driver.find_elements(By.CSS_SELECTOR, ".key-note") == []


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A server with nothing ingested (every question a 503) that allows one chat request per
    client address (the second a 429): real refusals from the real API."""
    base = tmp_path_factory.mktemp("bare")
    limits = {"requests_per_address": 1, "window_s": 1_000_000}
    server = RagtuneServer(base / "data", base / "serve", {"llm": {"engine": "none"}, "limits": limits})
    try:
        server.wait_ready(path="/healthz")
        yield server
    finally:
        server.stop()


def test_server_errors_and_rate_limits_show_a_plain_line_with_a_retry(driver, bare):
    widget = Widget.fresh(driver, f"{bare.url}/demo")
    widget.open()
    driver.get_log("browser")
    widget.find("textarea").send_keys(REFUND, Keys.ENTER)
    failed = wait_until(lambda: widget.find_all(".m.b.err"), what="the server error")[0]
    assert Widget.text(failed) == FAILED_TEXT  # not "no knowledge index in /tmp/...: run `ragtune ingest` first"
    logged = wait_until(lambda: widget_console(driver), what="the console line")
    assert any("/v1/chat answered 503 IndexNotReady: no knowledge index in" in line for line in logged), logged

    failed.find_element(By.CSS_SELECTOR, "button.retry").click()  # the second request of this address: 429
    busy = wait_until(
        lambda: [b for b in widget.find_all(".m.b.err") if Widget.text(b) == BUSY_TEXT], what="the rate-limit line"
    )[0]
    assert busy.find_elements(By.CSS_SELECTOR, "button.retry")  # waiting and trying again can help
    logged = wait_until(lambda: widget_console(driver), what="the console line")
    assert any("/v1/chat answered 429 TooManyRequests: " in line for line in logged), logged
    assert [Widget.text(b) for b in widget.find_all(".m.u")] == [REFUND]


def test_thumbs_up_and_down_are_stored_with_the_conversation(driver, servers):
    widget = Widget.fresh(driver, demo_url(servers.extractive))
    widget.open()
    widget.ask(REFUND)
    widget.ask(FOLLOW_UP)
    first, second = widget.answers()

    def rate(bubble, rating: str) -> None:
        bubble.find_element(By.CSS_SELECTOR, f".fb button[data-rating='{rating}']").click()
        wait_until(lambda: bubble.find_element(By.CSS_SELECTOR, ".fb [role=status]").text == "Thanks for your feedback.")
        pressed = {
            b.get_attribute("data-rating"): b.get_attribute("aria-pressed")
            for b in bubble.find_elements(By.CSS_SELECTOR, ".fb button")
        }
        assert pressed == {"up": str(rating == "up").lower(), "down": str(rating == "down").lower()}

    rate(first, "down")
    rate(first, "up")  # a second rating of the same answer replaces the first
    rate(second, "down")
    session = widget.stored()["sid"]

    status, page = servers.extractive.request(
        "GET", "/v1/admin/conversations?limit=50", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert status == 200, page
    [conversation] = [c for c in page["conversations"] if c["session_id"] == session]
    assert [(t["turn"], t["question"], t["feedback"]["rating"]) for t in conversation["turns"]] == [
        (0, REFUND, "up"),
        (1, FOLLOW_UP, "down"),
    ]
    assert conversation["turns"][0]["feedback"]["principal"] == "shop"  # it came with the shop's widget key

    # After a reload the ratings still show.
    driver.refresh()
    widget = Widget(driver)
    buttons = wait_until(lambda: widget.find_all(".fb button[aria-pressed=true]"), what="the ratings")
    assert [b.get_attribute("data-rating") for b in buttons] == ["up", "down"]
