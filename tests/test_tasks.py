"""Each Celery task through Celery's in-process worker, against a real Redis."""

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_tasks import tasks
from backup_tasks.core.errors import NotWritable
from readings.models import Reading

from .conftest import FILL_SQL, backup_files, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def add_readings(count: int, start=datetime(2025, 1, 11, 14, 30, 22, tzinfo=UTC)) -> None:
    Reading.objects.bulk_create(
        Reading(
            water_temperature=24.5,
            air_temperature=26.2,
            humidity=60.5,
            setpoint=25.0,
            pid_output=120,
            timestamp=start + timedelta(seconds=2 * i),
        )
        for i in range(count)
    )


def log_lines(folder: Path) -> list[str]:
    """The activity log without its time stamps."""
    text = (folder / "scheduled_backup.log").read_text(encoding="utf-8")
    return [line[20:] for line in text.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)]


STAMP = r"\d{8}_\d{6}"


def test_complete_backup_writes_the_three_files_and_returns_a_summary(worker, backup_dir):
    add_readings(3)

    result = tasks.complete_backup.delay()
    summary = result.get(timeout=30)

    written = backup_files(backup_dir)
    assert [re.sub(STAMP, "STAMP", name) for name in written] == [
        "csv_exports/readings_STAMP.csv",
        "database/db_backup_STAMP.sqlite3",
        "json_exports/readings_STAMP.json",
    ]
    assert len({re.search(STAMP, name).group() for name in written}) == 1  # one time stamp
    assert summary["job"] == "Complete backup"
    assert summary["task_id"] == result.id
    assert [(f["kind"], f["rows"]) for f in summary["files"]] == [("db", 3), ("csv", 3), ("json", 3)]
    assert [Path(f["path"]).stat().st_size for f in summary["files"]] == [
        f["size_bytes"] for f in summary["files"]
    ]
    assert summary["skipped"] == []
    assert summary["duration_s"] >= 0
    assert json.loads(json.dumps(summary)) == summary
    lines = log_lines(backup_dir)
    assert lines[0] == f"INFO Complete backup started (requested, task {result.id})"
    assert lines[-1].startswith("INFO Complete backup finished in ")
    assert lines[-1].endswith(" s: 3 files (" + lines[-1].split("(")[-1])


def test_snapshot_and_exports_each_write_one_file(worker, backup_dir):
    add_readings(2)

    db = tasks.snapshot_database.delay().get(timeout=30)
    csv = tasks.export_csv.delay().get(timeout=30)
    js = tasks.export_json.delay().get(timeout=30)

    assert [re.sub(STAMP, "STAMP", name) for name in backup_files(backup_dir)] == [
        "csv_exports/readings_STAMP.csv",
        "database/db_backup_STAMP.sqlite3",
        "json_exports/readings_STAMP.json",
    ]
    assert [(s["job"], [f["kind"] for f in s["files"]], s["files"][0]["rows"]) for s in (db, csv, js)] == [
        ("Database backup", ["db"], 2),
        ("CSV export", ["csv"], 2),
        ("JSON export", ["json"], 2),
    ]
    assert Path(csv["files"][0]["path"]).read_text(encoding="utf-8-sig").count("\n") == 3


def make_backups(folder: Path, days_ago: int) -> list[Path]:
    stamp = (datetime.now() - timedelta(days=days_ago)).strftime("%Y%m%d_%H%M%S")
    paths = [
        folder / "database" / f"db_backup_{stamp}.sqlite3",
        folder / "csv_exports" / f"readings_{stamp}.csv",
        folder / "json_exports" / f"readings_{stamp}.json",
    ]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    return paths


def test_cleanup_task_removes_backups_older_than_the_days_given(worker, backup_dir):
    old = make_backups(backup_dir, days_ago=10)
    recent = make_backups(backup_dir, days_ago=2)

    summary = tasks.cleanup_old_backups.delay(days_to_keep=7).get(timeout=30)

    assert sorted(summary["cleanup"]["removed"]) == sorted(str(p) for p in old)
    assert summary["cleanup"]["kept"] == 3
    assert summary["cleanup"]["freed_bytes"] == 300
    assert summary["files"] == []
    assert all(p.exists() for p in recent)
    assert not any(p.exists() for p in old)


def test_daily_job_backs_up_then_removes_backups_older_than_30_days(worker, backup_dir):
    add_readings(1)
    old = make_backups(backup_dir, days_ago=31)

    summary = tasks.daily_backup.delay().get(timeout=30)

    assert [f["kind"] for f in summary["files"]] == ["db", "csv", "json"]
    assert sorted(summary["cleanup"]["removed"]) == sorted(str(p) for p in old)
    assert summary["cleanup"]["days_to_keep"] == 30
    assert len(backup_files(backup_dir)) == 3


def test_weekly_job_backs_up_and_writes_the_status_report_to_the_log(worker, backup_dir):
    add_readings(4)

    summary = tasks.weekly_backup.delay().get(timeout=30)

    assert [f["kind"] for f in summary["files"]] == ["db", "csv", "json"]
    assert summary["statistics"]["counts"] == {"db": 1, "csv": 1, "json": 1}
    assert summary["statistics"]["stats"]["total"] == 4
    log = (backup_dir / "scheduled_backup.log").read_text(encoding="utf-8")
    assert "HEAT TREATMENT PLANT CONTROL - BACKUP STATUS" in log
    assert "  Total Readings: 4\n" in log
    assert "Database Backups: 1\nCSV Exports: 1\nJSON Exports: 1\n" in log


def test_a_permanent_failure_fails_at_once_with_the_clear_message(worker, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    settings.BACKUP_DIR = blocker / "backups"

    result = tasks.snapshot_database.delay()
    with pytest.raises(NotWritable) as failure:
        result.get(timeout=30)

    assert str(failure.value) == (
        f"Cannot create the backup folder {blocker / 'backups' / 'database'} (Not a directory): "
        "set BACKUP_DIR to a folder that can be created."
    )
    assert result.state == "FAILURE"
    assert result.info.args == failure.value.args
    assert result.result is not None
    assert list(tmp_path.iterdir()) == [blocker]


# -- single-flight -------------------------------------------------------------


def fill_readings(count: int) -> None:
    """A sizeable database, so that a backup takes a while."""
    from django.db import connection

    connection.ensure_connection()
    connection.connection.execute(FILL_SQL, [count - 1])  # the sqlite3 connection itself: ? parameters


def test_a_beat_tick_and_an_admin_click_at_once_give_one_backup(worker, backup_dir):
    fill_readings(150_000)

    tick = tasks.complete_backup.apply_async(
        headers={"periodic_task_name": "Hourly backup", tasks.SLOT_HEADER: "2026-06-01 14:00:00+00:00"}
    )
    click = tasks.complete_backup.apply_async(headers={tasks.REQUESTED_BY_HEADER: "alice"})
    summaries = [tick.get(timeout=60), click.get(timeout=60)]

    assert len(backup_files(backup_dir)) == 3
    ran, skipped = sorted(summaries, key=lambda s: len(s["skipped"]))
    assert [f["rows"] for f in ran["files"]] == [150_000] * 3
    assert ran["skipped"] == []
    assert skipped["files"] == []
    assert skipped["skipped"] == [
        {"operation": "complete_backup", "reason": f"already running (task {ran['task_id']})"}
    ]
    assert f"complete backup skipped, already running (task {ran['task_id']})" in "\n".join(
        log_lines(backup_dir)
    )


def test_two_beats_sending_the_same_slot_give_one_backup(worker, backup_dir):
    headers = {"periodic_task_name": "Hourly backup", tasks.SLOT_HEADER: "2026-06-01 14:00:00+00:00"}

    first = tasks.complete_backup.apply_async(headers=headers).get(timeout=30)
    second = tasks.complete_backup.apply_async(headers=headers).get(timeout=30)

    assert len(first["files"]) == 3
    assert second["files"] == []
    [skip] = second["skipped"]
    assert skip["reason"].startswith(f"already done for this run (task {first['task_id']} at ")
    assert len(backup_files(backup_dir)) == 3
    assert "INFO Hourly backup finished in " in log_lines(backup_dir)[-1]
    assert log_lines(backup_dir)[-1].endswith("s: skipped complete backup")


def test_the_daily_job_at_two_shares_the_hourly_jobs_backup_but_still_cleans_up(worker, backup_dir):
    old = make_backups(backup_dir, days_ago=40)
    slot = {tasks.SLOT_HEADER: "2026-06-01 02:00:00+00:00"}

    hourly = tasks.complete_backup.apply_async(headers={"periodic_task_name": "Hourly backup", **slot})
    hourly.get(timeout=30)
    daily = tasks.daily_backup.apply_async(headers={"periodic_task_name": "Daily backup and cleanup", **slot})
    summary = daily.get(timeout=30)

    assert summary["files"] == []
    assert [s["operation"] for s in summary["skipped"]] == ["complete_backup"]
    assert sorted(summary["cleanup"]["removed"]) == sorted(str(p) for p in old)
    assert len(backup_files(backup_dir)) == 3


def wait_for_log(folder: Path, text: str) -> list[str]:
    log = folder / "scheduled_backup.log"
    wait_until(lambda: log.exists() and text in log.read_text(), what=f"{text!r} in scheduled_backup.log")
    return log_lines(folder)


def test_a_redelivered_task_does_not_back_up_again(worker, backup_dir):
    first = tasks.complete_backup.apply_async(task_id="redelivered-once").get(timeout=30)
    # The same message again, as Redis redelivers it: same task id.
    tasks.complete_backup.apply_async(task_id="redelivered-once")

    lines = wait_for_log(backup_dir, "Complete backup: complete backup skipped")
    assert len(first["files"]) == 3
    assert lines[-2].startswith(
        "INFO Complete backup: complete backup skipped, already done for this run (task redelivered-once at "
    )
    assert sum("Complete backup started" in line for line in lines) == 2
    assert len(backup_files(backup_dir)) == 3


def runs() -> list[tuple[str, str, str]]:
    from backup_tasks.models import BackupRun

    return list(BackupRun.objects.order_by("id").values_list("kind", "status", "trigger"))


def test_the_task_door_records_runs(worker, backup_dir):
    add_readings(2)
    tasks.snapshot_database.delay().get(timeout=30)
    assert runs() == [("snapshot", "succeeded", "task: Database backup")]


def test_each_run_of_a_queued_job_names_its_task(worker, backup_dir):
    # The dashboard follows the job it queued by this id, not by who started what when.
    from backup_tasks.models import BackupRun

    add_readings(2)
    first = tasks.complete_backup.delay()
    first.get(timeout=30)
    second = tasks.snapshot_database.delay()
    second.get(timeout=30)

    named = [(run.kind, run.task_id) for run in BackupRun.objects.order_by("started_at", "id")]
    assert named == [("snapshot", first.id), ("csv", first.id), ("json", first.id), ("snapshot", second.id)]


def test_the_daily_job_still_cleans_up_when_its_backup_fails(worker, backup_dir, settings):
    old = backup_dir / "csv_exports" / "readings_20000101_000000.csv"
    old.parent.mkdir(parents=True)
    old.write_text("old")
    (backup_dir / "database").write_text("a file where the snapshot folder should be")

    result = tasks.daily_backup.delay()
    with pytest.raises(NotWritable):
        result.get(timeout=30)

    assert not old.exists()
    assert [(kind, status) for kind, status, _ in runs()] == [
        ("snapshot", "failed"),
        ("cleanup", "succeeded"),
    ]


def test_the_weekly_job_runs_a_restore_drill(worker, backup_dir):
    add_readings(5)
    summary = tasks.weekly_backup.delay().get(timeout=60)
    assert summary["drill"]["rows"] == 5
    assert [kind for kind, _, _ in runs()] == ["snapshot", "csv", "json", "drill"]
    assert "Backup statistics:" in (backup_dir / "scheduled_backup.log").read_text()


def test_export_tasks_take_a_window(worker, backup_dir, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    add_readings(10)  # 2025-01-11 14:30:22 UTC = 15:30:22 in Berlin, every 2 s

    summary = tasks.export_csv.delay(since="2025-01-11T15:30:26", until="2025-01-11T15:30:30").get(timeout=30)

    assert summary["files"][0]["rows"] == 2


def test_a_scheduled_export_continues_where_the_last_one_ended(worker, backup_dir, settings):
    from backup_tasks.models import BackupRun

    settings.BACKUP_EXPORT_LAG = 0
    add_readings(4)
    slot = {"backup_slot": "2025-01-11T15:00:00+00:00", "periodic_task_name": "Hourly backup"}
    tasks.export_csv.apply_async(headers=slot).get(timeout=30)
    first_end = datetime.fromisoformat(BackupRun.objects.get(kind="csv").details["window_end"])
    add_readings(3, start=first_end)  # at +0, +2 and +4 s
    while datetime.now(UTC) < first_end + timedelta(seconds=5.1):
        time.sleep(0.1)
    slot = {"backup_slot": "2025-01-11T16:00:00+00:00", "periodic_task_name": "Hourly backup"}
    tasks.export_csv.apply_async(headers=slot).get(timeout=30)

    exports = BackupRun.objects.filter(kind="csv").order_by("id")
    assert [run.rows for run in exports] == [4, 3]
    assert [run.trigger for run in exports] == [
        "schedule: Hourly backup (2025-01-11T15:00:00+00:00)",
        "schedule: Hourly backup (2025-01-11T16:00:00+00:00)",
    ]


def test_a_restore_waits_for_no_backup_task(worker, backup_dir):
    from backup_tasks.queueing.broker import client
    from backup_tasks.queueing.flight import running
    from backup_tasks.services import backup as services
    from backup_tasks.services import restore

    broker_client = client()
    add_readings(3)
    snapshot = services.snapshot_database()
    broker_client.set("smartaquarium:lock:complete_backup", "task-1234", px=30_000)

    with pytest.raises(Exception, match=r"A backup task is running \(complete backup, task task-1234\)"):
        restore.restore_snapshot(path=Path(snapshot.path), running_tasks=running)
    broker_client.delete("smartaquarium:lock:complete_backup")
    assert restore.restore_snapshot(path=Path(snapshot.path), running_tasks=running).readings_after == 3


def test_exports_report_their_progress_as_task_state(celery_results, backup_dir):
    import uuid

    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, [119_999])  # 120,000 readings: enough to report progress
    task_id = str(uuid.uuid4())
    # The Redis result backend publishes every state it stores: listen, then run.
    listener = redis.Redis.from_url(celery_results.conf.result_backend).pubsub()
    listener.subscribe(f"celery-task-meta-{task_id}")
    listener.get_message(timeout=1)  # the subscription's confirmation

    summary = tasks.export_csv.apply(task_id=task_id).get()  # run here; the states go to Redis

    states = []
    while message := listener.get_message(timeout=1):
        states.append(json.loads(message["data"]))
    progress = [state["result"] for state in states if state["status"] == "PROGRESS"]
    assert summary["files"][0]["rows"] == 120_000
    assert progress[0] == {
        "operation": "CSV export",
        "done": 0,
        "total": 120_000,
        "rows_per_s": 0,
        "seconds_left": None,
    }
    assert progress[-1]["done"] == progress[-1]["total"] == 120_000
