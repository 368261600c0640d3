"""Backups of a database of more than 200 MB while the sensor loop writes: real processes only.

The writer closes its connection after each insert, as Django does at the end
of every request: each close may find itself the last connection, and then
checkpoints and removes the WAL. Should a backup process have lost its SQLite
locks (see test_locks.py), that close pulls the WAL from under its reads:
torn snapshots, run records lost, writes undone.
"""

import csv
import os
import re
import shutil
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_tasks import tasks

from .conftest import LARGE, Project, SensorWriter, wait_until

pytestmark = pytest.mark.slow


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def runs(project: Project) -> list[tuple]:
    return query(project.db, "SELECT kind, status, error FROM backup_tasks_backuprun ORDER BY id")


def integrity(path: Path) -> list[str]:
    return [row[0] for row in query(path, "PRAGMA integrity_check(5)")]


def test_snapshots_while_the_writer_closes_its_connection_after_each_insert(large):
    # A one-second busy timeout: an insert made to wait any longer fails and is counted.
    writer = SensorWriter(large, close=True, SQLITE_BUSY_TIMEOUT="1")
    try:
        writer.wait_until_writing()
        results = [large.manage("backup_database", "--type", "db") for _ in range(3)]
    finally:
        report = writer.stop()

    assert [(r.returncode, r.stderr) for r in results] == [(0, "")] * 3
    assert runs(large) == [("snapshot", "succeeded", "")] * 3
    assert report["failed"] == 0, report["errors"]
    assert report["written"] > 50
    assert integrity(large.db) == ["ok"]
    snapshots = sorted((large.backups / "database").glob("*.sqlite3"))
    assert len(snapshots) == 3
    counts = [query(s, "SELECT COUNT(*) FROM readings_reading")[0][0] for s in snapshots]
    # Each snapshot holds every reading there was, and what the writer added by then.
    assert LARGE < counts[0] < counts[1] < counts[2] <= LARGE + report["written"]
    shutil.rmtree(large.backups / "database")  # 650 MB of passed snapshots


SCHEDULE_EVERY_SIX_SECONDS = """
from datetime import UTC, datetime
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from backup_tasks.models import BackupRun

every = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.SECONDS)
for task in PeriodicTask.objects.exclude(name__startswith="celery."):
    task.enabled = task.name == "Hourly backup"
    task.crontab, task.interval = (None, every) if task.enabled else (task.crontab, task.interval)
    task.save()
# The exports of the hour before, as a running plant has them: the scheduled
# exports continue where these ended.
end = datetime.fromisoformat("{end}")
for kind in ("csv", "json"):
    BackupRun.objects.create(
        kind=kind, status="succeeded", trigger="the hour before", finished_at=end,
        details={{"incremental": True, "window_start": None, "window_end": end.isoformat()}},
    )
"""

SWITCH_OFF = """
from django_celery_beat.models import PeriodicTask
task = PeriodicTask.objects.get(name="Hourly backup")
task.enabled = False
task.save()
"""


def test_the_worker_with_beat_backs_up_and_exports_incrementally_while_the_writer_closes(
    large, celery_app, celery_processes
):
    seeded_end = datetime.now().astimezone().replace(microsecond=0)
    large.manage("shell", "-c", SCHEDULE_EVERY_SIX_SECONDS.format(end=seeded_end.isoformat()), check=True)
    writer = SensorWriter(large, close=True, SQLITE_BUSY_TIMEOUT="1")
    try:
        writer.wait_until_writing()
        worker = celery_processes(
            large, celery_app.conf.broker_url, "-B", BACKUP_EXPORT_LAG="1", BACKUP_RETRY_DELAY="1"
        ).start()
        wait_until(lambda: worker.output().count("Sending due task Hourly backup") >= 9, timeout=90)
        large.manage("shell", "-c", SWITCH_OFF, check=True)
        worker.wait_for("DatabaseScheduler: Schedule changed.", timeout=15)
        sent = worker.output().count("Sending due task Hourly backup")
        ended = ("succeeded in", "raised ", "retry: Retry in")
        wait_until(
            lambda: sum(worker.output().count(word) for word in ended) >= sent,
            timeout=120,
            what="every sent backup to end",
        )
        worker.stop()
    finally:
        report = writer.stop()

    assert report["failed"] == 0, report["errors"]
    assert integrity(large.db) == ["ok"]
    text = (large.backups / "scheduled_backup.log").read_text()
    assert " ERROR " not in text, text
    assert " WARNING " not in text, text
    assert text.count("Hourly backup finished in") == sent
    assert len(re.findall(r"Hourly backup finished in [\d.]+ s: 3 files", text)) == sent
    # Every scheduled run is recorded with its final status.
    recorded = [(kind, status) for kind, status, _ in runs(large)][2:]  # after the two seeded exports
    assert sorted(recorded) == sorted(
        [("snapshot", "succeeded"), ("csv", "succeeded"), ("json", "succeeded")] * sent
    )
    assert len(list((large.backups / "database").glob("*.sqlite3"))) == sent
    # Each export holds exactly the readings of its window, each window starts
    # where the one before ended: every reading once, the old ones never again.
    for kind in ("csv", "json"):
        windows = query(
            large.db,
            "SELECT json_extract(details, '$.window_start'), json_extract(details, '$.window_end'), rows, file"
            " FROM backup_tasks_backuprun WHERE kind = ? AND trigger != 'the hour before' ORDER BY id",
            (kind,),
        )
        assert windows[0][0] == seeded_end.isoformat()
        assert [start for start, *_ in windows[1:]] == [end for _, end, *_ in windows[:-1]]
        for start, end, rows, file in windows:
            assert rows == readings_between(large.db, start, end)
            assert lines_in(Path(file), kind) == rows
        assert sum(rows for _, _, rows, _ in windows) == report["written"] - readings_after(
            large.db, windows[-1][1]
        )
    shutil.rmtree(large.backups / "database")  # gigabytes of passed snapshots


def utc_text(iso: str) -> str:
    """An ISO time with offset as Django stores it in SQLite: naive UTC."""
    return str(datetime.fromisoformat(iso).astimezone(UTC).replace(tzinfo=None))


def readings_between(db: Path, start: str, end: str) -> int:
    return query(
        db,
        "SELECT COUNT(*) FROM readings_reading WHERE timestamp >= ? AND timestamp < ?",
        (utc_text(start), utc_text(end)),
    )[0][0]


def readings_after(db: Path, end: str) -> int:
    return query(db, "SELECT COUNT(*) FROM readings_reading WHERE timestamp >= ?", (utc_text(end),))[0][0]


def lines_in(path: Path, kind: str) -> int:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if kind == "csv":
            return sum(1 for _ in csv.reader(handle)) - 1  # the header
        return sum(1 for line in handle if line.startswith("{"))


def test_a_killed_pool_child_is_taken_over_at_once_and_its_run_marked_failed(
    large, celery_app, celery_processes
):
    worker = celery_processes(large, celery_app.conf.broker_url).start()
    job = tasks.snapshot_database.delay()

    wait_until(lambda: list((large.backups / "database").glob(".db_backup_*")), what="the snapshot to start")
    [killed] = Path(f"/proc/{worker.process.pid}/task/{worker.process.pid}/children").read_text().split()
    os.kill(int(killed), signal.SIGKILL)  # the pool child alone: its worker lives on
    worker.wait_for("succeeded in", timeout=30)

    log = (large.backups / "scheduled_backup.log").read_text()
    assert (
        f"snapshot database: the earlier delivery of task {job.id} ended with its process (pid {killed} on "
    ) in log
    [(_, failed_status, failed_error), (_, status, _)] = runs(large)
    assert failed_status == "failed"
    assert failed_error.startswith(f"Abandoned: its process (pid {killed} on ")
    assert status == "succeeded"
    assert len(list((large.backups / "database").glob("*.sqlite3"))) == 1
    assert list((large.backups / "database").glob(".*")) == []
