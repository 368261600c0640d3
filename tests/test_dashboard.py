"""The backup dashboard: what it shows, how it charts, and who may see and use it."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backup_tasks.models import BackupRun
from backup_tasks.queueing.broker import client as broker_client
from backup_tasks.queueing.schedules import install_default_schedules
from backup_tasks.services.status import backup_status, render_status
from backup_tasks.web import dashboard
from readings.models import Reading

from .conftest import free_port, operator, use_broker
from .test_admin import UUID, queued
from .test_exports import add

pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = "/admin/backups/"
RUN = "/admin/backups/run/"
STATUS = "/admin/backups/status/"
LIVE = "/admin/backups/live/"
BUTTONS = {
    "complete_backup": ("Run complete backup now", "backup_tasks.tasks.complete_backup", "Complete backup"),
    "export_csv": ("Export CSV now", "backup_tasks.tasks.export_csv", "CSV export"),
    "export_json": ("Export JSON now", "backup_tasks.tasks.export_json", "JSON export"),
    "cleanup": ("Clean up old backups now", "backup_tasks.tasks.cleanup_old_backups", "Cleanup"),
    "restore_drill": ("Run restore drill now", "backup_tasks.tasks.restore_drill", "Restore drill"),
}


@pytest.fixture
def schedules():
    PeriodicTask.objects.all().delete()
    install_default_schedules(PeriodicTask, CrontabSchedule, "UTC")


@pytest.fixture
def viewer(client, backup_dir, schedules):
    """A foreman who may look at the dashboard, but neither run jobs nor take files."""
    client.force_login(operator("vera", "view_dashboard"))
    return client


@pytest.fixture
def shift_lead(client, backup_dir, schedules):
    client.force_login(operator("alice", "view_dashboard", "run_backup", "download_backup"))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def section(page: str, element_id: str) -> str:
    """The markup of the element with this id, up to its closing tag."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}".*?</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return match.group()


# -- What it shows ------------------------------------------------------------


def test_the_dashboard_fetches_the_status_report_the_command_prints(viewer, backup_dir):
    add(24.5, 26.2, 60.5, 25.0, 120, timezone.now() - timedelta(minutes=3))
    add(24.7, 26.0, 60.1, 25.0, 110, timezone.now() - timedelta(minutes=2))

    page = viewer.get(DASHBOARD).content.decode()
    report = viewer.get(STATUS)

    assert "<h1>Backup dashboard</h1>" in page
    assert f'<pre data-src="{STATUS}">' in section(page, "status")
    assert report["Content-Type"] == "text/plain; charset=utf-8"
    assert report.content.decode() == render_status(backup_status())
    assert "  Total Readings: 2\n" in report.content.decode()


def test_the_dashboard_shows_last_success_and_failure_per_kind(viewer):
    now = timezone.now()
    BackupRun.objects.create(kind="snapshot", status="succeeded", started_at=now - timedelta(hours=2))
    BackupRun.objects.create(
        kind="snapshot", status="failed", started_at=now - timedelta(hours=1), error="Backup folder is full"
    )
    BackupRun.objects.create(kind="csv", status="succeeded", started_at=now - timedelta(hours=1))

    kinds = section(viewer.get(DASHBOARD).content.decode(), "kinds")
    rows = re.findall(
        r"<tr( class=\"failed\")?>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>", kinds
    )

    local = timezone.localtime
    by_kind = {label: (bool(failing), success, failure) for failing, label, success, failure in rows}
    assert by_kind["Database snapshot"] == (
        True,
        local(now - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
        local(now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S") + ": Backup folder is full",
    )
    assert by_kind["CSV export"] == (
        False,
        local(now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "never",
    )
    assert by_kind["JSON export"] == (False, "never", "never")


def test_the_health_line_is_the_one_check_gives(viewer):
    page = viewer.get(DASHBOARD).content.decode()

    health = section(page, "health")
    assert 'class="health health-critical"' in health
    assert "no verified database snapshot yet" in health


def next_step_of(page: str) -> tuple[str, list[str]]:
    """The health line's next step: its words, and the jobs of its buttons."""
    health = section(page, "health")
    match = re.search(r'<div class="next-step">(.*?)</div>', health, re.S)
    if match is None:
        return "", []
    text = re.sub(r"<form.*?</form>", "", match.group(1), flags=re.S).strip()
    return text, re.findall(r'<button type="submit" class="button" name="job" value="(\w+)">', match.group(1))


def test_a_new_installation_is_told_what_to_do_next_with_the_button_that_does_it(shift_lead, backup_dir):
    from django.core.management import call_command

    assert next_step_of(shift_lead.get(DASHBOARD).content.decode()) == (
        "Next: make the first backup.",
        ["complete_backup"],
    )

    add(24.5, 26.2, 60.5, 25.0, 120, timezone.now())
    call_command("backup_database", "--type", "db")
    page = shift_lead.get(DASHBOARD).content.decode()

    assert 'class="health health-warning"' in section(page, "health")
    assert next_step_of(page) == (
        "Next: run a restore drill. It restores the newest snapshot into a scratch copy and checks it; "
        "the weekly backup repeats it from then on.",
        ["restore_drill"],
    )
    assert (
        '<button type="submit" class="button" name="job" value="restore_drill">Run restore drill now</button>'
        in (section(page, "health"))
    )

    call_command("backup_database", "--drill")
    page = shift_lead.get(DASHBOARD).content.decode()

    assert 'class="health health-ok"' in section(page, "health")
    assert next_step_of(page) == ("", [])


def test_a_failed_job_is_offered_again_once_its_cause_is_set_right(shift_lead):
    BackupRun.objects.create(kind="csv", status="failed", error="Backup folder is not writable")

    assert next_step_of(shift_lead.get(DASHBOARD).content.decode()) == (
        "Next: set right what the error says, then run it again.",
        ["export_csv"],
    )


def test_who_may_not_run_jobs_is_told_the_next_step_without_a_button(viewer):
    assert next_step_of(viewer.get(DASHBOARD).content.decode()) == ("Next: make the first backup.", [])


def steady(markup: str) -> str:
    """Markup without what differs from one rendering to the next (CSRF masks)."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken"', markup)


def test_the_live_parts_are_the_dashboards_own(shift_lead, backup_dir):
    from django.core.management import call_command

    add(24.5, 26.2, 60.5, 25.0, 120, timezone.now())
    call_command("backup_database", "--type", "db")
    BackupRun.objects.create(kind="csv", status="running", trigger="admin: alice", details={"task": "t-1"})

    page = shift_lead.get(DASHBOARD).content.decode()
    live = shift_lead.get(LIVE)

    assert live.status_code == 200
    parts = re.search(r'data-parts="([^"]+)"', page).group(1).split()
    assert parts == ["health", "kinds", "runs", "files"]
    body = live.content.decode()
    for part in parts:
        assert steady(section(body, part)) == steady(section(page, part))
    assert '<tr data-kind="csv" data-status="running"' in section(body, "runs")
    assert 'data-trigger="admin: alice" data-task="t-1">' in section(body, "runs")
    assert f'data-live="{LIVE}"' in page


def test_a_queued_job_is_marked_for_the_page_to_follow(shift_lead, celery_app):
    page = shift_lead.get(DASHBOARD).content.decode()
    assert 'class="queued' not in page

    response = shift_lead.post(RUN, {"job": "complete_backup"}, follow=True)

    assert re.search(
        r'<li class="queued success">Complete backup queued \(task id [0-9a-f-]+\)\.</li>',
        response.content.decode(),
    )


def test_the_dashboard_shows_next_runs_and_free_disk_space(viewer, backup_dir):
    page = viewer.get(DASHBOARD).content.decode()

    names = re.findall(r"<tr><td>([^<]+)</td><td>next run \d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td></tr>", page)
    assert names == ["Daily backup and cleanup", "Hourly backup", "Weekly backup and statistics"]
    disk = section(page, "disk")
    assert re.search(
        rf"[\d.,]+ (GB|MB|KB) free of [\d.,]+ (GB|MB|KB) \(\d+ %\) in {re.escape(str(backup_dir))}", disk
    )


def test_the_files_table_lists_the_newest_backups_with_their_checksums(shift_lead, backup_dir):
    from django.core.management import call_command

    add(24.5, 26.2, 60.5, 25.0, 120, timezone.now() - timedelta(minutes=3))
    call_command("backup_database", "--type", "db")

    page = shift_lead.get(DASHBOARD).content.decode()

    [snapshot] = (backup_dir / "database").glob("db_backup_*.sqlite3")
    checksum = (backup_dir / "database" / f"{snapshot.name}.sha256").read_text().split()[0]
    files = section(page, "files")
    assert f"database/{snapshot.name}" in files
    assert (
        f'<code class="sha256">{checksum}</code> <a class="checksum" '
        f'href="/admin/backups/download/database/{snapshot.name}.sha256" download>.sha256</a>'
    ) in files
    runs = section(page, "runs")
    assert '<tr data-kind="snapshot" data-status="succeeded" data-started="' in runs
    assert snapshot.name in runs


def test_a_checksum_file_is_shown_only_when_it_is_ours(shift_lead, backup_dir, tmp_path):
    import os

    folder = backup_dir / "database"
    folder.mkdir(parents=True)
    good, linked, piped, junk = (folder / f"db_backup_20250111_0{n}0000.sqlite3" for n in range(4))
    for path in (good, linked, piped, junk):
        path.write_bytes(b"SQLite format 3\x00")
    (folder / f"{good.name}.sha256").write_text(f"{'a' * 64}  {good.name}\n")
    secret = tmp_path / "secret"
    secret.write_text(f"{'b' * 64}  anything\n")
    (folder / f"{linked.name}.sha256").symlink_to(secret)  # would show another file's first word
    os.mkfifo(folder / f"{piped.name}.sha256")  # would block the request forever
    (folder / f"{junk.name}.sha256").write_text("<script>alert(1)</script>  x\n")

    files = section(shift_lead.get(DASHBOARD).content.decode(), "files")

    shown = re.findall(r'<code class="sha256">([^<]*)</code>', files)
    assert shown == ["", "", "", "a" * 64]  # newest first
    assert "b" * 64 not in files
    assert "alert" not in files


def test_an_empty_plant_gets_a_dashboard_not_an_error(viewer):
    page = viewer.get(DASHBOARD).content.decode()

    assert "No readings in the last 24 hours" in section(page, "chart-24h")
    assert "No readings in the last 7 days" in section(page, "chart-7d")
    assert "No backups in the last 30 days" in section(page, "chart-backups")
    assert "No runs yet." in section(page, "runs")
    assert "No backups yet." in section(page, "files")


# -- Charts ----------------------------------------------------------------------


def test_readings_are_averaged_per_bucket_in_the_database(backup_dir):
    window = dashboard.Window("test", "Last hour", timedelta(hours=1), timedelta(minutes=10))
    now = datetime(2026, 3, 29, 12, 34, 56, tzinfo=UTC)
    start, end = window.bounds(now)
    assert (start, end) == (
        datetime(2026, 3, 29, 11, 40, tzinfo=UTC),
        datetime(2026, 3, 29, 12, 40, tzinfo=UTC),
    )
    add(20.0, 30.0, 50, 25.0, 1, datetime(2026, 3, 29, 11, 40, 0, tzinfo=UTC))  # first bucket
    add(22.0, 31.0, 50, 25.0, 1, datetime(2026, 3, 29, 11, 49, 59, tzinfo=UTC))  # first bucket
    add(26.5, 28.0, 50, 26.0, 1, datetime(2026, 3, 29, 12, 35, 0, tzinfo=UTC))  # last bucket
    add(24.0, 32.0, 50, 25.0, 1, datetime(2026, 3, 29, 11, 49, 59, 999_999, tzinfo=UTC))  # first bucket
    add(99.0, 99.0, 50, 99.0, 1, datetime(2026, 3, 29, 11, 39, 59, tzinfo=UTC))  # before the window
    add(99.0, 99.0, 50, 99.0, 1, datetime(2026, 3, 29, 12, 40, 0, tzinfo=UTC))  # after it

    water, air, setpoint = dashboard.temperature_series(window, now)

    assert [label for label in (water.label, air.label, setpoint.label)] == ["Water", "Air", "Setpoint"]
    assert [moment for moment, _ in water.points] == [start + timedelta(minutes=5 + 10 * i) for i in range(6)]
    assert [value for _, value in water.points] == [22.0, None, None, None, None, 26.5]
    assert [value for _, value in air.points] == [31.0, None, None, None, None, 28.0]
    assert [value for _, value in setpoint.points] == [25.0, None, None, None, None, 26.0]


def test_a_gap_in_the_readings_breaks_the_charted_line(viewer):
    now = timezone.now()
    for minutes in (*range(60, 40, -1), *range(20, 0, -1)):  # nothing between 40 and 20 minutes ago
        add(25.0, 24.0, 60.0, 25.0, 100, now - timedelta(minutes=minutes))

    chart = section(viewer.get(DASHBOARD).content.decode(), "chart-24h")

    water = re.findall(r'<polyline class="series" data-series="Water"[^>]* points="([^"]+)"', chart)
    assert len(water) == 2  # before and after the gap
    assert sum(len(line.split()) for line in water) in range(8, 13)  # 5-minute averages of 40 minutes
    assert len(re.findall(r'data-series="Air"', chart)) == 2
    assert len(re.findall(r'data-series="Setpoint"', chart)) == 2


def test_the_week_chart_holds_one_point_per_half_hour_however_many_readings(viewer):
    now = timezone.now()
    Reading.objects.bulk_create(
        Reading(
            water_temperature=25.0,
            air_temperature=24.0,
            humidity=60.0,
            setpoint=25.0,
            pid_output=100.0,
            timestamp=now - timedelta(seconds=30 * i),
        )
        for i in range(7 * 24 * 120 + 120)  # a week every 30 s, and an hour before it
    )

    chart = section(viewer.get(DASHBOARD).content.decode(), "chart-7d")

    [water] = re.findall(r'data-series="Water"[^>]* points="([^"]+)"', chart)
    assert len(water.split()) == 7 * 48


def test_the_backup_charts_plot_each_successful_backup(viewer):
    now = timezone.now()
    for hours, size in ((50, 10_000_000), (26, 12_000_000), (2, 14_000_000)):
        BackupRun.objects.create(
            kind="snapshot",
            status="succeeded",
            started_at=now - timedelta(hours=hours),
            size_bytes=size,
            duration_s=1.5,
        )
    BackupRun.objects.create(kind="snapshot", status="failed", started_at=now - timedelta(hours=1))
    BackupRun.objects.create(
        kind="snapshot", status="succeeded", started_at=now - timedelta(days=40), size_bytes=1, duration_s=1
    )

    page = viewer.get(DASHBOARD).content.decode()

    sizes = section(page, "chart-backups")
    assert len(re.findall(r'<circle class="marker"', sizes)) == 3
    assert 'data-series="Database snapshot"' in sizes
    assert 'data-series="CSV export"' not in sizes
    assert len(re.findall(r'<circle class="marker"', section(page, "chart-durations"))) == 3


# -- Buttons ---------------------------------------------------------------------


@pytest.mark.parametrize("job", list(BUTTONS))
def test_each_button_queues_its_job_and_returns_to_the_dashboard(shift_lead, celery_app, job):
    button, task, answer = BUTTONS[job]
    page = shift_lead.get(DASHBOARD).content.decode()
    assert f'<button type="submit" class="button" name="job" value="{job}">{button}</button>' in page

    response = shift_lead.post(RUN, {"job": job}, follow=True)

    assert response.redirect_chain == [(DASHBOARD, 302)]
    [message] = messages_of(response)
    assert re.fullmatch(rf"{answer} queued \(task id ({UUID})\)\.", message)
    [queued_task] = queued(broker_client())
    assert queued_task["task"] == task
    assert queued_task["backup_requested_by"] == "alice"


def test_an_unknown_job_is_refused_with_a_message(shift_lead, celery_app):
    response = shift_lead.post(RUN, {"job": "rm -rf"}, follow=True)

    assert response.status_code == 200
    assert messages_of(response) == ["Unknown job: choose one of the dashboard's buttons."]
    assert queued(broker_client()) == []


def test_a_button_with_the_broker_down_answers_with_a_message(shift_lead, celery_app):
    use_broker(celery_app, f"redis://127.0.0.1:{free_port()}/0")

    response = shift_lead.post(RUN, {"job": "complete_backup"}, follow=True)

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Could not queue the backup: ")
    assert message.endswith("Start Redis, or check CELERY_BROKER_URL.")


# -- Who may see and use it ------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, celery_app):
    for response in (
        client.get(DASHBOARD),
        client.get(STATUS),
        client.get(LIVE),
        client.post(RUN, {"job": "complete_backup"}),
    ):
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login/?next=/admin/backups/")
    assert queued(broker_client()) == []


def test_staff_without_our_permission_see_no_dashboard_and_no_link(client, schedules):
    client.force_login(operator("bob", "view_reading"))

    assert client.get(DASHBOARD).status_code == 403
    assert client.get(STATUS).status_code == 403
    assert client.get(LIVE).status_code == 403
    assert "Backup dashboard" not in client.get("/admin/").content.decode()


def test_the_admin_index_links_to_the_dashboard(viewer):
    index = viewer.get("/admin/").content.decode()

    assert f'<a href="{DASHBOARD}">Backup dashboard</a>' in index


def test_without_the_run_permission_there_are_no_buttons_and_posts_are_refused(viewer, celery_app):
    page = viewer.get(DASHBOARD).content.decode()

    assert 'id="actions"' not in page
    assert "Run complete backup now" not in page
    assert viewer.post(RUN, {"job": "complete_backup"}).status_code == 403
    assert queued(broker_client()) == []


def test_without_the_download_permission_there_are_no_download_links(viewer, backup_dir):
    from django.core.management import call_command

    add(24.5, 26.2, 60.5, 25.0, 120, timezone.now())
    call_command("backup_database", "--type", "db")

    files = section(viewer.get(DASHBOARD).content.decode(), "files")

    assert "db_backup_" in files
    assert "/admin/backups/download/" not in files


def test_jobs_are_run_by_post_only_and_with_a_csrf_token(shift_lead, celery_app):
    assert shift_lead.get(RUN, {"job": "complete_backup"}).status_code == 405

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator("carol", "view_dashboard", "run_backup"))
    assert strict.post(RUN, {"job": "complete_backup"}).status_code == 403
    assert queued(broker_client()) == []

    page = strict.get(DASHBOARD).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', section(page, "actions")).group(1)
    assert strict.post(RUN, {"job": "complete_backup", "csrfmiddlewaretoken": token}).status_code == 302
    assert len(queued(broker_client())) == 1


def test_the_dashboard_itself_is_get_only(viewer):
    assert viewer.post(DASHBOARD).status_code == 405


def test_the_backup_folder_is_served_nowhere_outside_admin(backup_dir, settings):
    """Through the WSGI application gunicorn serves (static files included), as a superuser would ask."""
    from io import BytesIO
    from wsgiref.util import setup_testing_defaults

    from django.contrib.auth.models import User
    from django.core.management import call_command

    from smartAquarium.wsgi import application

    add(24.5, 26.2, 60.5, 25.0, 120, timezone.now())
    call_command("backup_database", "--type", "db")
    [snapshot] = (backup_dir / "database").glob("db_backup_*.sqlite3")
    client = Client()
    client.force_login(User.objects.create_superuser("root", password=None))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    def status_of(path: str) -> str:
        environ = {"PATH_INFO": path, "HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={session}"}
        setup_testing_defaults(environ)
        environ["wsgi.input"] = BytesIO()
        answer = []
        body = application(environ, lambda status, headers: answer.append(status))
        b"".join(body)
        return answer[0]

    name = f"database/{snapshot.name}"
    assert status_of(f"/admin/backups/download/{name}").startswith("200")  # the one door, for comparison
    for path in (
        f"/{name}",
        f"/backups/{name}",
        f"/static/{name}",
        f"/static/../backups/{name}",
        f"/media/{name}",
        f"/admin/{name}",
        "/backups/",
        "/static/",
    ):
        assert status_of(path).startswith("404"), path


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (13.7, 41.3, [10, 20, 30, 40, 50]),  # the top tick above the highest value, never below
        (0.0, 41.3, [0, 20, 40, 60]),
        (20.9, 27.3, [20, 22, 24, 26, 28]),
        (0.0, 0.0, [0, 0.5, 1]),  # nothing to spread: a unit's range
    ],
)
def test_the_value_axis_covers_every_value(low, high, ticks):
    from backup_tasks.web.charts import nice_ticks

    assert nice_ticks(low, high) == ticks


def test_the_time_axis_keeps_to_plant_wall_clock_across_daylight_saving(settings):
    from zoneinfo import ZoneInfo

    from backup_tasks.web.charts import time_ticks

    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    # 29 March 2026 has 23 hours in Berlin; 25 October 2026 has 25.
    for day, hours in ((29, 23), (25, 25)):
        month = 3 if day == 29 else 10
        start = datetime(2026, month, day, tzinfo=berlin).astimezone(UTC)
        end = datetime(2026, month, day + 1, tzinfo=berlin).astimezone(UTC)
        assert end - start == timedelta(hours=hours)

        ticks = time_ticks(start, end)

        assert [label for _, label in ticks] == [
            "00:00",
            "04:00",
            "08:00",
            "12:00",
            "16:00",
            "20:00",
            "00:00",
        ]
        assert [moment.astimezone(berlin).hour for moment, _ in ticks] == [0, 4, 8, 12, 16, 20, 0]
    week = time_ticks(datetime(2026, 3, 26, 12, tzinfo=UTC), datetime(2026, 4, 2, 12, tzinfo=UTC))
    assert [label for _, label in week] == [
        "27.03.",
        "28.03.",
        "29.03.",
        "30.03.",
        "31.03.",
        "01.04.",
        "02.04.",
    ]
    assert {moment.astimezone(berlin).hour for moment, _ in week} == {0}
