"""The operator's path through admin in a real browser.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by scripts/test.sh)
against gunicorn serving the project as in production, and a real
`celery -A smartAquarium worker -B` process; both share one SQLite file, one
backup folder and one throwaway Redis. The operator is a staff user with only
the permissions a shift lead needs, not a superuser.
"""

import hashlib
import os
import secrets
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import PROJECT, CeleryProcess, Project, backup_files, empty_redis_database, free_port

pytestmark = pytest.mark.browser
# Bounded waits for what a page shows (the status report arrives after the page):
# room for a busy machine, still a clear failure.
expect.set_options(timeout=15_000)

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT / "test-artifacts"
READINGS = 7 * 24 * 60  # a week, one a minute: enough for both temperature charts

OPERATOR = "shiftlead"
PASSWORD = secrets.token_urlsafe(16)
# What a shift lead needs to look, run, download and reschedule; nothing else.
PERMISSIONS = (
    "backup_tasks.view_dashboard",
    "backup_tasks.download_backup",
    "backup_tasks.run_backup",
    "django_celery_beat.change_periodictask",
    "django_celery_beat.change_crontabschedule",
)
# Run by `manage.py shell -c`; the password comes in the environment, never in argv.
CREATE_OPERATOR = """
import os
from django.contrib.auth.models import Permission, User

user = User.objects.create_user(
    os.environ["OPERATOR_NAME"], password=os.environ["OPERATOR_PASSWORD"], is_staff=True
)
for permission in os.environ["OPERATOR_PERMISSIONS"].split():
    app_label, codename = permission.split(".")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
"""


class Server:
    """gunicorn serving smartAquarium.wsgi (WhiteNoise serves the collected static files)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        gunicorn = Path(sys.executable).parent / "gunicorn"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                # As docker compose runs it; no control socket, which would be one
                # path shared by every gunicorn of this user.
                [
                    str(gunicorn),
                    "smartAquarium.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--worker-class",
                    "gthread",
                    "--no-control-socket",
                ],
                cwd=PROJECT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                # A worker's first request imports Django: give it time on a busy machine.
                with urllib.request.urlopen(f"{self.url}/admin/login/", timeout=10) as response:
                    if response.status == 200:
                        return self
            except OSError:  # refused while gunicorn binds, or a timeout
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"gunicorn did not answer on {self.url}:\n{self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@dataclass
class Live:
    project: Project
    server: Server
    worker: CeleryProcess
    first_backup: list[str]  # relative paths of the backup made before the server started

    @property
    def url(self) -> str:
        return self.server.url

    def query(self, sql: str, *params) -> list[tuple]:
        with closing(sqlite3.connect(self.project.db)) as db:
            return db.execute(sql, params).fetchall()

    def logs(self) -> str:
        return f"--- gunicorn ---\n{self.server.output()}\n--- worker ---\n{self.worker.output()}"


@pytest.fixture(scope="module")
def live(tmp_path_factory, migrated_template, redis_server):
    """A week of readings, one backup, the operator; gunicorn and a worker with beat on them."""
    root = tmp_path_factory.mktemp("live")
    shutil.copy(migrated_template, root / "db.sqlite3")
    project = Project(root)
    project.manage("simulate_readings", "--days", "7", "--interval", "60", check=True)
    operator_env = {
        **project.env,
        "OPERATOR_NAME": OPERATOR,
        "OPERATOR_PASSWORD": PASSWORD,
        "OPERATOR_PERMISSIONS": " ".join(PERMISSIONS),
    }
    project.manage("shell", "-c", CREATE_OPERATOR, env=operator_env, check=True)
    project.manage("backup_database", check=True)
    first_backup = backup_files(project.backups)

    broker_url = empty_redis_database(redis_server)
    # As deployed: DEBUG off, the admin's CSS and JavaScript collected and served by WhiteNoise.
    env = {**project.env, "CELERY_BROKER_URL": broker_url, "STATIC_ROOT": str(root / "static")}
    project.manage("collectstatic", "--noinput", env=env, check=True)

    worker = CeleryProcess(project, broker_url, "-B")
    server = Server(env, root / "gunicorn.log")
    try:
        worker.start()
        server.start()
        yield Live(project=project, server=server, worker=worker, first_backup=first_backup)
    finally:
        server.stop()
        worker.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless; never a browser of Playwright's own."""
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live: Live):
    """A fresh browser profile (no cookies) on the live server."""
    context = browser.new_context(
        base_url=live.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def log_in(page: Page, password: str = PASSWORD) -> None:
    """Open admin and type the credentials into its login form, as the operator does."""
    page.goto("/admin/")
    page.get_by_label("Username:").press_sequentially(OPERATOR)
    page.get_by_label("Password:").press_sequentially(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def signed_in(page: Page, live: Live) -> Page:
    log_in(page)
    expect(page).to_have_url(f"{live.url}/admin/")
    return page


def poll(page: Page, condition: Callable[[], bool], *, timeout: float, what: str, live: Live) -> None:
    """Reload the page until condition() holds; fail after timeout seconds with the processes' logs."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{live.logs()}"
        time.sleep(0.5)
        page.reload()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_operator_logs_in_through_the_admin_form_on_a_styled_admin(page: Page, live: Live):
    static: list[tuple[str, int]] = []
    page.on("response", lambda r: static.append((r.url, r.status)) if "/static/" in r.url else None)

    log_in(page, password="not-" + PASSWORD)
    expect(page.locator(".errornote")).to_contain_text(
        "Please enter the correct username and password for a staff account."
    )
    expect(page).to_have_url(f"{live.url}/admin/login/?next=/admin/")
    # Counted by the login throttle (5 lock the user out), which lets the right password in.
    failures = "SELECT username, ip_address, failures_since_start FROM axes_accessattempt"
    assert live.query(failures) == [(OPERATOR, "127.0.0.1", 1)]
    logins = "SELECT count(*) FROM axes_accesslog WHERE username = ?"
    [(before,)] = live.query(logins, OPERATOR)

    log_in(page)
    expect(page).to_have_url(f"{live.url}/admin/")
    assert live.query(logins, OPERATOR) == [(before + 1,)]
    expect(page.locator("#site-name")).to_have_text("Heat Treatment Plant Control")
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {OPERATOR}.")
    # The admin's own CSS was served (DEBUG is off: WhiteNoise, not runserver) and applies.
    assert any(url.endswith("/static/admin/css/base.css") for url, _ in static), static
    assert all(status in (200, 304) for _, status in static), static
    assert page.locator("#header").evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"


def test_the_dashboard_opens_from_the_admin_index_and_is_kept_as_a_screenshot(signed_in: Page, live: Live):
    page = signed_in
    page.get_by_role("link", name="Backup dashboard").click()

    expect(page).to_have_url(f"{live.url}/admin/backups/")
    expect(page.locator("h1")).to_have_text("Backup dashboard")
    for chart in ("chart-24h", "chart-7d", "chart-backups"):
        expect(page.locator(f"svg#{chart}")).to_be_visible()
    expect(page.locator("#disk")).not_to_be_empty()
    expect(page.locator("#status pre")).to_contain_text(f"Total Readings: {READINGS:,}")
    snapshot = page.locator("table#runs tr[data-kind='snapshot'][data-status='succeeded']")
    expect(snapshot.first).to_contain_text("Succeeded")
    expect(page.locator("form#actions button[name='job']")).to_have_text(
        [
            "Run complete backup now",
            "Export CSV now",
            "Export JSON now",
            "Clean up old backups now",
            "Run restore drill now",
        ]
    )

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    page.screenshot(path=screenshot, full_page=True)
    width, height = png_size(screenshot)
    assert (width, height) == (1280, page.evaluate("document.documentElement.scrollHeight"))


def test_the_hourly_schedule_gets_a_new_minute_in_admin(signed_in: Page, live: Live):
    page = signed_in
    # Half an hour from now, so that beat does not send the hourly backup during the tests.
    minute = str((datetime.now(UTC).minute + 30) % 60)

    page.locator("tr.model-periodictask").get_by_role("link", name="Periodic tasks").click()
    page.get_by_role("link", name="Hourly backup", exact=True).click()
    expect(page.locator("h1")).to_have_text("Change periodic task")
    # The pencil beside the crontab opens its change form in a pop-up window.
    with page.expect_popup() as opened:
        page.locator("#change_id_crontab").click()
    crontab_form = opened.value
    expect(crontab_form.locator("#id_minute")).to_have_value("0")
    crontab_form.locator("#id_minute").fill(minute)
    with crontab_form.expect_event("close"):
        crontab_form.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator("ul.messagelist")).to_have_text(
        f"The periodic task “Hourly backup: {minute} * * * * (m/h/dM/MY/d) UTC” was changed successfully."
    )
    row = page.locator("#result_list tr", has=page.get_by_role("link", name="Hourly backup", exact=True))
    expect(row).to_contain_text(f"{minute} * * * * (m/h/dM/MY/d) UTC")
    assert live.query(
        "SELECT c.minute, c.hour FROM django_celery_beat_periodictask t "
        "JOIN django_celery_beat_crontabschedule c ON c.id = t.crontab_id WHERE t.name = 'Hourly backup'"
    ) == [(minute, "*")]


def test_run_complete_backup_now_shows_the_new_run_as_succeeded(signed_in: Page, live: Live):
    page = signed_in
    page.goto("/admin/backups/")
    # The operator's own runs: beat may add one of its own if the tests cross the full hour.
    mine = page.locator("table#runs tr[data-kind='snapshot']", has_text=f"admin: {OPERATOR}")
    before = mine.count()

    page.get_by_role("button", name="Run complete backup now").click()

    expect(page).to_have_url(f"{live.url}/admin/backups/")
    expect(page.locator("ul.messagelist")).to_contain_text("Complete backup queued (task id ")
    poll(
        page,
        lambda: mine.count() > before and mine.first.get_attribute("data-status") != "running",
        timeout=60,
        what="the new snapshot run to finish",
        live=live,
    )
    expect(mine.first).to_have_attribute("data-status", "succeeded")
    expect(mine.first).to_contain_text("Succeeded")
    newest = live.query(
        "SELECT status, file FROM backup_tasks_backuprun WHERE kind = 'snapshot' AND \"trigger\" = ? "
        "ORDER BY started_at DESC, id DESC LIMIT 1",
        f"admin: {OPERATOR}",
    )
    assert newest[0][0] == "succeeded"
    expect(mine.first).to_contain_text(Path(newest[0][1]).name)
    assert Path(newest[0][1]).is_file()


def test_backup_files_download_with_the_checksum_of_their_manifest(signed_in: Page, live: Live, tmp_path):
    page = signed_in
    page.goto("/admin/backups/")
    assert [Path(name).parent.name for name in live.first_backup] == [
        "csv_exports",
        "database",
        "json_exports",
    ]

    for name in live.first_backup:
        link = page.locator(f"table#files a.download[href='/admin/backups/download/{name}']")
        with page.expect_download() as started:
            link.click()
        download = started.value
        assert download.failure() is None
        assert download.suggested_filename == Path(name).name
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        manifest = (live.project.backups / f"{name}.sha256").read_text(encoding="utf-8")
        assert manifest == f"{sha256(saved)}  {saved.name}\n"
        assert saved.stat().st_size == (live.project.backups / name).stat().st_size
        # Served as an attachment by the server itself, not only named by the link's attribute.
        headers = page.request.get(f"/admin/backups/download/{name}").headers
        assert headers["content-disposition"].startswith("attachment;")
