#!/usr/bin/env bash
# The whole system on one machine, in one terminal: the web server (gunicorn,
# as docker compose runs it) and one Celery worker with beat. Ctrl-C stops both.
#
#   HOST (127.0.0.1) and PORT (8000): where the admin answers.
#   CELERY_BROKER_URL: used when that Redis answers; otherwise, when
#   redis-server is installed, a throwaway one runs for this session only.
#
# One at a time per backup folder: a second start refuses, so there is never
# a second beat sending the schedule.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BASH_VERSINFO[0]}" -lt 5 ] || { [ "${BASH_VERSINFO[0]}" -eq 5 ] && [ "${BASH_VERSINFO[1]}" -lt 1 ]; }; then
    echo "scripts/serve.sh needs bash 5.1 or later (this is $BASH_VERSION)" >&2
    exit 1
fi
if ! command -v flock >/dev/null 2>&1; then
    echo "flock is missing: install it (Debian/Raspberry Pi OS: sudo apt-get install util-linux)" >&2
    exit 1
fi

. scripts/_venv.sh
ensure_venv requirements.txt

HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-smartAquarium.settings}"

# What the settings say, and whether that Redis answers: shell assignments.
facts="$(
    .venv/bin/python - "$HOST" "$PORT" <<'PY'
import shlex
import socket
import sys
from urllib.parse import urlsplit

import redis
from django.conf import settings
from kombu.utils.url import maybe_sanitize_url

host, port = sys.argv[1], sys.argv[2]


def free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


broker = settings.CELERY_BROKER_URL
try:
    redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=2).ping()
    answers, why = "yes", ""
except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
    answers, why = "no", str(exc)
except (redis.RedisError, ValueError) as exc:
    answers, why = "error", str(exc)
# Where a local redis-server would go: the broker's own port when it names
# this machine and that port is free, else any free port.
parts = urlsplit(broker)
local_port = parts.port if parts.hostname in {"127.0.0.1", "localhost"} and parts.port else 6379
if not free("127.0.0.1", local_port):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        local_port = sock.getsockname()[1]
database = parts.path.lstrip("/") or "0"
try:
    web_free = "yes" if free(host, int(port)) else "no"
except (OSError, ValueError, OverflowError) as exc:
    web_free = f"no ({exc})"
facts = {
    "backup_dir": str(settings.BACKUP_DIR),
    "broker": broker,
    "broker_shown": maybe_sanitize_url(broker),
    "broker_answers": answers,
    "broker_why": why,
    "local_port": str(local_port),
    "local_broker": f"redis://127.0.0.1:{local_port}/{database}",
    "web_free": web_free,
}
for name, value in facts.items():
    print(f"{name}={shlex.quote(value)}")
PY
)"
eval "$facts"

case "$HOST" in
    0.0.0.0 | "::" | "[::]") address="127.0.0.1" ;;
    *) address="$HOST" ;;
esac
case "$address" in
    *:*) url="http://[${address#[}" && url="${url%]}]:$PORT" ;;
    *) url="http://$address:$PORT" ;;
esac

# One serve.sh per backup folder: a lock on the folder itself (no file left in
# it), held by this script and inherited by what it starts.
mkdir -p "$backup_dir"
exec 9<"$backup_dir"
if ! flock -n 9; then
    echo "Already running for the backup folder $backup_dir: another scripts/serve.sh uses it; use that one, or stop it with Ctrl-C first" >&2
    exit 1
fi

if [ "$web_free" != yes ]; then
    echo "Cannot serve on $HOST:$PORT: the port is in use${web_free#no}; stop what uses it, or choose another with PORT=8001 ./scripts/serve.sh" >&2
    exit 1
fi

# -- Stopping: everything this script started, and nothing else ---------------

web_pid=
worker_pid=
redis_pid=
scratch=
stopping=

# Each program runs in a process group of its own (set -m), so Ctrl-C reaches
# only this script, which stops them in order; the groups also hold every
# process they fork (gunicorn's workers, Celery's pool and beat). Should this
# script be killed outright (kill -9), they get a SIGTERM of their own.
guard=()
if command -v setpriv >/dev/null 2>&1 && setpriv --pdeathsig TERM true 2>/dev/null; then
    guard=(setpriv --pdeathsig TERM --)
fi
alive() { [ -n "$1" ] && kill -0 -- "-$1" 2>/dev/null; }

sweep() {
    # Whatever of a group outlived its leader is killed: no orphan stays behind.
    local group
    for group in "$@"; do
        if alive "$group"; then
            kill -KILL -- "-$group" 2>/dev/null || true
        fi
    done
}

stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        sweep "$redis_pid"
        redis_pid=
    fi
    if [ -n "$scratch" ]; then
        rm -rf "$scratch"
        scratch=
    fi
}

on_exit() {
    # A failure on the way (set -e) leaves nothing running either.
    sweep "$web_pid" "$worker_pid"
    stop_redis
}
trap on_exit EXIT

interrupts=0
on_signal() {
    if [ -z "$web_pid$worker_pid" ]; then
        exit 130 # not started yet: on_exit cleans up
    fi
    interrupts=$((interrupts + 1))
    stopping=1
    case "$interrupts" in
        1)
            echo
            echo "Stopping the web server and the worker (a running backup finishes first; Ctrl-C again stops it at once)"
            # gunicorn: graceful stop; Celery: warm shutdown, as systemd and compose stop them.
            kill -TERM "$web_pid" "$worker_pid" 2>/dev/null || true
            ;;
        2)
            echo "Stopping at once (Ctrl-C once more kills them)"
            # Celery's cold shutdown: running tasks stop and remove their unfinished files.
            kill -QUIT "$worker_pid" 2>/dev/null || true
            kill -INT "$web_pid" 2>/dev/null || true
            ;;
        *)
            sweep "$web_pid" "$worker_pid"
            ;;
    esac
}
trap on_signal INT TERM HUP

# -- Redis ------------------------------------------------------------------------

case "$broker_answers" in
    yes)
        redis_line="$broker_shown"
        ;;
    error)
        echo "Cannot use CELERY_BROKER_URL=$broker_shown: $broker_why" >&2
        exit 1
        ;;
    *)
        if ! command -v redis-server >/dev/null 2>&1; then
            echo "Redis at $broker_shown does not answer and redis-server is not installed: install it (Debian/Raspberry Pi OS: sudo apt-get install redis-server), or set CELERY_BROKER_URL to a Redis that runs" >&2
            exit 1
        fi
        scratch="$(mktemp -d "${TMPDIR:-/tmp}/smartaquarium-redis.XXXXXX")"
        set -m
        "${guard[@]}" redis-server --port "$local_port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$scratch" --logfile "$scratch/redis.log" </dev/null &
        redis_pid=$!
        set +m
        for _ in $(seq 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$local_port") 2>/dev/null; then
                break
            fi
            if ! kill -0 "$redis_pid" 2>/dev/null; then
                echo "redis-server did not start on port $local_port:" >&2
                cat "$scratch/redis.log" >&2
                exit 1
            fi
            sleep 0.1
        done
        export CELERY_BROKER_URL="$local_broker"
        redis_line="$local_broker (started by serve.sh, stops with it; its queue is not kept)"
        echo "Redis at $broker_shown does not answer: started redis-server at $local_broker for this session"
        ;;
esac

# -- Database and static files ----------------------------------------------------

# As compose's migrate service does before web and worker start; then the
# admin's CSS and JavaScript for WhiteNoise (DEBUG is off).
echo "\$ python manage.py migrate && python manage.py collectstatic"
superuser="$(
    .venv/bin/python - <<'PY'
import django

django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command

call_command("migrate", interactive=False, verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
print("yes" if get_user_model().objects.filter(is_superuser=True).exists() else "no")
PY
)"

# -- The web server and the worker ------------------------------------------------

set -m
"${guard[@]}" .venv/bin/gunicorn smartAquarium.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
    --worker-class gthread --no-control-socket </dev/null &
web_pid=$!
"${guard[@]}" .venv/bin/celery -A smartAquarium worker -B -l INFO </dev/null &
worker_pid=$!
set +m

# The addresses once both answer: the web server (a worker imports Django
# first) and the worker (Celery's ping), so they come after the worker's banner.
ready() {
    (exec 3<>"/dev/tcp/$address/$PORT") 2>/dev/null &&
        .venv/bin/celery -A smartAquarium inspect ping --timeout 1 >/dev/null 2>&1
}
for _ in $(seq 120); do
    if [ -n "$stopping" ] || ! kill -0 "$web_pid" 2>/dev/null || ! kill -0 "$worker_pid" 2>/dev/null; then
        break
    fi
    if ready; then
        echo
        echo "smartAquarium is running. Ctrl-C stops the web server and the worker."
        echo "  Admin:       $url/admin/"
        echo "  Dashboard:   $url/admin/backups/"
        echo "  Worker:      celery -A smartAquarium worker -B (backups, exports, cleanup and the schedule)"
        echo "  Redis:       $redis_line"
        echo "  Backup log:  $backup_dir/scheduled_backup.log"
        if [ "$address" != 127.0.0.1 ] && [ "$address" != localhost ] && [ "$address" != ::1 ]; then
            echo "  Other machines: http://$(hostname):$PORT/admin/ once ALLOWED_HOSTS names $(hostname)"
        fi
        if [ "$superuser" != yes ]; then
            command=".venv/bin/python manage.py createsuperuser"
            if [ -n "${DATABASE_URL:-}" ]; then
                command="DATABASE_URL=$(printf %q "$DATABASE_URL") $command"
            fi
            echo "No admin user yet: in another terminal, run  $command"
        fi
        echo
        break
    fi
    sleep 0.5
done

# -- Until Ctrl-C, or until one of them stops on its own ---------------------------

status=0
web_status=
worker_status=
while [ -z "$web_status" ] || [ -z "$worker_status" ]; do
    finished=
    code=0
    wait -n -p finished $([ -z "$web_status" ] && echo "$web_pid") \
        $([ -z "$worker_status" ] && echo "$worker_pid") || code=$?
    if [ -z "${finished:-}" ]; then
        continue # a signal: on_signal has run
    fi
    if [ "$finished" = "$web_pid" ]; then
        web_status=$code
        sweep "$web_pid"
        name="The web server"
    else
        worker_status=$code
        sweep "$worker_pid"
        name="The worker"
    fi
    if [ -z "$stopping" ]; then
        stopping=1
        status=1
        echo "$name stopped on its own (exit $code): stopping the rest" >&2
        kill -TERM "$web_pid" "$worker_pid" 2>/dev/null || true
    fi
done
stop_redis
echo "Stopped."
exit "$status"
