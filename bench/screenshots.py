"""Screenshots of the support widget and the admin console for the README (docs/images/*.png).

Run: .venv/bin/python bench/screenshots.py [--out docs/images] [--answer-mode auto|extractive] [--only widget|admin]
Copies knowledge/ to a temporary folder, ingests it, starts `ragtune serve` on a free loopback port
(the bundled SmolLM2 model, answer mode auto by default, an admin key for the console) and drives
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

from tests.serve.browser import RagtuneServer, Widget, start_chromium, wait_until  # noqa: E402

QUESTION = "Can I get a refund on my annual plan?"


def widget_shots(driver, url: str, out: Path) -> list[Path]:
    widget = Widget.fresh(driver, url + "/demo")
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
    return shots


def console_shot(driver, url: str, key: str, out: Path) -> Path:
    driver.get(url + "/admin")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    driver.find_element(By.ID, "key").send_keys(key + "\n")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#documents tbody tr[data-doc]"), what="the documents")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#conversations article"), what="the conversations")
    path = out / "admin-console.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 2400))
    driver.save_screenshot(str(path))
    return path


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
        key = secrets.token_urlsafe(32)
        config: dict = {"chat": {"answer_mode": args.answer_mode}, "ingest": {"source_dir": str(base / "kb")}}
        if args.only != "widget":
            config["auth"] = {"admin_keys": [{"name": "screenshots", "key": key}]}
        server = RagtuneServer(base / "data", base / "serve", config)
        driver = start_chromium(1280, 940)
        try:
            server.wait_ready()
            shots: list[Path] = []
            if args.only != "admin":
                shots += widget_shots(driver, server.url, args.out)
            if args.only != "widget":
                shots.append(console_shot(driver, server.url, key, args.out))
        finally:
            driver.quit()
            server.stop()
    for path in shots:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
