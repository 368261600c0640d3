#!/usr/bin/env bash
# From a fresh clone: install, migrate, collect the admin's CSS and JavaScript,
# add a week of demo readings when the database is empty, run a complete backup
# and show the status. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
ensure_venv requirements.txt

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
