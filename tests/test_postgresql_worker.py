"""The real `celery -A smartAquarium worker -B` on PostgreSQL: a scheduled complete backup, recorded,
verified and in the backup history."""

import json
import os
import subprocess

from tests.conftest import PG_FILL_SQL, wait_until

EVERY_TWO_SECONDS = """
from django_celery_beat.models import IntervalSchedule, PeriodicTask
for task in PeriodicTask.objects.all():
    if task.name == "Hourly backup":
        task.crontab = None
        task.interval = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    else:
        task.enabled = False
    task.save()
"""


def test_worker_with_beat_backs_up_postgresql(pg_project, celery_app, celery_processes):
    project = pg_project
    project.sql(PG_FILL_SQL, [499])
    project.manage("shell", "-c", EVERY_TWO_SECONDS, check=True)
    key = project.root / "backup-repository.key"
    worker = celery_processes(
        project,
        celery_app.conf.broker_url,
        "-B",
        BACKUP_EXPORT_LAG="0",
        BACKUP_REPOSITORY="",  # the history on, with restic (the test command installs it)
        BACKUP_REPOSITORY_PASSWORD_FILE=str(key),
    ).start()

    def one_backup_done() -> bool:
        """A complete backup recorded: its JSON export, the last of the three, succeeded."""
        return project.sql(
            "SELECT count(*) FROM backup_tasks_backuprun WHERE kind = 'json' AND status = 'succeeded'"
        ) != [(0,)]

    wait_until(one_backup_done, timeout=60, what="a scheduled complete backup")
    worker.stop()

    [dump, *_] = sorted(project.backups.glob("database/db_backup_*.dump"))
    stamp = dump.name.removeprefix("db_backup_").removesuffix(".dump")
    assert (project.backups / "csv_exports" / f"readings_{stamp}.csv").is_file()
    assert (project.backups / "json_exports" / f"readings_{stamp}.json").is_file()
    recorded = project.sql(
        "SELECT kind, status, rows FROM backup_tasks_backuprun WHERE file LIKE %s ORDER BY id", [f"%{stamp}%"]
    )
    assert recorded == [("snapshot", "succeeded", 500), ("csv", "succeeded", 500), ("json", "succeeded", 500)]
    verified = project.manage("backup_database", "--verify", str(dump), check=True)
    assert (
        verified.stdout.splitlines()[0]
        == f"OK       backups/database/{dump.name}: integrity ok, 500 readings"
    )
    assert "Hourly backup started (scheduled for " in (project.backups / "scheduled_backup.log").read_text()

    # The dump went into the history, as its run says.
    [(details,)] = project.sql(
        "SELECT details FROM backup_tasks_backuprun WHERE kind = 'snapshot' AND file LIKE %s", [f"%{stamp}%"]
    )
    restic = dict(
        os.environ, RESTIC_REPOSITORY=str(project.backups / "repository"), RESTIC_PASSWORD_FILE=str(key)
    )
    points = json.loads(
        subprocess.run(
            ["restic", "snapshots", "--json", "--tag", "kind:db"], env=restic, capture_output=True, check=True
        ).stdout
    )
    stored = {p["short_id"]: p["paths"] for p in points}
    assert details["history"]["snapshot_id"] in stored
