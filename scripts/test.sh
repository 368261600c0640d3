#!/usr/bin/env bash
# The whole test suite: installs the dev requirements and what the tests talk
# to, then runs pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv requirements-dev.txt

# The Celery tests start a throwaway redis-server of their own (on a free
# port) unless TEST_REDIS_URL names one; make sure the program is there.
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing redis-server"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server is missing: install it (Debian/Raspberry Pi OS: sudo apt-get install redis-server)" >&2
        exit 1
    fi
fi

exec .venv/bin/python -m pytest "$@"
