"""A real `celery -A smartAquarium worker` process: beat, crashes, retries, time limits."""

import csv
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from backup_tasks import tasks
from backup_tasks.queueing.schedules import install_default_schedules
from readings.models import Reading

from .conftest import SIZEABLE, Project, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def finals(folder: Path, pattern: str = "*/[!.]*") -> list[Path]:
    """Backups under their final names (not their .sha256 checksums)."""
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix != ".sha256")


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/.*"))


def verify_backup_set(folder: Path, stamp: str, readings: int, exported: int | None = None) -> None:
    """The three files of one backup open; the snapshot holds every reading, the exports `exported`."""
    exported = readings if exported is None else exported
    with sqlite3.connect(folder / "database" / f"db_backup_{stamp}.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM readings_reading").fetchone() == (readings,)
    with open(folder / "csv_exports" / f"readings_{stamp}.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][0] == "Water Temp (°C)"
    assert len(rows) == exported + 1
    assert len(json.loads((folder / "json_exports" / f"readings_{stamp}.json").read_text())) == exported


def stamps(folder: Path) -> list[str]:
    return [re.search(r"\d{8}_\d{6}", p.name).group() for p in finals(folder, "database/*.sqlite3")]


@pytest.fixture
def hourly_every_two_seconds():
    """The operator's edit in admin: the hourly backup every 2 s; the daily and weekly jobs off."""
    PeriodicTask.objects.all().delete()
    install_default_schedules(PeriodicTask, CrontabSchedule, "UTC")
    for task in PeriodicTask.objects.all():
        if task.name == "Hourly backup":
            task.crontab = None
            task.interval = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
        else:
            task.enabled = False
        task.save()
    return PeriodicTask.objects.get(name="Hourly backup")


def switch_off(task: PeriodicTask) -> None:
    """As admin's "Disable selected tasks" or the change form does."""
    task.refresh_from_db()
    task.enabled = False
    task.save()


def backups_done(project: Project, count: int) -> bool:
    """`count` complete backups written: the JSON export is the last file of each."""
    finished = finals(project.backups, "json_exports/*.json")
    return len(finished) >= count and not temporaries(project.backups)


def on_test_database(tmp_path: Path) -> Project:
    """A project whose processes use this test's database, so the ORM here edits what they read."""
    project = Project(tmp_path)
    project.db = Path(connection.settings_dict["NAME"])
    return project


def test_worker_with_beat_runs_the_job_as_edited_until_it_is_disabled(
    tmp_path, celery_app, celery_processes, hourly_every_two_seconds, client
):
    for i in range(5):
        Reading.objects.create(
            water_temperature=24 + i, air_temperature=26, humidity=60, setpoint=25, pid_output=1
        )
    project = on_test_database(tmp_path)
    # No lag: the readings above are only seconds old when the first scheduled export runs.
    worker = celery_processes(project, celery_app.conf.broker_url, "-B", BACKUP_EXPORT_LAG="0").start()

    wait_until(lambda: len(stamps(project.backups)) >= 2, what="two scheduled backups")

    switch_off(hourly_every_two_seconds)
    worker.wait_for("DatabaseScheduler: Schedule changed.", timeout=15)
    time.sleep(5)  # two and a half intervals
    before, after = worker.output().split("DatabaseScheduler: Schedule changed.", 1)
    assert "Sending due task" not in after
    sent = before.count("Sending due task Hourly backup")
    wait_until(lambda: backups_done(project, sent), what="every sent backup to finish")
    assert len(stamps(project.backups)) == sent
    # Scheduled exports are incremental: the first holds the five readings, later ones
    # only what came since (nothing); every snapshot holds all five.
    first, *later = stamps(project.backups)
    verify_backup_set(project.backups, first, readings=5)
    for stamp in later:
        verify_backup_set(project.backups, stamp, readings=5, exported=0)

    # "Run complete backup now" in admin: the same worker writes one more backup.
    client.force_login(User.objects.create_superuser("root", password=None))
    client.post("/admin/backup_tasks/backupschedule/", {"action": "run_complete_backup", "index": 0})
    wait_until(lambda: backups_done(project, sent + 1), what="the admin's backup")
    verify_backup_set(project.backups, stamps(project.backups)[-1], readings=5)

    worker.stop()
    again = project.manage("migrate", "--noinput", check=True)
    assert "No migrations to apply." in again.stdout
    hourly = PeriodicTask.objects.get(pk=hourly_every_two_seconds.pk)
    assert (hourly.enabled, hourly.crontab, hourly.interval.every, hourly.interval.period) == (
        False,
        None,
        2,
        "seconds",
    )
    log = (project.backups / "scheduled_backup.log").read_text()
    assert "Hourly backup started (scheduled for " in log
    assert "Complete backup started (requested in admin by root, task " in log


def test_two_workers_started_with_beat_back_up_each_run_once(
    tmp_path, celery_app, celery_processes, hourly_every_two_seconds
):
    project = on_test_database(tmp_path)
    first = celery_processes(project, celery_app.conf.broker_url, "-B", "-n", "first@%h").start(wait=False)
    second = celery_processes(project, celery_app.conf.broker_url, "-B", "-n", "second@%h").start()
    first.wait_for("ready.")
    time.sleep(6)
    switch_off(hourly_every_two_seconds)
    leader, standby = sorted((first, second), key=lambda w: "Sending due task" not in w.output())
    leader.wait_for("DatabaseScheduler: Schedule changed.", timeout=15)
    sent = leader.output().count("Sending due task Hourly backup")
    wait_until(lambda: backups_done(project, sent), what="every sent backup to finish")
    first.stop()
    second.stop()

    assert sent >= 2
    assert len(stamps(project.backups)) == sent
    assert "already sends the schedule" in standby.output()
    assert "Sending due task" not in standby.output()
    log = (project.backups / "scheduled_backup.log").read_text()
    assert "Run exactly one beat: 'celery -A smartAquarium worker -B' on one machine only." in log


def test_a_worker_killed_mid_snapshot_leaves_no_file_and_the_job_completes_after_restart(
    plant, celery_app, celery_processes
):
    quick = {"CELERY_VISIBILITY_TIMEOUT": "3", "BACKUP_LOCK_TTL": "2"}
    worker = celery_processes(plant, celery_app.conf.broker_url, **quick).start()
    job = tasks.complete_backup.delay()

    wait_until(lambda: temporaries(plant.backups), timeout=30, what="the snapshot to start")
    worker.kill()

    assert finals(plant.backups) == []  # nothing under a final name
    unfinished = [p.name for p in temporaries(plant.backups)]  # the snapshot, maybe its journal
    assert unfinished
    assert all(name.startswith(".db_backup_") and f".{job.id}." in name for name in unfinished)

    restarted = celery_processes(plant, celery_app.conf.broker_url, **quick).start()
    restarted.wait_for("succeeded in", timeout=60)

    assert temporaries(plant.backups) == []
    [stamp] = stamps(plant.backups)
    verify_backup_set(plant.backups, stamp, readings=SIZEABLE)
    log = (plant.backups / "scheduled_backup.log").read_text()
    starts = log.count(f"Complete backup started (requested, task {job.id})")
    assert starts >= 2  # killed, then redelivered (with a 3 s visibility timeout maybe once more)
    assert len(re.findall(r"Complete backup finished in [\d.]+ s: 3 files", log)) == 1
    assert log.count("Complete backup: complete backup skipped, already done for this run") == starts - 2
    assert "Removed 1 unfinished file(s) of an interrupted run: " in log


def test_a_locked_database_is_retried_with_backoff(plant, celery_app, celery_processes):
    # A database in rollback-journal mode with a writer holding it: a
    # reader gets "database is locked", a failure worth a retry.
    holder = sqlite3.connect(plant.db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM readings_reading WHERE id = 1")
    worker = celery_processes(
        plant, celery_app.conf.broker_url, SQLITE_BUSY_TIMEOUT="1", BACKUP_RETRY_DELAY="1"
    ).start()

    tasks.export_csv.delay()
    worker.wait_for("retry: Retry in 1s", timeout=30)
    holder.execute("COMMIT")
    holder.close()
    worker.wait_for("succeeded in", timeout=30)

    log = (plant.backups / "scheduled_backup.log").read_text()
    assert (
        f"WARNING CSV export will be retried in 1 s (retry 1 of 3): The database {plant.db} stayed locked "
        "for 1 s: try again.\n"
    ) in log
    assert log.count("CSV export finished") == 1
    [export] = finals(plant.backups)
    assert export.read_text(encoding="utf-8-sig").count("\n") == SIZEABLE  # header, one reading deleted


def test_time_limits_remove_the_unfinished_files(plant, celery_app, celery_processes):
    # A writer holds the database (in rollback-journal mode, where that stops readers).
    holder = sqlite3.connect(plant.db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    worker = celery_processes(plant, celery_app.conf.broker_url, SQLITE_BUSY_TIMEOUT="1").start()

    # Hard limit: the snapshot waits for the database inside SQLite, where
    # the soft limit cannot reach it; the worker kills the run, then removes its file.
    # (Recording the run gives up after the 1 s busy timeout first, so the limits leave room for it.)
    tasks.snapshot_database.apply_async(soft_time_limit=2.5, time_limit=4)
    worker.wait_for("Hard time limit (4s) exceeded", timeout=30)
    wait_until(lambda: not temporaries(plant.backups), timeout=10, what="the killed run's file to go")
    holder.close()

    # Soft limit: the export stops between two blocks and removes its file itself.
    tasks.export_json.apply_async(soft_time_limit=0.3)
    worker.wait_for("raised expected: TimeLimitReached", timeout=30)

    assert finals(plant.backups) == temporaries(plant.backups) == []
    log = (plant.backups / "scheduled_backup.log").read_text()
    assert re.search(r"Removed 1 unfinished file\(s\) of an interrupted run: \S+/database/\.db_backup_", log)
    assert (
        "ERROR JSON export stopped at its time limit of 0.3 s and removed its unfinished files: "
        "set BACKUP_TIME_LIMIT higher if backups need longer.\n"
    ) in log


def test_a_visibility_timeout_shorter_than_the_time_limit_is_reported(project):
    env = {**project.env, "BACKUP_TIME_LIMIT": "600", "CELERY_VISIBILITY_TIMEOUT": "300"}

    result = project.manage("check", env=env)

    assert result.returncode == 0
    assert (
        "(backup_tasks.W003) CELERY_VISIBILITY_TIMEOUT (300 s) is not longer than BACKUP_TIME_LIMIT (600 s)"
    ) in result.stderr
