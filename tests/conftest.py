"""Shared fixtures: real SQLite files in tmp_path and real manage.py processes."""

import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.checkout_guard import checkout_stays_clean  # noqa: F401  (a session fixture: nothing left behind)

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """In-process tests use a real SQLite file, not Django's in-memory default."""
    from django.conf import settings

    test_db = tmp_path_factory.mktemp("testdb") / "test.sqlite3"
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(test_db)


@pytest.fixture
def backup_dir(settings, tmp_path) -> Path:
    folder = tmp_path / "backups"
    settings.BACKUP_DIR = folder
    return folder


class Project:
    """Runs manage.py in a subprocess against its own database and backup folder."""

    def __init__(self, root: Path, time_zone: str = "UTC") -> None:
        self.root = root
        self.db = root / "db.sqlite3"
        self.backups = root / "backups"
        self.time_zone = time_zone

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "PYTEST_")) and k != "SECRET_KEY"
        }
        env.update(
            DATABASE_URL=f"sqlite:///{self.db}",
            BACKUP_DIR=str(self.backups),
            # Made by the first process, as in a deployment without SECRET_KEY.
            SECRET_KEY_FILE=str(self.root / "secret.key"),
            TIME_ZONE=self.time_zone,
            DJANGO_SETTINGS_MODULE="smartAquarium.settings",
            PYTHONPATH=str(PROJECT),
        )
        return env

    def manage(self, *args: str, check: bool = False, timeout: float = 300, **kwargs):
        result = subprocess.run(
            [sys.executable, str(PROJECT / "manage.py"), *args],
            cwd=kwargs.pop("cwd", self.root),
            env=kwargs.pop("env", self.env),
            capture_output=kwargs.pop("capture_output", True),
            text=True,
            timeout=timeout,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def files(self) -> list[str]:
        """Every file below backups/ except the log (checksums included), as relative paths."""
        return sorted(
            str(p.relative_to(self.backups))
            for p in self.backups.rglob("*")
            if p.is_file() and not p.name.startswith("scheduled_backup.log")
        )


def backup_files(folder: Path) -> list[str]:
    """The backups below a folder (not the log, not their .sha256 checksums), as relative paths."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith("scheduled_backup.log") and p.suffix != ".sha256"
    )


def operator(username: str, *permissions: str):
    """A staff user with exactly these permissions (codenames); no password, for force_login."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(username, is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


# Ends a script run by measure(): its peak resident memory, as JSON's last word.
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
PEAK_KB = 'peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))\n'


def measure(project: Project, script: str, *args: str) -> dict:
    """Run a Python script in a fresh process on the project's settings; the JSON it prints."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=project.env,
        cwd=project.root,  # a relative path lands in tmp_path, not in the checkout
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def wait_until(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """One migrated, empty database, copied for each test that needs a project."""
    root = tmp_path_factory.mktemp("template")
    Project(root).manage("migrate", "--noinput", check=True)
    return root / "db.sqlite3"


@pytest.fixture
def project(tmp_path, migrated_template) -> Project:
    shutil.copy(migrated_template, tmp_path / "db.sqlite3")
    return Project(tmp_path)


# -- Redis and Celery ---------------------------------------------------------
#
# A throwaway redis-server on a free port (or TEST_REDIS_URL), one database
# number per test so no test sees another's queue or locks.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server process of our own, which a test may stop and start again."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        log = open(self.folder / f"redis-{self.port}.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--databases",
                "512",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: see {log.name}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The base URL (no database number) of the Redis the tests talk to."""
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url.rstrip("/").rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


_databases = itertools.count()  # 0: unused, 1: task results, 2 on: one per test


def empty_redis_database(server_url: str) -> str:
    """A broker URL on a database of its own on server_url, emptied."""
    base = redis.Redis.from_url(server_url)
    try:
        count = int(base.config_get("databases")["databases"])
    except redis.ResponseError:
        count = 16
    url = f"{server_url}/{2 + next(_databases) % (count - 2)}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def redis_url(redis_server) -> str:
    """A broker URL on a database of its own, empty."""
    return empty_redis_database(redis_server)


def use_broker(app, url: str) -> None:
    """Point the app at another broker, dropping connections pooled for the old one."""
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def celery_app(redis_url):
    """The project's Celery app, its broker on this test's Redis database; no result backend."""
    from smartAquarium.celery import app

    before = app.conf.broker_url
    use_broker(app, redis_url)
    yield app
    use_broker(app, before)


def use_result_backend(app, url: str | None) -> None:
    """Keep task results at url (None: nowhere, as in production), dropping the cached backend."""
    app.conf.result_backend = url
    app._backend_cache = None
    vars(app._local).pop("backend", None)


@pytest.fixture
def celery_results(celery_app, redis_server):
    """Keep task results in Redis, so a test can read a task's JSON summary."""
    use_result_backend(celery_app, f"{redis_server}/1")
    yield celery_app
    use_result_backend(celery_app, None)


@pytest.fixture
def worker(celery_results, backup_dir):
    """Celery's in-process test worker: two threads, real Redis, the test database."""
    import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping)
    from celery.contrib.testing.worker import start_worker

    celery_results.conf.worker_hijack_root_logger = False
    with start_worker(celery_results, pool="threads", concurrency=2, shutdown_timeout=30) as running:
        yield running


class CeleryProcess:
    """A real `celery -A smartAquarium worker` process (its own session, so it can be killed whole)."""

    def __init__(self, project: Project, broker_url: str, *args: str, **env: str) -> None:
        self.project = project
        self.args = [
            "worker",
            "--concurrency",
            "1",
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            *args,
        ]
        self.env = {**project.env, "CELERY_BROKER_URL": broker_url, **env}
        self.log = project.root / f"worker-{next(_workers)}.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "CeleryProcess":
        celery = Path(sys.executable).parent / "celery"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [str(celery), "-A", "smartAquarium", *self.args],
                cwd=PROJECT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_for("ready.")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if self.process.poll() is not None:
                raise AssertionError(f"celery exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from celery within {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Warm shutdown, as systemd stops it; killed if it hangs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, like a power cut."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


_workers = itertools.count(1)


@pytest.fixture
def celery_processes():
    """Start CeleryProcess objects through this; all are stopped after the test."""
    started: list[CeleryProcess] = []

    def start(*args, **kwargs) -> CeleryProcess:
        process = CeleryProcess(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


FILL_SQL = """
INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp)
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
SELECT 24.5 + (i % 100) / 100.0, 26.0, 60.0, 25.0, 120, datetime('2025-01-01', '+' || (2 * i) || ' seconds')
FROM seq
"""
SIZEABLE = 200_000  # readings: about a week and a half of the plant, 16 MB


@pytest.fixture(scope="session")
def sizeable_template(tmp_path_factory, migrated_template) -> Path:
    """A migrated database holding SIZEABLE readings, so that a backup takes a moment."""
    path = tmp_path_factory.mktemp("sizeable") / "db.sqlite3"
    shutil.copy(migrated_template, path)
    with sqlite3.connect(path) as db:
        db.execute(FILL_SQL, [SIZEABLE - 1])
    return path


@pytest.fixture
def plant(tmp_path, sizeable_template) -> Project:
    """A project whose database holds SIZEABLE readings."""
    shutil.copy(sizeable_template, tmp_path / "db.sqlite3")
    return Project(tmp_path)


LARGE = 2_800_000  # readings: about two months of the plant, 217 MB


@pytest.fixture(scope="session")
def large_template(tmp_path_factory, migrated_template) -> Path:
    """A migrated database of more than 200 MB, so that a snapshot takes seconds."""
    path = tmp_path_factory.mktemp("large") / "db.sqlite3"
    shutil.copy(migrated_template, path)
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(FILL_SQL, [LARGE - 1])
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    assert path.stat().st_size > 200_000_000
    return path


@pytest.fixture
def large(tmp_path, large_template) -> Project:
    """A project whose database holds LARGE readings (more than 200 MB)."""
    shutil.copy(large_template, tmp_path / "db.sqlite3")
    return Project(tmp_path)


class SensorWriter:
    """tests/sensor_writer.py in a process of its own: record_reading() every 20 ms."""

    def __init__(self, project: Project, *, close: bool = False, **env: str) -> None:
        self.project = project
        self.stop_file = project.root / f"stop-writer-{next(_writers)}"
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT / "tests" / "sensor_writer.py"), str(self.stop_file)]
            + (["--close"] if close else []),
            env={**project.env, **env},
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_until_writing(self) -> None:
        """Until its first readings are in the database."""
        started = newest_reading_id(self.project.db)
        wait_until(lambda: newest_reading_id(self.project.db) > started + 10, what="the writer to write")

    def stop(self) -> dict:
        """Stop it; its report: readings written, failed inserts, longest insert."""
        self.stop_file.touch()
        out, _ = self.process.communicate(timeout=60)
        return json.loads(out)


_writers = itertools.count(1)


def newest_reading_id(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COALESCE(MAX(id), 0) FROM readings_reading").fetchone()[0]
    finally:
        db.close()


# -- PostgreSQL ---------------------------------------------------------------
#
# TEST_POSTGRES_URL names a server to use (a role that may create databases);
# otherwise a throwaway cluster of our own: initdb and pg_ctl of Debian's
# postgresql package, on a free port on 127.0.0.1, in a temporary folder, as an
# unprivileged user when the tests run as root. A test that needs PostgreSQL
# and cannot get one fails and says why; it never skips.

PG_PASSWORD = "s3cret-Pg"  # the test cluster's own; goes to the tools in PGPASSWORD only


def postgres_bin() -> Path:
    """The folder of the newest installed initdb and pg_ctl (Debian: not on PATH)."""
    found = sorted(
        (int(path.parent.parent.name), path.parent)
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if path.parent.parent.name.isdigit() and (path.parent / "pg_ctl").exists()
    )
    if not found:
        pytest.fail(
            "No PostgreSQL server for the tests: initdb and pg_ctl are missing under /usr/lib/postgresql. "
            "Run ./scripts/test.sh (it installs Debian's postgresql) or set TEST_POSTGRES_URL.",
            pytrace=False,
        )
    return found[-1][1]


class PostgresCluster:
    """A cluster of our own: initdb, pg_ctl start on a free port, pg_ctl stop."""

    def __init__(self) -> None:
        import tempfile

        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="smartaquarium-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            import pwd

            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self.user is None:
                pytest.fail("Running as root, and no 'postgres' or 'nobody' user to run PostgreSQL as.")
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self.url = f"postgres://smartaquarium:{PG_PASSWORD}@127.0.0.1:{self.port}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, cwd=self.folder, timeout=120, **kwargs
        )

    def start(self) -> "PostgresCluster":
        password_file = self.folder / "pw"
        password_file.write_text(PG_PASSWORD + "\n")
        if self.user is not None:
            os.chown(password_file, self.user.pw_uid, self.user.pw_gid)
        made = self._run(
            self.bin / "initdb",
            "-D",
            self.data,
            "-U",
            "smartaquarium",
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if made.returncode != 0:
            pytest.fail(
                f"initdb failed, no PostgreSQL for the tests:\n{made.stdout}{made.stderr}", pytrace=False
            )
        # No fsync: the cluster is thrown away; what is measured is ours, not the server's durability.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c full_page_writes=off"
        started = self._run(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.folder / "log", "-o", options, "-w", "start"
        )
        if started.returncode != 0:
            log = (self.folder / "log").read_text(errors="replace") if (self.folder / "log").exists() else ""
            pytest.fail(
                f"pg_ctl start failed, no PostgreSQL for the tests:\n{started.stderr}\n{log}", pytrace=False
            )
        return self

    def stop(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """postgres://user:password@host:port of a server where the tests may create databases."""
    if url := os.environ.get("TEST_POSTGRES_URL"):
        yield url.rstrip("/").rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    cluster = PostgresCluster().start()
    yield cluster.url
    cluster.stop()


def pg_admin(server_url: str, database: str = "postgres"):
    import psycopg

    return psycopg.connect(f"{server_url}/{database}", autocommit=True)


_pg_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_template(postgres_server, tmp_path_factory) -> str:
    """One migrated, empty PostgreSQL database, copied (CREATE DATABASE ... TEMPLATE) for each test."""
    name = f"sa_template_{os.getpid()}"
    with pg_admin(postgres_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    root = tmp_path_factory.mktemp("pgtemplate")
    PgProject(root, f"{postgres_server}/{name}").manage("migrate", "--noinput", check=True)
    yield name
    with pg_admin(postgres_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PgProject(Project):
    """A project whose DATABASE_URL is a PostgreSQL database of its own."""

    def __init__(self, root: Path, url: str, time_zone: str = "UTC") -> None:
        super().__init__(root, time_zone)
        self.url = url
        self.server, self.name = url.rsplit("/", 1)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "DATABASE_URL": self.url}

    def sql(self, query: str, params=None) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def pg_project(tmp_path, postgres_server, pg_template) -> PgProject:
    """A project on a fresh migrated PostgreSQL database (dropped after the test)."""
    name = f"sa_test_{os.getpid()}_{next(_pg_databases)}"
    with pg_admin(postgres_server) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    project = PgProject(tmp_path, f"{postgres_server}/{name}")
    yield project
    with pg_admin(postgres_server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


PG_FILL_SQL = """
INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp)
SELECT 24.5 + (i %% 100) / 100.0, 26.0, 60.0, 25.0, 120, timestamptz '2025-01-01 00:00:00+00' + i * interval '2 seconds'
FROM generate_series(0, %s) AS i
"""


# -- an S3-compatible endpoint ------------------------------------------------
#
# moto_server (moto[server] from requirements-dev.txt) on a free loopback port:
# a real HTTP S3 endpoint that restic talks to as to any other.


class S3Server:
    """A moto_server process of our own, which a test may freeze (SIGSTOP) and thaw."""

    ACCESS = {"AWS_ACCESS_KEY_ID": "plant-test", "AWS_SECRET_ACCESS_KEY": "plant-test-secret"}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "S3Server":
        program = Path(sys.executable).parent / "moto_server"
        if not program.exists():
            raise RuntimeError(
                f"moto_server is not installed at {program}: pip install -r requirements-dev.txt "
                "(moto[server]) for the offsite history tests"
            )
        log = open(self.folder / f"moto-{self.port}.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(
            [str(program), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto_server did not start on port {self.port}: see {log.name}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    try:
        yield server
    finally:
        server.stop()
