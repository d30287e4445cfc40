#!/usr/bin/env bash
# Docker Compose for the compose-file tests (tests/test_deploy.py), from Debian's `docker-compose`
# package: its `docker-compose config` validates, interpolates and merges the files without a Docker
# engine. Idempotent: nothing happens when it is there. RAGTUNE_TEST_COMPOSE points the tests at
# another compose binary.
set -euo pipefail
if [ -n "${RAGTUNE_TEST_COMPOSE:-}" ] || command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "compose-deps.sh: no apt-get here; install docker-compose (v1.29+) or set RAGTUNE_TEST_COMPOSE" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing docker-compose (compose-file tests; no Docker engine needed)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
