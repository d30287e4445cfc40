"""Real-browser test tools: headless Debian Chromium under Selenium, a real `ragtune serve`
subprocess on a free loopback port, and a small static "customer site" on another origin.

Chromium and its driver come from Debian's `chromium` and `chromium-driver` packages
(`scripts/browser-deps.sh` installs them; `.ci/run` calls it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RAGTUNE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RAGTUNE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
MISSING_BROWSER = (
    "headless Chromium is needed for the browser tests: run `bash scripts/browser-deps.sh` "
    "(installs Debian's chromium and chromium-driver), or point RAGTUNE_TEST_CHROMIUM / RAGTUNE_TEST_CHROMEDRIVER at them"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll until condition() is truthy; return its value. An element that a re-render replaced or
    has not drawn yet counts as not yet."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def start_chromium(width: int = 1280, height: int = 860):
    """A headless Chromium driven by Selenium (browser console logs kept for CSP checks)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise RuntimeError(MISSING_BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


# Drops files ([name, text, type] each) on an element the way a browser does: dragover, then drop.
DROP_FILES = """
const [files, target] = arguments;
const data = new DataTransfer();
for (const [name, text, type] of files) data.items.add(new File([text], name, {type}));
target.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
"""


def csp_messages(driver) -> list[str]:
    """Content-Security-Policy violations in the browser console since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


class RagtuneServer:
    """`python -m cli serve` in a subprocess over a data dir, with settings from a config file."""

    def __init__(self, data_dir: Path, workdir: Path, config: dict[str, Any] | None = None, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: the settings file is written with the json module.
        (workdir / "ragtune.yaml").write_text(json.dumps({"data_dir": str(data_dir)} | (config or {})), encoding="utf-8")
        self.log_path = workdir / "server.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
        environ |= {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"} | (env or {})
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=workdir,
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 120.0, path: str = "/readyz") -> dict:
        """Wait until `path` answers 200 (/healthz for a server that is up but has no index)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ragtune serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    return json.loads(response.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        raise RuntimeError(f"ragtune serve was not ready after {timeout}s:\n{self.log()}")

    def request(self, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def ingest_folder(folder: Path, data_dir: Path, embedder) -> None:
    """Ingest a knowledge folder into data_dir in-process (the session's embedding model)."""
    from ingest.pipeline import run_ingest
    from ingest.sources import scan_folder
    from ragtune.settings import load_settings

    settings = load_settings(environ={"RAGTUNE_DATA_DIR": str(data_dir)})
    items, failures = scan_folder(folder, settings.ingest)
    report = run_ingest(settings, items, failures, embedder=embedder)
    assert not report.failed, report.failed


def copy_data_dir(source: Path, target: Path) -> Path:
    """A second, independent copy of an ingested data dir (two servers never share one)."""
    shutil.copytree(source, target)
    return target


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class StaticSite:
    """A customer's web site on its own loopback origin: serves the files of one folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, name: str, html: str) -> str:
        (self.folder / name).write_text(html, encoding="utf-8")
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Widget:
    """The support widget on the page the driver shows (inside its open shadow root)."""

    HOST = "document.querySelector('ragtune-widget')"

    def __init__(self, driver):
        self.driver = driver
        self.root = wait_until(
            lambda: driver.execute_script(f"const h = {self.HOST}; return h && h.shadowRoot"), what="the widget"
        )

    @classmethod
    def fresh(cls, driver, url: str) -> Widget:
        """Load url with this origin's stored conversation cleared."""
        driver.get(url)
        driver.execute_script("localStorage.clear()")
        driver.refresh()
        return cls(driver)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.root.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.root.find_elements(By.CSS_SELECTOR, css)

    def js(self, body: str, *args):
        """Run JS with `root` bound to the widget's shadow root."""
        return self.driver.execute_script(f"const root = {self.HOST}.shadowRoot; {body}", *args)

    def focused(self) -> str:
        """What has focus inside the widget: 'tag.class' of the shadow root's active element."""
        return self.js("const a = root.activeElement; return a ? a.tagName.toLowerCase() + '.' + a.className : ''")

    def open(self) -> None:
        self.find(".launch").click()
        wait_until(lambda: self.find(".panel").is_displayed(), what="the chat panel")

    def answers(self) -> list:
        return self.find_all(".m.b:not(.greet)")

    def stored(self) -> dict:
        """The widget's saved state for its API (session id, transcript) from localStorage."""
        return self.driver.execute_script(
            "for (const k of Object.keys(localStorage)) if (k.startsWith('ragtune.widget:')) return JSON.parse(localStorage[k]);"
        )

    def ask(self, question: str, timeout: float = 60.0):
        """Type a question, press Enter and wait for the finished answer bubble."""
        from selenium.webdriver.common.keys import Keys

        before = len(self.answers())
        self.find("textarea").send_keys(question, Keys.ENTER)
        return self.wait_answer(before, timeout)

    def wait_answer(self, before: int, timeout: float = 60.0):
        def done():
            answers = self.answers()
            return len(answers) > before and answers[-1].get_attribute("aria-busy") == "false" and answers[-1]

        return wait_until(done, timeout, what="the answer")

    @staticmethod
    def text(bubble) -> str:
        from selenium.webdriver.common.by import By

        return bubble.find_element(By.CSS_SELECTOR, ".t").get_attribute("textContent")
