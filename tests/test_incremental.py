"""Scheduled exports continue where the last one ended: no gap, no duplicate."""

import csv
import io
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backup_tasks.core.errors import BackupError
from backup_tasks.models import BackupRun
from backup_tasks.services import backup as services
from readings.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)


def add(count: int, start) -> None:
    first = Reading.objects.count()  # every reading's PID output is unique: rows tell them apart
    Reading.objects.bulk_create(
        Reading(
            water_temperature=20 + i / 100,
            air_temperature=21.0,
            humidity=50.0,
            setpoint=25.0,
            pid_output=first + i,
            timestamp=start + timedelta(milliseconds=10 * i),
        )
        for i in range(count)
    )


def exported_rows(path: str) -> list[tuple]:
    text = Path(path).read_bytes().decode("utf-8-sig")
    return [tuple(row) for row in csv.reader(io.StringIO(text))][1:]


def test_incremental_exports_across_a_failed_run_have_no_gap_and_no_duplicate(settings, backup_dir):
    settings.BACKUP_EXPORT_LAG = 0
    add(300, timezone.now() - timedelta(minutes=10))
    first = services.export_csv(incremental=True)
    first_end = datetime.fromisoformat(BackupRun.objects.get().details["window_end"])
    add(200, first_end)  # from the very end of the first window on

    blocked = backup_dir / "csv_exports"
    blocked.rename(backup_dir / "aside")
    blocked.write_text("not a folder")
    with pytest.raises(BackupError):
        services.export_csv(incremental=True)
    blocked.unlink()
    (backup_dir / "aside").rename(blocked)
    add(100, first_end + timedelta(seconds=3))
    while timezone.now() < first_end + timedelta(seconds=4.1):  # the third window must reach past them
        time.sleep(0.1)

    third = services.export_csv(incremental=True)

    rows = exported_rows(first.path) + exported_rows(third.path)
    assert (first.rows, third.rows) == (300, 300)
    assert len(rows) == len(set(rows)) == Reading.objects.count() == 600
    windows = [
        (run.details["window_start"], run.details["window_end"])
        for run in BackupRun.objects.filter(kind="csv", status="succeeded").order_by("id")
    ]
    assert windows[0][0] is None
    assert windows[1][0] == windows[0][1]  # the second window starts where the first ended
    assert BackupRun.objects.filter(kind="csv", status="failed").count() == 1


def test_a_manual_export_takes_everything_and_leaves_the_chain_alone(settings, backup_dir):
    settings.BACKUP_EXPORT_LAG = 0
    add(50, timezone.now() - timedelta(minutes=5))
    scheduled = services.export_csv(incremental=True)
    add(20, timezone.now())  # 0.2 s of readings
    time.sleep(1.3)  # a window ends at a whole second: this one ends after all of them

    manual = services.export_csv()
    following = services.export_csv(incremental=True)

    assert (scheduled.rows, manual.rows, following.rows) == (50, 70, 20)


def test_readings_younger_than_the_lag_wait_for_the_next_export(settings, backup_dir):
    settings.BACKUP_EXPORT_LAG = 60
    add(10, timezone.now() - timedelta(minutes=5))
    add(10, timezone.now() - timedelta(seconds=20))

    assert services.export_json(incremental=True).rows == 10
