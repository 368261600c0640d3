"""The operator's path through admin in a real browser.

Playwright drives Debian's Chromium (/usr/bin/chromium, installed by scripts/test.sh)
against gunicorn serving the project as in production, and a real
`celery -A smartAquarium worker -B` process; both share one SQLite file, one
backup folder and one throwaway Redis. The operator is a staff user with only
the permissions a shift lead needs, not a superuser.
"""

import hashlib
import os
import re
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
from .test_admin import UUID
from .test_first_hour import DEMO, Serve

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


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless; never a browser of Playwright's own.

    Stopped with this module: while Playwright's sync API is up, its event loop can be
    the thread's running loop, and Django refuses database calls from such a thread.
    Tests of other files that a pytest-xdist worker ran after this one failed so."""
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


def log_in(page: Page, password: str = PASSWORD, username: str = OPERATOR) -> None:
    """Open admin and type the credentials into its login form, as the operator does."""
    page.goto("/admin/")
    page.get_by_label("Username:").press_sequentially(username)
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


# -- The first hour, as README tells it: demo.sh, createsuperuser, serve.sh ---------

ADMIN = "admin"
HOURLY_MINUTE = (
    "SELECT c.minute FROM django_celery_beat_periodictask t "
    "JOIN django_celery_beat_crontabschedule c ON c.id = t.crontab_id WHERE t.name = 'Hourly backup'"
)


@pytest.fixture(scope="module")
def first_hour(tmp_path_factory, migrated_template, redis_server):
    """./scripts/demo.sh, createsuperuser, then ./scripts/serve.sh, on a project of their own."""
    root = tmp_path_factory.mktemp("first-hour")
    shutil.copy(migrated_template, root / "db.sqlite3")
    project = Project(root)
    # demo.sh adds a week of a reading every 2 s to an empty database; one a minute is quicker.
    project.manage("simulate_readings", "--days", "7", "--interval", "60", check=True)
    serve = Serve(project, empty_redis_database(redis_server))
    demo = subprocess.run([str(DEMO)], cwd=root, env=serve.env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    admin_env = {**serve.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    project.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        ADMIN,
        "--email",
        "admin@example.com",
        env=admin_env,
        check=True,
    )
    # The hourly backup half an hour from now, and nothing left due from before:
    # beat sends nothing while the test runs, whatever the time of day.
    with closing(sqlite3.connect(project.db)) as db, db:
        db.execute(
            "UPDATE django_celery_beat_crontabschedule SET minute = ? WHERE id = "
            "(SELECT crontab_id FROM django_celery_beat_periodictask WHERE name = 'Hourly backup')",
            [str((datetime.now(UTC).minute + 30) % 60)],
        )
        db.execute(
            "UPDATE django_celery_beat_periodictask SET last_run_at = ?",
            [datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")],
        )
    try:
        yield serve.start()
    finally:
        serve.kill()


def test_the_first_hour_through_serve_sh_in_a_styled_admin(browser: Browser, first_hour: Serve):
    serve = first_hour
    assert "No admin user yet" not in serve.output()
    context = browser.new_context(base_url=serve.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    live_fetches: list[int] = []
    page.on(
        "response",
        lambda r: live_fetches.append(r.status) if r.url.endswith("/admin/backups/live/") else None,
    )

    log_in(page, username=ADMIN)
    expect(page).to_have_url(f"{serve.url}/admin/")
    # The admin's stylesheet applies: a blue header laid out as a row (base.css), not a plain block.
    header = page.locator("#header")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(65, 118, 144)"
    assert header.evaluate("e => getComputedStyle(e).display") == "flex"

    # First visit: demo.sh made a backup, no restore drill yet; the health line says what next.
    page.get_by_role("link", name="Backup dashboard").click()
    expect(page).to_have_url(f"{serve.url}/admin/backups/")
    health = page.locator("#health")
    expect(health).to_have_class("health health-warning")
    expect(health).to_contain_text("but no restore drill succeeded in the last 8 days")
    expect(health.locator(".next-step")).to_contain_text("Next: run a restore drill.")
    expect(health.get_by_role("button")).to_have_text("Run restore drill now")

    # The worker is held (SIGSTOP) until the page has shown the job queued, so that
    # its run can only reach the page by the page's own refresh.
    [worker] = [pid for pid, line in serve.processes().items() if pid == os.getpgid(pid) and "celery" in line]
    mine = page.locator("table#runs tr", has_text=f"admin: {ADMIN}")
    os.kill(worker, signal.SIGSTOP)
    try:
        page.locator("form#actions").get_by_role("button", name="Run complete backup now").click()
        expect(page.locator("ul.messagelist li.queued")).to_contain_text("Complete backup queued (task id ")
        task_id = re.search(UUID, page.locator("ul.messagelist").inner_text()).group()
        page.evaluate("window.sameDocument = true")  # gone if anything loads the page again
        expect(mine).to_have_count(0)
        with page.expect_response(lambda r: r.url.endswith("/admin/backups/live/")):
            pass  # the page looks for the queued job's run
    finally:
        os.kill(worker, signal.SIGCONT)

    for kind in ("snapshot", "csv", "json"):
        expect(mine.and_(page.locator(f"[data-kind='{kind}']"))).to_have_attribute(
            "data-status", "succeeded", timeout=120_000
        )
    expect(mine).to_have_count(3)
    assert page.evaluate("window.sameDocument") is True
    assert set(live_fetches) == {200}  # fetched, and never a login page or an error
    log = (serve.project.backups / "scheduled_backup.log").read_text()
    assert f"Complete backup started (requested in admin by {ADMIN}, task {task_id})" in log
    assert re.search(r"Complete backup finished in [\d.]+ s: 3 files", log), log

    # The button in the health line: after the drill, OK, again without a reload.
    health.get_by_role("button", name="Run restore drill now").click()
    expect(page.locator("ul.messagelist li.queued")).to_contain_text("Restore drill queued (task id ")
    page.evaluate("window.sameDocument = true")
    try:
        expect(health).to_have_class("health health-ok", timeout=120_000)
    except AssertionError:
        # What the worker did, for whoever reads a failed run.
        print("Worker log:", (serve.project.backups / "scheduled_backup.log").read_text(), sep="\n")
        print("serve.sh:", serve.output(), sep="\n")
        print("Runs on the page:", page.locator("table#runs").inner_html(), "Fetches:", live_fetches)
        raise
    expect(health).to_contain_text("last runs succeeded")
    expect(health.locator(".next-step")).to_have_count(0)
    assert page.evaluate("window.sameDocument") is True

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "first-hour-dashboard.png"
    screenshot.unlink(missing_ok=True)
    page.screenshot(path=screenshot, full_page=True)
    assert png_size(screenshot)[0] == 1280

    # Backups > Backup runs lists them too.
    page.goto("/admin/backup_tasks/backuprun/")
    runs = page.locator("#result_list tbody tr", has_text=f"admin: {ADMIN}")
    expect(runs).to_have_count(4)

    # The hourly schedule gets another minute in admin; the dashboard's next run moves with it.
    page.goto("/admin/backups/")
    hourly = page.locator("#schedules tr", has_text="Hourly backup")
    with closing(sqlite3.connect(serve.project.db)) as db:
        [(before,)] = db.execute(HOURLY_MINUTE).fetchall()
    expect(hourly).to_contain_text(re.compile(rf"next run \d{{4}}-\d\d-\d\d \d\d:{int(before):02}:00"))
    minute = (int(before) + 15) % 60  # not due while the test runs either
    page.get_by_role("link", name="Home").click()
    page.locator("tr.model-backupschedule").get_by_role("link", name="Backup schedules").click()
    page.get_by_role("link", name="Hourly backup", exact=True).click()
    with page.expect_popup() as opened:
        page.locator("#change_id_crontab").click()
    crontab_form = opened.value
    crontab_form.locator("#id_minute").fill(str(minute))
    with crontab_form.expect_event("close"):
        crontab_form.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully.")
    page.goto("/admin/backups/")
    expect(hourly).to_contain_text(re.compile(rf"next run \d{{4}}-\d\d-\d\d \d\d:{minute:02}:00"))
    with closing(sqlite3.connect(serve.project.db)) as db:
        assert db.execute(HOURLY_MINUTE).fetchall() == [(str(minute),)]
    context.close()

    # Ctrl-C in serve.sh's terminal stops everything it started.
    assert serve.interrupt() == 0
    assert serve.left_behind() == set()
