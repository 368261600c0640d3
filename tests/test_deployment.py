"""docker-compose.yml, the systemd unit and the web server are what README describes."""

import configparser
import io
import logging
import logging.config
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import PROJECT, free_port

README = (PROJECT / "README.md").read_text(encoding="utf-8")
WORKER = "celery -A smartAquarium worker -B -l INFO"


def compose() -> dict:
    return yaml.safe_load((PROJECT / "docker-compose.yml").read_text(encoding="utf-8"))


def readme_compose_table() -> dict[str, str]:
    """Service -> command, from the table under "Docker Compose" in README."""
    section = README.split("### Docker Compose", 1)[1].split("###", 1)[0]
    return dict(re.findall(r"^\| `([a-z]+)` \| `([^`]+)` \|", section, re.MULTILINE))


def test_compose_runs_the_services_and_commands_readme_describes():
    services = compose()["services"]

    assert {name: service["command"] for name, service in services.items()} == readme_compose_table()
    assert services["worker"]["command"] == WORKER
    assert f"```bash\n{WORKER}\n```" in README


def test_compose_web_and_worker_share_the_database_and_backups_volume():
    services = compose()["services"]

    for name in ("web", "worker", "migrate"):
        service = services[name]
        assert service["volumes"] == ["plant-data:/data"]
        assert service["environment"]["DATABASE_URL"] == "sqlite:////data/db.sqlite3"
        assert service["environment"]["BACKUP_DIR"] == "/data/backups"
        assert service["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert services["worker"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_reads_only_variables_that_env_example_lists():
    listed = set(re.findall(r"^([A-Z_]+)=", (PROJECT / ".env.example").read_text(), re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z_]+)", (PROJECT / "docker-compose.yml").read_text()))

    assert used
    assert used <= listed


def test_env_example_lists_every_variable_the_settings_read():
    settings = (PROJECT / "smartAquarium" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\("([A-Z_]+)"', settings))
    listed = set(re.findall(r"^([A-Z_]+)=", (PROJECT / ".env.example").read_text(), re.MULTILINE))

    # POSTGRES_PASSWORD is docker-compose.postgres.yml's, for its server and DATABASE_URL.
    assert read == listed - {"POSTGRES_PASSWORD"}


def test_the_systemd_unit_runs_one_worker_with_beat():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(PROJECT / "deploy" / "smartaquarium-worker.service")

    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert Path(exec_start[0]).name == "celery"
    assert " ".join(["celery", *exec_start[1:]]) == WORKER
    assert unit["Service"]["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "deploy/smartaquarium-worker.service" in README


def test_the_web_command_serves_the_admin_with_its_styles(project, tmp_path):
    static = tmp_path / "static"
    env = {**project.env, "STATIC_ROOT": str(static)}
    project.manage("collectstatic", "--noinput", env=env, check=True)
    port = free_port()
    command = compose()["services"]["web"]["command"].replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), *shlex.split(command)[1:]],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        login = fetch(f"http://127.0.0.1:{port}/admin/login/")
        css = fetch(f"http://127.0.0.1:{port}/static/admin/css/base.css")
    finally:
        web.terminate()
        web.wait(10)

    assert login.status == 200
    assert b"Heat Treatment Plant Control" in login.body
    assert css.status == 200
    assert css.headers["Content-Type"].startswith("text/css")


class Response:
    def __init__(self, status, headers, body) -> None:
        self.status, self.headers, self.body = status, headers, body


def fetch(url: str, timeout: float = 20) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def logged_in_session(project, create_user: str) -> str:
    """The session key of a user logged in through the project's database, for a Cookie header."""
    return project.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        f"user = {create_user}\n"
        "session = SessionStore()\n"
        "session.update({'_auth_user_id': str(user.pk), '_auth_user_hash': user.get_session_auth_hash(),\n"
        "    '_auth_user_backend': 'django.contrib.auth.backends.ModelBackend'})\n"
        "session.create()\n"
        "print(session.session_key)",
        check=True,
    ).stdout.split()[-1]  # after shell's "N objects imported automatically"


def test_the_web_command_keeps_sending_a_download_that_outlasts_the_worker_timeout(project):
    """gunicorn's sync workers are killed mid-response after --timeout; a year's export or a
    snapshot over a slow link takes longer than that. The web command must finish them."""
    snapshot = project.backups / "database" / "db_backup_20250111_080000.sqlite3"
    snapshot.parent.mkdir(parents=True)
    content = os.urandom(48 * 1024 * 1024)
    snapshot.write_bytes(content)
    session = logged_in_session(project, "User.objects.create_superuser('root', password=None)")
    port = free_port()
    command = compose()["services"]["web"]["command"].replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    web = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), *shlex.split(command)[1:], "--timeout", "2"],
        cwd=PROJECT,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        fetch(f"http://127.0.0.1:{port}/admin/login/")  # up
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/backups/download/database/{snapshot.name}",
            headers={"Cookie": f"sessionid={session}"},
        )
        received = bytearray()
        began = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            while chunk := answer.read(1024 * 1024):
                received += chunk
                time.sleep(0.1)  # a slow link: about 10 MB/s
        took = time.monotonic() - began
    finally:
        web.terminate()
        web.wait(10)

    assert len(received) == len(content)
    assert bytes(received) == content
    assert took > 4  # well past the 2 s timeout


def test_the_web_command_logs_a_refused_request_in_one_line(project):
    """A 403 is an everyday event (a shift lead without the dashboard permission), not a
    crash: one line in the web server's log, no traceback."""
    session = logged_in_session(project, "User.objects.create_user('shift', is_staff=True)")
    port = free_port()
    command = compose()["services"]["web"]["command"].replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    log = project.root / "web.log"
    with log.open("wb") as errors:
        web = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), *shlex.split(command)[1:]],
            cwd=PROJECT,
            env=project.env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        fetch(f"http://127.0.0.1:{port}/admin/login/")  # up
        for url in ("/admin/backups/", "/admin/backups/download/database/db_backup_20250111_080000.sqlite3"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{url}", headers={"Cookie": f"sessionid={session}"}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 403
    finally:
        web.terminate()
        web.wait(10)

    text = log.read_text()
    django_lines = [line.split(" ", 2)[2] for line in text.splitlines() if " django." in line]
    assert django_lines == [
        "WARNING django.request: Forbidden (Permission denied): /admin/backups/",
        "WARNING django.request: Forbidden (Permission denied): "
        "/admin/backups/download/database/db_backup_20250111_080000.sqlite3",
    ]
    assert "Traceback" not in text


def test_the_console_log_keeps_the_traceback_of_a_server_error_only():
    from django.conf import settings
    from django.utils.log import request_logger

    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(
        logging.config.DictConfigurator(settings.LOGGING).configure_formatter(
            settings.LOGGING["formatters"]["plain"]
        )
    )
    for status in (403, 500):
        try:
            raise RuntimeError(f"raised for {status}")
        except RuntimeError:
            record = request_logger.makeRecord(
                "django.request",
                logging.WARNING,
                __file__,
                1,
                "Answered %s",
                (status,),
                sys.exc_info(),
                extra={"status_code": status},
            )
        handler.handle(record)
        assert record.exc_info is not None  # the record itself is left whole for other handlers

    lines = handler.stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines if "django.request" in line] == [
        "WARNING django.request: Answered 403",
        "WARNING django.request: Answered 500",
    ]
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: raised for 500"
    assert "raised for 403" not in handler.stream.getvalue()


def test_the_postgresql_override_points_web_worker_and_migrate_at_its_server():
    override = yaml.safe_load((PROJECT / "docker-compose.postgres.yml").read_text(encoding="utf-8"))
    services = override["services"]
    url = "postgres://smartaquarium:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}@postgres:5432/smartaquarium"
    for name in ("web", "worker", "migrate"):
        assert services[name]["environment"] == {"DATABASE_URL": url}
        assert services[name]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    # The image's pg_dump (Debian bookworm's client, 15) is at least as new as the server.
    assert services["postgres"]["image"] == "postgres:15-bookworm"
    assert "FROM python:3.11-slim" in (PROJECT / "Dockerfile").read_text()
    assert "postgresql-client" in (PROJECT / "Dockerfile").read_text()
    assert "docker compose -f docker-compose.yml -f docker-compose.postgres.yml up -d" in README
    listed = set(re.findall(r"^([A-Z_]+)=", (PROJECT / ".env.example").read_text(), re.MULTILINE))
    assert set(re.findall(r"\$\{([A-Z_]+)", (PROJECT / "docker-compose.postgres.yml").read_text())) <= listed
