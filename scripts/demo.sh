#!/usr/bin/env bash
# From a fresh clone: install, migrate, collect the admin's CSS and JavaScript,
# add a week of demo readings when the database is empty, run a complete backup
# and show the status. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv requirements.txt

# The backup history needs restic 0.14+: installed here as the test command
# installs its packages (as root, with apt-get); otherwise one line, and the
# demo goes on with plain backup files only.
if ! command -v restic >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing restic (the backup history)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null ||
            echo "restic could not be installed: going on without the backup history (README: Backup history)"
    else
        echo "restic is not installed: going on without the backup history (install it: sudo apt-get install restic)"
    fi
fi

run() {
    echo "\$ python manage.py $*"
    .venv/bin/python manage.py "$@"
}
run migrate --noinput
# DEBUG is off: WhiteNoise serves the admin's files from STATIC_ROOT, under
# runserver and gunicorn alike (smartAquarium/wsgi.py).
run collectstatic --noinput
run simulate_readings --days 7 --if-empty
run backup_database
run backup_database --status
echo
echo "Next: .venv/bin/python manage.py createsuperuser, then ./scripts/serve.sh (README: First hour)"
