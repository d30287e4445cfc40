#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser tests (tests/serve/test_*_browser.py), from
# Debian's `chromium` and `chromium-driver` packages. Idempotent: nothing happens when both are
# there. RAGTUNE_TEST_CHROMIUM / RAGTUNE_TEST_CHROMEDRIVER point the tests at other executables.
set -euo pipefail
chromium=${RAGTUNE_TEST_CHROMIUM:-/usr/bin/chromium}
driver=${RAGTUNE_TEST_CHROMEDRIVER:-/usr/bin/chromedriver}
if [ -x "$chromium" ] && [ -x "$driver" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps.sh: no apt-get here; install Chromium and ChromeDriver and set RAGTUNE_TEST_CHROMIUM / RAGTUNE_TEST_CHROMEDRIVER" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing chromium and chromium-driver (browser tests)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
