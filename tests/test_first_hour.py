"""The scripts of README's "First hour": demo.sh, then serve.sh running the whole system.

serve.sh runs here as in a terminal: in a session of its own (so everything it
starts can be found again, and Ctrl-C is a SIGINT to its process group), on a
project of its own (database, backup folder and static files in tmp_path). Each
run carries a marker in its environment, which every process it starts inherits.
"""

import itertools
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing, suppress
from pathlib import Path

import pytest
import redis
import yaml

from .conftest import FILL_SQL, PROJECT, Project, backup_files, free_port, wait_until

pytestmark = pytest.mark.slow

SERVE = PROJECT / "scripts" / "serve.sh"
DEMO = PROJECT / "scripts" / "demo.sh"
MARKER = "SMARTAQUARIUM_TEST_SERVE"
_runs = itertools.count(1)


def session_processes(session: int) -> dict[int, str]:
    """pid: command line of every process in this session (zombies included, until reaped)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == session:
            found[int(stat.parent.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def marked_processes(marker: str) -> set[int]:
    """Processes whose environment carries this run's marker."""
    needle = f"{MARKER}={marker}".encode()
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.add(int(environ.parent.name))
        except OSError:
            continue
    return found


def as_at_a_terminal(*argv: str) -> list[str]:
    """argv with Ctrl-C's signal as a terminal gives it: a test run started in the background
    (`nohup ... &`) passes SIGINT on ignored, and a shell cannot trap a signal ignored at its start."""
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", reset, *argv]


class Serve:
    """./scripts/serve.sh on a project's database and backup folder."""

    def __init__(self, project: Project, broker_url: str, **env: str) -> None:
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.marker = secrets.token_hex(8)
        self.env = {
            **project.env,
            "CELERY_BROKER_URL": broker_url,
            "STATIC_ROOT": str(project.root / "static"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "TMPDIR": str(project.root),  # its redis-server's folder, left behind by kill -9
            MARKER: self.marker,
            **env,
        }
        self.log = project.root / f"serve-{next(_runs)}.log"
        self.process: subprocess.Popen | None = None
        self.seen: dict[int, str] = {}  # every process found in its session while it ran

    def start(self, wait: bool = True) -> "Serve":
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                as_at_a_terminal(str(SERVE)),
                cwd=self.project.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_for("smartAquarium is running.")
            self.wait_for(" ready.")  # the worker
            self.wait_for("beat: Starting...")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            self.seen.update(self.processes())
            if self.process.poll() is not None:
                raise AssertionError(f"serve.sh exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from serve.sh within {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def processes(self) -> dict[int, str]:
        return session_processes(self.process.pid)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C in its terminal: SIGINT to its foreground process group."""
        self.seen.update(self.processes())
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def left_behind(self) -> set[int]:
        """Processes of this run still alive once it has ended (zombies are reaped within moments)."""
        deadline = time.monotonic() + 10
        while True:
            left = set(self.processes()) | marked_processes(self.marker)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def kill(self) -> None:
        """After a test: SIGKILL whatever of this run is left, so no test leaves processes."""
        if self.process is None:
            return
        for pid in set(self.processes()) | marked_processes(self.marker):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)


@pytest.fixture
def serves():
    """Start Serve objects through this; whatever they leave is killed after the test."""
    started: list[Serve] = []

    def start(*args, **kwargs) -> Serve:
        serve = Serve(*args, **kwargs)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.kill()


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


def commands(processes: dict[int, str], program: str) -> list[int]:
    """The pids running .venv/bin/<program> (gunicorn, celery) or <program> (redis-server)."""
    return [pid for pid, line in processes.items() if re.search(rf"(^|/){program}( |$)", line)]


# -- serve.sh -------------------------------------------------------------------


def test_serve_runs_the_web_server_and_a_worker_with_beat_and_ctrl_c_stops_all_of_it(
    project, serves, redis_url
):
    serve = serves(project, redis_url).start()

    out = serve.output()
    assert f"  Admin:       {serve.url}/admin/\n" in out
    assert f"  Dashboard:   {serve.url}/admin/backups/\n" in out
    assert f"  Redis:       {redis_url}\n" in out  # it answers: used as it is
    assert f"  Backup log:  {project.backups}/scheduled_backup.log\n" in out
    assert (
        f"No admin user yet: in another terminal, run  DATABASE_URL=sqlite:///{project.db} "
        ".venv/bin/python manage.py createsuperuser\n"
    ) in out
    # The web server answers with the admin, and its stylesheet (DEBUG is off: WhiteNoise).
    assert get(f"{serve.url}/admin/login/")[0] == 200
    status, content_type, css = get(f"{serve.url}/static/admin/css/base.css")
    assert (status, content_type) == (200, 'text/css; charset="utf-8"')
    assert b"#header" in css
    running = serve.processes()
    assert len(commands(running, "gunicorn")) == 3, running  # the arbiter and 2 workers
    assert len(commands(running, "celery")) >= 3, running  # the worker, its pool and beat
    # The same commands as docker compose's web and worker services.
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())["services"]
    [web] = {line[line.index("gunicorn ") :] for line in running.values() if "/gunicorn " in line}
    assert web == compose["web"]["command"].replace("0.0.0.0:8000", f"127.0.0.1:{serve.port}") + (
        " --no-control-socket"  # one socket path per user: two checkouts would share it
    )
    [worker] = {line[line.index("celery ") :] for line in running.values() if "/celery " in line}
    assert worker == compose["worker"]["command"]
    # The one beat holds the beat lock in Redis, and it is one of ours.
    holder = redis.Redis.from_url(redis_url).get("smartaquarium:beat")
    assert holder is not None
    assert int(holder.decode().split(":")[1]) in running

    assert serve.interrupt() == 0

    out = serve.output()
    assert "Stopping the web server and the worker" in out
    assert "worker: Warm shutdown (MainProcess)" in out
    assert "Shutting down: Master" in out
    assert out.endswith("Stopped.\n")
    assert serve.left_behind() == set()
    assert len(serve.seen) >= 6


def test_serve_starts_its_own_redis_when_none_answers_and_stops_it(project, serves):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    serve = serves(project, dead).start()

    # Where CELERY_BROKER_URL points, since that port was free.
    assert (
        f"Redis at {dead} does not answer: started redis-server at {dead} for this session\n"
        in serve.output()
    )
    assert (
        f"  Redis:       {dead} (started by serve.sh, stops with it; its queue is not kept)\n"
        in serve.output()
    )
    assert redis.Redis.from_url(dead).ping()
    assert len(commands(serve.processes(), "redis-server")) == 1

    assert serve.interrupt() == 0

    assert serve.left_behind() == set()
    assert list(project.root.glob("smartaquarium-redis.*")) == []  # its folder is gone too
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(dead, socket_connect_timeout=1).ping()


def test_without_redis_serve_says_in_one_line_what_to_install(project, serves, tmp_path):
    # Every program of the system but redis-server.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(folder).iterdir():
            if program.name != "redis-server" and not (bin_dir / program.name).exists():
                (bin_dir / program.name).symlink_to(program)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    serve = serves(project, dead, PATH=str(bin_dir)).start(wait=False)

    assert serve.process.wait(60) == 1
    assert serve.output() == (
        f"Redis at {dead} does not answer and redis-server is not installed: install it "
        "(Debian/Raspberry Pi OS: sudo apt-get install redis-server), "
        "or set CELERY_BROKER_URL to a Redis that runs\n"
    )
    assert serve.left_behind() == set()


def test_a_second_serve_on_the_same_backup_folder_refuses_and_starts_no_second_beat(
    project, serves, redis_url
):
    first = serves(project, redis_url).start()

    second = serves(project, redis_url).start(wait=False)

    assert second.process.wait(60) == 1
    assert second.output() == (
        f"Already running for the backup folder {project.backups}: another scripts/serve.sh uses it; "
        "use that one, or stop it with Ctrl-C first\n"
    )
    assert second.left_behind() == set()
    # Another backup folder, the first one's port: refused before anything starts.
    other = Project(project.root / "other")
    other.root.mkdir()
    shutil.copy(project.db, other.db)
    third = serves(other, redis_url, PORT=str(first.port)).start(wait=False)
    assert third.process.wait(60) == 1
    assert third.output().endswith(
        f"Cannot serve on 127.0.0.1:{first.port}: the port is in use; stop what uses it, "
        "or choose another with PORT=8001 ./scripts/serve.sh\n"
    )
    assert third.left_behind() == set()
    # One beat: the first one's, and only one "beat: Starting..." anywhere.
    assert first.output().count("beat: Starting...") == 1
    holder = redis.Redis.from_url(redis_url).get("smartaquarium:beat")
    assert int(holder.decode().split(":")[1]) in first.processes()

    assert first.interrupt() == 0
    assert first.left_behind() == set()
    # Once the first has stopped, the folder is free again.
    again = serves(project, redis_url).start()
    assert again.interrupt() == 0


def test_ctrl_c_lets_a_running_backup_finish_before_serve_stops(plant, serves, celery_app, redis_url):
    with closing(sqlite3.connect(plant.db)) as db, db:
        # Only the backup sent below runs: beat sends nothing, even across the full hour.
        db.execute("UPDATE django_celery_beat_periodictask SET enabled = 0")
    serve = serves(plant, redis_url).start()
    celery_app.send_task("backup_tasks.tasks.complete_backup")

    def runs() -> list[tuple[str, str]]:
        with closing(sqlite3.connect(plant.db)) as db:
            return db.execute("SELECT kind, status FROM backup_tasks_backuprun ORDER BY id").fetchall()

    wait_until(lambda: "running" in {status for _, status in runs()}, timeout=60, what="the backup to start")
    # The worker's children (its pool and beat) are held in the middle of the
    # backup, so that Ctrl-C surely comes while it runs.
    celery = commands(serve.processes(), "celery")
    children = [pid for pid in celery if os.getpgid(pid) != pid]
    for pid in children:
        os.kill(pid, signal.SIGSTOP)
    try:
        os.killpg(serve.process.pid, signal.SIGINT)
        serve.wait_for("worker: Warm shutdown (MainProcess)")
        assert "running" in {status for _, status in runs()}
    finally:
        for pid in children:
            os.kill(pid, signal.SIGCONT)

    assert serve.process.wait(120) == 0
    assert runs() == [("snapshot", "succeeded"), ("csv", "succeeded"), ("json", "succeeded")]
    assert len(backup_files(plant.backups)) == 3
    out = serve.output()
    assert re.search(r"Task backup_tasks\.tasks\.complete_backup\[[0-9a-f-]+\] succeeded", out)
    assert serve.left_behind() == set()


def test_serve_killed_outright_leaves_nothing_behind(project, serves):
    serve = serves(project, f"redis://127.0.0.1:{free_port()}/0").start()  # its own redis-server too
    assert len(serve.processes()) >= 7

    os.kill(serve.process.pid, signal.SIGKILL)  # no trap runs: what it started stops by itself

    assert serve.process.wait(10) == -signal.SIGKILL
    assert serve.left_behind() == set()
    assert [path.name for path in project.root.glob("smartaquarium-redis.*/*")] == ["redis.log"]


def test_when_the_worker_dies_serve_stops_the_web_server_too(project, serves, redis_url):
    serve = serves(project, redis_url).start()
    [worker] = [pid for pid in commands(serve.processes(), "celery") if os.getpgid(pid) == pid]

    os.kill(worker, signal.SIGKILL)

    assert serve.process.wait(60) == 1
    assert "The worker stopped on its own (exit 137): stopping the rest" in serve.output()
    assert serve.left_behind() == set()


# -- demo.sh ----------------------------------------------------------------------


def test_after_demo_runserver_serves_the_admin_styled_with_debug_off(project, tmp_path):
    with closing(sqlite3.connect(project.db)) as db, db:
        db.execute(FILL_SQL, [99])  # some readings: demo.sh adds its week only to an empty database
    env = {**project.env, "STATIC_ROOT": str(tmp_path / "static"), "DEBUG": "false"}

    demo = subprocess.run([str(DEMO)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    collect = lines.index("$ python manage.py collectstatic --noinput")
    assert re.fullmatch(rf"\d+ static files copied to '{tmp_path}/static'\.", lines[collect + 2])
    assert "Total Readings: 100" in demo.stdout
    assert (
        lines[-1]
        == "Next: .venv/bin/python manage.py createsuperuser, then ./scripts/serve.sh (README: First hour)"
    )
    assert len(backup_files(project.backups)) == 3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(PROJECT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            try:
                return get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout=60, what="runserver")
        status, content_type, css = get(f"http://127.0.0.1:{port}/static/admin/css/base.css")
    finally:
        server.terminate()
        server.wait(10)
    assert (status, content_type) == (200, 'text/css; charset="utf-8"')
    assert css == (tmp_path / "static" / "admin" / "css" / "base.css").read_bytes()
