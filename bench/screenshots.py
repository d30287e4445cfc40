"""Screenshots of the support widget and the admin console for the README (docs/images/*.png).

Run: .venv/bin/python bench/screenshots.py [--out docs/images] [--answer-mode auto|extractive] [--only widget|admin]
Copies knowledge/ to a temporary folder, ingests it, starts `ragtune serve` on a free loopback port
(the bundled SmolLM2 model, answer mode auto by default, a widget key and an admin key) and drives
headless Chromium (Debian's chromium + chromium-driver, `scripts/browser-deps.sh`) over /demo and
/admin. Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from tests.serve.browser import DROP_FILES, RagtuneServer, Widget, start_chromium, wait_until  # noqa: E402

QUESTION = "Can I get a refund on my annual plan?"
UPLOAD = ("comet-kettle.md", "# Comet kettle\n\nThe Comet kettle boils one litre of water in ninety seconds.\n", "text/markdown")


def widget_shots(driver, url: str, widget_key: str, out: Path) -> list[Path]:
    widget = Widget.fresh(driver, f"{url}/demo?key={widget_key}")
    widget.open()
    time.sleep(0.4)  # the panel's opening animation
    shots = [out / "widget-open.png"]
    driver.save_screenshot(str(shots[0]))
    bubble = widget.ask(QUESTION, timeout=180)
    source = bubble.find_element(By.CSS_SELECTOR, ".src li")
    ActionChains(driver).move_to_element(source).perform()  # show the cited quote
    wait_until(lambda: source.find_element(By.CSS_SELECTOR, ".q").is_displayed(), what="the quote")
    widget.js("const log = root.querySelector('.log'); log.scrollTop = log.scrollHeight;")
    shots.append(out / "widget-answer.png")
    driver.save_screenshot(str(shots[1]))
    bubble.find_element(By.CSS_SELECTOR, ".fb button[data-rating='up']").click()  # feedback, for the console
    wait_until(lambda: bubble.find_element(By.CSS_SELECTOR, ".fb [role=status]").text, what="the rating")
    return shots


def console_shots(driver, url: str, key: str, out: Path) -> list[Path]:
    driver.get(url + "/admin")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    driver.find_element(By.ID, "key").send_keys(key + "\n")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#documents tbody tr[data-doc]"), what="the documents")
    driver.execute_script(DROP_FILES, [list(UPLOAD)], driver.find_element(By.ID, "drop"))  # an upload and its job
    wait_until(lambda: driver.find_element(By.ID, "job").get_attribute("data-status") == "succeeded", 120, what="the job")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#conversations article"), what="the conversations")
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    shots = [out / "admin-console.png", out / "admin-versions-conversations.png"]
    driver.save_screenshot(str(shots[0]))
    # The lower part: index versions (with roll back), answer models, conversations with feedback.
    driver.execute_script("document.getElementById('versions-title').scrollIntoView()")
    driver.save_screenshot(str(shots[1]))
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--answer-mode", default="auto", choices=["auto", "generative", "extractive"])
    parser.add_argument("--only", choices=["widget", "admin"])
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ragtune-shots-") as tmp:
        base = Path(tmp)
        shutil.copytree(ROOT / "knowledge", base / "kb")
        environ = os.environ | {"RAGTUNE_DATA_DIR": str(base / "data"), "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "cli", "ingest", str(base / "kb")], check=True, env=environ, cwd=base)
        key, widget_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        config: dict = {"chat": {"answer_mode": args.answer_mode}, "ingest": {"source_dir": str(base / "kb")}}
        config["auth"] = {
            "admin_keys": [{"name": "screenshots", "key": key}],
            "widget_keys": [{"name": "demo", "key": widget_key, "origins": []}],
        }
        server = RagtuneServer(base / "data", base / "serve", config)
        driver = start_chromium(1280, 940)
        try:
            server.wait_ready()
            shots: list[Path] = []
            if args.only != "admin":
                shots += widget_shots(driver, server.url, widget_key, args.out)
            if args.only != "widget":
                shots += console_shots(driver, server.url, key, args.out)
        finally:
            driver.quit()
            server.stop()
    for path in shots:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
