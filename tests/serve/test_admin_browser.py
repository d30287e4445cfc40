"""The admin console in a real headless Chromium against a real `ragtune serve` with an admin key.

The server ingests a copy of the bundled knowledge into a temporary folder (its
`ingest.source_dir`), so uploads and deletions from the console touch only that copy. The flow
is the one an admin follows: sign in, drop files, watch the job, ask the widget about the new
document, roll the index back, and find the conversation with its feedback.
"""

from __future__ import annotations

import secrets
import shutil
from types import SimpleNamespace

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import KNOWLEDGE

from .browser import DROP_FILES, RagtuneServer, Widget, csp_messages, ingest_folder, start_chromium, wait_until

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # drives a headless Chromium
ADMIN_KEY = secrets.token_urlsafe(32)
WIDGET_KEY = secrets.token_urlsafe(32)
KETTLE = "# Comet kettle\n\n## How fast does the Comet kettle boil water?\n\nThe Comet kettle boils one litre of water in ninety seconds.\n"
MUG = "Comet travel mug\n\nThe Comet travel mug keeps drinks hot for nine hours.\n"
KETTLE_QUESTION = "How fast does the Comet kettle boil water?"


def register_models(data_dir, gguf) -> None:
    """Three answer-model versions in the registry, with the quality figures training stores (the
    deploy gate compares them); ragtune-v1 is deployed. This server never loads them (engine none)."""
    from ragtune.registry import ModelRegistry

    gguf.write_bytes(b"GGUF")
    registry = ModelRegistry(data_dir)
    for score in (0.6, 0.5, 0.7):
        gate = {"gate": {"quality_score": score, "questions_key": "heldout-20", "evaluator": "ragtune"}}
        registry.register(gguf, "tiny", f"hash-{score}", {}, gate)
    registry.deploy("ragtune-v1")


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("admin-console")
    shutil.copytree(KNOWLEDGE, base / "kb")
    ingest_folder(base / "kb", base / "data", embedder)
    register_models(base / "data", base / "model.gguf")
    config = {
        "llm": {"engine": "none"},
        "ingest": {"source_dir": str(base / "kb")},
        "auth": {
            "admin_keys": [{"name": "console-test", "key": ADMIN_KEY}],
            "widget_keys": [{"name": "demo", "key": WIDGET_KEY, "origins": []}],
        },
    }
    server = RagtuneServer(base / "data", base / "serve", config)
    try:
        server.wait_ready()
        yield SimpleNamespace(url=server.url, kb=base / "kb", process=server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def driver():
    driver = start_chromium()
    yield driver
    driver.quit()


def sign_in(driver, url: str, key: str = ADMIN_KEY) -> None:
    driver.get(url + "/admin")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    field = driver.find_element(By.ID, "key")
    assert driver.switch_to.active_element == field  # focus starts on the key field
    field.send_keys(key + "\n")


def rows(driver, table: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")


def doc_row(driver, doc_id: str):
    found = driver.find_elements(By.CSS_SELECTOR, f'#documents tbody tr[data-doc="{doc_id}"]')
    return found[0] if found else None


def doc_text(driver, doc_id: str) -> str:
    row = doc_row(driver, doc_id)
    return row.text if row else ""


def alert_text(driver) -> str:
    return driver.find_element(By.ID, "alert").get_attribute("textContent")


def test_a_wrong_key_is_refused_and_the_right_one_kept_for_the_tab(driver, server):
    sign_in(driver, server.url, "not-the-key")
    wait_until(lambda: "key" in alert_text(driver).lower(), what="the refusal")
    assert driver.find_element(By.ID, "console").get_attribute("hidden") is not None
    assert driver.execute_script("return sessionStorage.getItem('ragtune.adminKey')") is None

    sign_in(driver, server.url)
    wait_until(lambda: len(rows(driver, "documents")) > 30, what="the documents")
    assert driver.execute_script("return sessionStorage.getItem('ragtune.adminKey')") == ADMIN_KEY
    # A reload in the same tab signs in again from session storage, without asking.
    driver.refresh()
    wait_until(lambda: len(rows(driver, "documents")) > 30, what="the documents after a reload")
    assert driver.find_element(By.ID, "signin").get_attribute("hidden") is not None
    row = doc_row(driver, "policies/refund-policy.pdf")
    assert row is not None and "indexed" in row.text
    assert int(row.find_elements(By.CSS_SELECTOR, "td")[3].text) >= 1  # its chunk count
    assert csp_messages(driver) == []  # the console runs under its strict CSP
    driver.find_element(By.ID, "signout").click()
    assert driver.find_element(By.ID, "key").is_displayed() and not driver.find_element(By.ID, "console").is_displayed()
    assert driver.execute_script("return sessionStorage.getItem('ragtune.adminKey')") is None


WATCH_JOB = """
window.__jobStates = [];
new MutationObserver(() => window.__jobStates.push([document.getElementById('job').dataset.status,
  document.getElementById('job-progress').value, document.getElementById('job-text').textContent]))
  .observe(document.getElementById('job'), {subtree: true, childList: true, characterData: true, attributes: true});
"""


def test_upload_watch_the_job_answer_in_the_widget_then_roll_back(driver, server):
    sign_in(driver, server.url)
    wait_until(lambda: len(rows(driver, "versions")) == 1, what="the versions")
    first_version = rows(driver, "versions")[0].get_attribute("data-version")

    # Two files dropped at once on the drop zone; the job's progress shows while it runs.
    driver.execute_script(WATCH_JOB)
    drop = driver.find_element(By.ID, "drop")
    driver.execute_script(DROP_FILES, [["comet-kettle.md", KETTLE, "text/markdown"], ["comet-mug.txt", MUG, "text/plain"]], drop)
    wait_until(lambda: driver.find_element(By.ID, "job").get_attribute("data-status") == "succeeded", 90, what="the job")
    states = driver.execute_script("return window.__jobStates")
    assert {s[0] for s in states} >= {"succeeded"} and len({s[0] for s in states}) >= 2, states
    assert any(s[2].startswith("upload: ") for s in states)
    assert (server.kb / "comet-kettle.md").read_text(encoding="utf-8") == KETTLE
    wait_until(lambda: "indexed" in doc_text(driver, "comet-kettle.md"), what="the uploaded file indexed")
    assert doc_row(driver, "comet-mug.txt") is not None
    wait_until(lambda: len(rows(driver, "versions")) == 2, what="the new version")
    versions = rows(driver, "versions")
    assert versions[1].get_attribute("data-version") == first_version and "current" in versions[0].text

    # The new document is answerable in the widget at once.
    widget = Widget.fresh(driver, f"{server.url}/demo?key={WIDGET_KEY}")
    widget.open()
    assert "ninety seconds" in Widget.text(widget.ask(KETTLE_QUESTION))
    widget.answers()[-1].find_element(By.CSS_SELECTOR, ".fb button[data-rating='up']").click()
    wait_until(lambda: "Thanks" in widget.answers()[-1].find_element(By.CSS_SELECTOR, ".fb [role=status]").text, what="thanks")
    session = widget.stored()["sid"]

    # Back in the console (still signed in for this tab): roll back to the first version.
    driver.get(server.url + "/admin")
    wait_until(lambda: len(rows(driver, "versions")) == 2, what="the versions")
    old = driver.find_element(By.CSS_SELECTOR, f'#versions tr[data-version="{first_version}"] button')
    assert old.text == "Roll back to this"
    old.click()
    wait_until(lambda: first_version in alert_text(driver), what="the rollback")
    wait_until(lambda: "current" in driver.find_element(By.CSS_SELECTOR, f'#versions tr[data-version="{first_version}"]').text)
    # The conversation is listed with its feedback.
    conversation = wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, f'#conversations article[data-session="{session}"]'), what="conversation"
    )[0]
    assert KETTLE_QUESTION in conversation.text and "ninety seconds" in conversation.text
    assert conversation.find_element(By.CSS_SELECTOR, ".badge.up")

    # The rolled-back index no longer knows the kettle.
    widget = Widget.fresh(driver, f"{server.url}/demo?key={WIDGET_KEY}")
    widget.open()
    assert "ninety seconds" not in Widget.text(widget.ask(KETTLE_QUESTION))


def test_reingest_takes_in_a_hand_placed_file_and_delete_asks_first(driver, server):
    (server.kb / "faq" / "old-notice.txt").write_text("Old notice\n\nThe old office closes in March.\n", encoding="utf-8")
    sign_in(driver, server.url)
    wait_until(lambda: "pending" in doc_text(driver, "faq/old-notice.txt"), what="the new file listed as pending")
    driver.find_element(By.ID, "reingest").click()
    wait_until(lambda: driver.find_element(By.ID, "job-text").text.startswith("ingest: "), what="the ingest job")
    wait_until(lambda: driver.find_element(By.ID, "job").get_attribute("data-status") == "succeeded", 90, what="the job")
    wait_until(lambda: "indexed" in doc_text(driver, "faq/old-notice.txt"), what="the file indexed")

    button = doc_row(driver, "faq/old-notice.txt").find_element(By.CSS_SELECTOR, "button.danger")
    button.click()
    assert button.text == "Confirm delete" and (server.kb / "faq" / "old-notice.txt").exists()
    button.click()
    wait_until(lambda: not (server.kb / "faq" / "old-notice.txt").exists(), what="the file deleted")
    wait_until(lambda: driver.find_element(By.ID, "job-text").text.startswith("delete: "), what="the delete job")
    wait_until(lambda: driver.find_element(By.ID, "job").get_attribute("data-status") == "succeeded", 90, what="the job")
    wait_until(lambda: doc_row(driver, "faq/old-notice.txt") is None, what="the row gone")


def model_row(driver, version: str):
    return driver.find_element(By.CSS_SELECTOR, f'#models tr[data-model="{version}"]')


def test_models_deploy_through_the_quality_gate(driver, server):
    sign_in(driver, server.url)
    wait_until(lambda: len(rows(driver, "models")) == 3, what="the models")
    assert "current" in model_row(driver, "ragtune-v1").text
    assert "0.500" in model_row(driver, "ragtune-v2").text
    # A worse candidate is refused with the gate's reason, and offered as "Deploy anyway".
    model_row(driver, "ragtune-v2").find_element(By.CSS_SELECTOR, "button").click()
    wait_until(lambda: "0.5" in alert_text(driver) and "0.6" in alert_text(driver), what="the gate's refusal")
    anyway = model_row(driver, "ragtune-v2").find_element(By.CSS_SELECTOR, "button.danger")
    assert anyway.text == "Deploy anyway" and driver.switch_to.active_element == anyway
    assert "current" in model_row(driver, "ragtune-v1").text
    anyway.click()
    wait_until(lambda: "current" in model_row(driver, "ragtune-v2").text, what="the forced deploy")
    # A better one passes the gate at once.
    model_row(driver, "ragtune-v3").find_element(By.CSS_SELECTOR, "button").click()
    wait_until(lambda: "current" in model_row(driver, "ragtune-v3").text, what="the deploy")
    assert "registry: ragtune-v3" in driver.find_element(By.ID, "model-summary").text


# Elements whose box reaches past the viewport's right edge and that the page itself would have to
# scroll to show (an element inside a box that scrolls on its own is fine).
WIDER_THAN_VIEWPORT = """
const width = document.documentElement.clientWidth;
const inScroller = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
  if (p === document.body) return false;
  if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true; } return false; };
return [...document.querySelectorAll('body *')].filter((el) => el.offsetParent !== null && !inScroller(el)
  && el.getBoundingClientRect().right > width + 0.5).map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (el.className ? '.' + el.className : '') + ' ' + Math.round(el.getBoundingClientRect().right));
"""


def test_the_console_fits_a_phone_without_sideways_scrolling(driver, server):
    """At 390 px (a phone) the page scrolled sideways (issue 19): wide tables now scroll inside their card."""
    phone = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        sign_in(driver, server.url)
        wait_until(lambda: rows(driver, "documents") and rows(driver, "versions") and rows(driver, "models"), what="the tables")
        width = driver.execute_script("return document.documentElement.clientWidth")
        assert width == 390
        assert driver.execute_script(WIDER_THAN_VIEWPORT) == []
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        driver.execute_script("window.scrollTo(300, 0)")
        assert driver.execute_script("return window.scrollX") == 0
        # Every column can still be reached: the documents table, wider than the phone, scrolls in its own box.
        box = driver.find_element(By.CSS_SELECTOR, "#documents").find_element(By.XPATH, "..")
        scrolled = driver.execute_script(
            "const b = arguments[0]; b.scrollLeft = 10000; return [b.scrollWidth > b.clientWidth, b.scrollLeft]", box
        )
        assert scrolled[0] and scrolled[1] > 0, scrolled
        assert driver.execute_script("return window.scrollX") == 0
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
