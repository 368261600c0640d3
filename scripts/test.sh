#!/usr/bin/env bash
# The whole test suite: installs the dev requirements and what the tests talk
# to, then runs pytest (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv requirements-dev.txt

# require PROGRAM PACKAGE...: when PROGRAM is missing, install Debian's
# PACKAGEs as root, or say in one line what to install and stop.
apt_updated=
require() {
    local program="$1"
    shift
    if command -v "$program" >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing $*"
        if [ -z "$apt_updated" ]; then
            apt-get update -qq
            apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "$program is missing: install it (Debian/Raspberry Pi OS: sudo apt-get install $*)" >&2
        exit 1
    fi
}

# The Celery tests start a throwaway redis-server of their own (on a free
# port) unless TEST_REDIS_URL names one.
require redis-server redis-server
# The browser tests drive Debian's Chromium through Playwright's driver; they
# never download a browser of their own (no `playwright install`).
require /usr/bin/chromium chromium
# The backup history (tests/test_history.py) runs the real restic binary.
require restic restic

# The PostgreSQL tests start a throwaway cluster of their own (initdb and pg_ctl
# on a free port) unless TEST_POSTGRES_URL names a server. Debian keeps the
# server's programs in /usr/lib/postgresql/<version>/bin, off PATH.
initdb_path=$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -n 1 || true)
require "${initdb_path:-/usr/lib/postgresql/initdb}" postgresql postgresql-client
require pg_dump postgresql-client

# Two workers: most tests wait on worker processes, servers and the disk, so two
# share two cores well. A file's tests stay together (its module fixtures start
# servers once). TEST_WORKERS=0 runs everything in this one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
