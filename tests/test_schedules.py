"""The guide's schedules in the database, driven through the scheduler with a fixed clock.

The scheduler's own code (PlantScheduler.tick, the same as in `celery beat`)
sends real messages to a real Redis; only the clock is fixed.
"""

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from backup_tasks.queueing import beat
from backup_tasks.queueing.schedules import install_default_schedules

from .conftest import Project

pytestmark = pytest.mark.django_db(transaction=True)

BERLIN = ZoneInfo("Europe/Berlin")
HOURLY, DAILY, WEEKLY = "Hourly backup", "Daily backup and cleanup", "Weekly backup and statistics"


def test_migrate_stores_the_guides_schedule_as_enabled_crontabs_in_the_plant_zone(tmp_path):
    project = Project(tmp_path, time_zone="Europe/Berlin")
    project.manage("migrate", "--noinput", check=True)

    rows = (
        sqlite3.connect(project.db)
        .execute(
            "SELECT p.name, p.task, p.enabled, c.minute, c.hour, c.day_of_month, c.month_of_year,"
            " c.day_of_week, c.timezone FROM django_celery_beat_periodictask p"
            " JOIN django_celery_beat_crontabschedule c ON c.id = p.crontab_id ORDER BY p.id"
        )
        .fetchall()
    )
    assert rows == [
        (HOURLY, "backup_tasks.tasks.complete_backup", 1, "0", "*", "*", "*", "*", "Europe/Berlin"),
        (DAILY, "backup_tasks.tasks.daily_backup", 1, "0", "2", "*", "*", "*", "Europe/Berlin"),
        (WEEKLY, "backup_tasks.tasks.weekly_backup", 1, "0", "3", "*", "*", "0", "Europe/Berlin"),
    ]


def test_migrate_again_keeps_what_an_operator_changed(project):
    edit = (
        "from django_celery_beat.models import PeriodicTask\n"
        "hourly = PeriodicTask.objects.get(name='Hourly backup')\n"
        "hourly.crontab.minute = '15'; hourly.crontab.save()\n"
        "PeriodicTask.objects.filter(name='Weekly backup and statistics').delete()\n"
        "daily = PeriodicTask.objects.get(name='Daily backup and cleanup')\n"
        "daily.enabled = False; daily.save()\n"
    )
    project.manage("shell", "-c", edit, check=True)

    again = project.manage("migrate", "--noinput", check=True)

    assert "No migrations to apply." in again.stdout
    rows = (
        sqlite3.connect(project.db)
        .execute(
            "SELECT p.name, p.enabled, c.minute FROM django_celery_beat_periodictask p"
            " JOIN django_celery_beat_crontabschedule c ON c.id = p.crontab_id ORDER BY p.id"
        )
        .fetchall()
    )
    assert rows == [(HOURLY, 1, "15"), (DAILY, 0, "0")]


# -- the scheduler on a fixed clock ------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fixed = Clock(datetime(2026, 1, 1, tzinfo=UTC))
    monkeypatch.setattr(beat, "now", fixed)
    return fixed


def set_celery_zone(app, name: str) -> None:
    app.conf.timezone = name
    vars(app).pop("timezone", None)  # a cached property


@pytest.fixture
def plant_in_berlin(settings, celery_app):
    settings.TIME_ZONE = "Europe/Berlin"
    set_celery_zone(celery_app, "Europe/Berlin")
    PeriodicTask.objects.all().delete()
    install_default_schedules(PeriodicTask, CrontabSchedule, "Europe/Berlin")
    yield
    set_celery_zone(celery_app, "UTC")


@pytest.fixture
def schedulers(celery_app):
    """Make PlantSchedulers, as `celery beat` does; closed (their runs saved) after the test."""
    made: list[beat.PlantScheduler] = []

    def make() -> beat.PlantScheduler:
        made.append(beat.PlantScheduler(app=celery_app))
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def sent(redis_client) -> list[dict]:
    """The messages waiting in the queue, oldest first: their task and headers."""
    return [json.loads(raw)["headers"] for raw in reversed(redis_client.lrange("celery", 0, -1))]


def run_beat(schedulers, clock: Clock, start: datetime, end: datetime, step=timedelta(minutes=5)) -> None:
    """Tick each scheduler every 5 minutes of fixed-clock time, as often as it asks."""
    clock.now = start.astimezone(UTC)  # Real time runs on in UTC: local times repeat and skip.
    while clock.now < end:
        for s in schedulers:
            for _ in range(20):
                if s.tick() > 0:
                    break
        clock.now += step


def runs_by_job(redis_client) -> dict[str, list[str]]:
    runs: dict[str, list[str]] = {}
    for headers in sent(redis_client):
        runs.setdefault(headers["periodic_task_name"], []).append(headers["backup_slot"])
    return runs


@pytest.fixture
def broker(celery_app):
    from backup_tasks.queueing.broker import client

    return client()


def start_from(moment: datetime) -> None:
    """As if beat had sent every job just before `moment`."""
    for task in PeriodicTask.objects.all():
        task.last_run_at = moment - timedelta(seconds=1)
        task.save()


def test_spring_forward_runs_daily_once_at_three_and_hourly_once_per_real_hour(
    plant_in_berlin, schedulers, clock, broker
):
    # 2026-03-29: at 02:00 the clocks jump to 03:00; the day has 23 hours.
    start = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    end = datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN)
    start_from(start)

    run_beat([schedulers()], clock, start, end)

    runs = runs_by_job(broker)
    assert runs[DAILY] == ["2026-03-29 03:00:00+02:00", "2026-03-30 02:00:00+02:00"]
    assert runs[WEEKLY] == ["2026-03-29 03:00:00+02:00"]
    hourly = runs[HOURLY]
    assert hourly[:4] == [
        "2026-03-29 00:00:00+01:00",
        "2026-03-29 01:00:00+01:00",
        "2026-03-29 03:00:00+02:00",
        "2026-03-29 04:00:00+02:00",
    ]
    on_the_day = [slot for slot in hourly if slot.startswith("2026-03-29")]
    assert len(on_the_day) == 23
    real = [datetime.fromisoformat(slot) for slot in hourly]
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(real))


def test_fall_back_runs_daily_once_and_hourly_in_both_repeated_hours(
    plant_in_berlin, schedulers, clock, broker
):
    # 2026-10-25: at 03:00 the clocks go back to 02:00; the day has 25 hours.
    start = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
    end = datetime(2026, 10, 26, 2, 30, tzinfo=BERLIN)
    start_from(start)

    run_beat([schedulers()], clock, start, end)

    runs = runs_by_job(broker)
    assert runs[DAILY] == ["2026-10-25 02:00:00+02:00", "2026-10-26 02:00:00+01:00"]
    assert runs[WEEKLY] == ["2026-10-25 03:00:00+01:00"]
    hourly = runs[HOURLY]
    assert hourly[1:5] == [
        "2026-10-25 01:00:00+02:00",
        "2026-10-25 02:00:00+02:00",
        "2026-10-25 02:00:00+01:00",
        "2026-10-25 03:00:00+01:00",
    ]
    assert len([slot for slot in hourly if slot.startswith("2026-10-25")]) == 25
    real = [datetime.fromisoformat(slot) for slot in hourly]
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(real))


def test_edits_in_admin_reach_a_running_beat_without_a_restart(plant_in_berlin, schedulers, clock, broker):
    start = datetime(2026, 6, 1, 0, 0, tzinfo=BERLIN)
    start_from(start)
    running = schedulers()
    run_beat([running], clock, start, start + timedelta(hours=2, minutes=5))

    # As the admin's change form does: another time, a job switched off.
    hourly = PeriodicTask.objects.get(name=HOURLY)
    hourly.crontab = CrontabSchedule.objects.create(minute="30", hour="*", timezone="Europe/Berlin")
    hourly.save()
    daily = PeriodicTask.objects.get(name=DAILY)
    daily.enabled = False
    daily.save()
    run_beat([running], clock, start + timedelta(hours=2, minutes=5), start + timedelta(hours=4, minutes=5))

    # An interval instead of a crontab.
    hourly = PeriodicTask.objects.get(name=HOURLY)
    hourly.crontab = None
    hourly.interval = IntervalSchedule.objects.create(every=20, period=IntervalSchedule.MINUTES)
    hourly.save()
    run_beat([running], clock, start + timedelta(hours=4, minutes=5), start + timedelta(hours=5, minutes=5))

    assert runs_by_job(broker) == {
        HOURLY: [
            "2026-06-01 00:00:00+02:00",
            "2026-06-01 01:00:00+02:00",
            "2026-06-01 02:00:00+02:00",  # the daily job's slot too, below
            "2026-06-01 02:30:00+02:00",
            "2026-06-01 03:30:00+02:00",
            "2026-06-01 03:50:00+02:00",  # 20 minutes after 03:30: due, sent at once (04:05)
            "2026-06-01 04:25:00+02:00",
            "2026-06-01 04:45:00+02:00",
        ],
        DAILY: ["2026-06-01 02:00:00+02:00"],
    }


def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(
    plant_in_berlin, schedulers, clock, broker, backup_dir
):
    start = datetime(2026, 6, 1, 0, 0, tzinfo=BERLIN)
    start_from(start)
    first, second = schedulers(), schedulers()

    run_beat([first, second], clock, start, start + timedelta(hours=3, minutes=30))
    first.close()  # a clean stop hands over at once
    run_beat([second], clock, start + timedelta(hours=3, minutes=30), start + timedelta(hours=5, minutes=30))

    hourly = runs_by_job(broker)[HOURLY]
    assert hourly == [f"2026-06-01 0{hour}:00:00+02:00" for hour in range(6)]
    assert runs_by_job(broker)[DAILY] == ["2026-06-01 02:00:00+02:00"]
    log = (backup_dir / "scheduled_backup.log").read_text()
    assert f"already sends the schedule: this one ({second._token}) stands by. Run exactly one beat" in log
    assert f"This beat ({second._token}) now sends the schedule" in log


def test_a_run_due_while_redis_is_down_is_logged_as_missed_and_the_next_run_happens(
    plant_in_berlin, schedulers, clock, celery_app, backup_dir, tmp_path
):
    from backup_tasks.queueing.broker import client

    from .conftest import RedisServer, use_broker

    redis_server = RedisServer(tmp_path).start()
    use_broker(celery_app, f"{redis_server.url}/0")
    try:
        start = datetime(2026, 6, 1, 13, 30, tzinfo=BERLIN)
        start_from(start)
        running = schedulers()
        hour = timedelta(hours=1)
        run_beat([running], clock, start, start + hour)  # 14:00 is sent
        redis_server.stop()
        run_beat([running], clock, start + hour, start + 2 * hour)  # 15:00 cannot be
        redis_server.start()
        run_beat([running], clock, start + 2 * hour, start + 3 * hour)  # 16:00 is sent

        queued = [headers["backup_slot"] for headers in sent(client())]
    finally:
        redis_server.stop()
    assert queued == ["2026-06-01 16:00:00+02:00"]  # the restarted Redis lost 14:00's message
    log = (backup_dir / "scheduled_backup.log").read_text()
    assert (
        f"ERROR Missed Hourly backup due at 2026-06-01 15:00:00 CEST: the task queue at {redis_server.url}/0 "
        f"is unreachable (Error 111 connecting to 127.0.0.1:{redis_server.port}. Connection refused.). "
        "It was not queued and will not be made up; the next run is at 2026-06-01 16:00:00 CEST.\n"
    ) in log
    assert log.count("Missed ") == 1
