"""The guide's BACKUP STATUS report."""

import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.test_exports import add


@pytest.mark.django_db(transaction=True)
def test_status_report_on_known_readings(settings, backup_dir, capsys):
    from django.core.management import call_command
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from backup_tasks.queueing.schedules import install_default_schedules

    install_default_schedules(PeriodicTask, CrontabSchedule, "UTC")  # flushed by earlier tests
    settings.TIME_ZONE = "Europe/Berlin"
    add(20.5, 22.0, 70.0, 25.0, 200, datetime(2025, 1, 11, 12, 0, 0, tzinfo=UTC))
    add(28.75, 29.5, 60.46, 25.0, 10, datetime(2025, 1, 11, 13, 0, 0, tzinfo=UTC))
    add(25.43, 26.2, 60.5, 25.0, 120, datetime(2025, 1, 11, 13, 30, 22, tzinfo=UTC))
    for name in ("database/db_backup_20250111_080000.sqlite3", "csv_exports/readings_20250111_080000.csv"):
        (backup_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (backup_dir / name).write_bytes(b"x")
    (backup_dir / "csv_exports" / "someone_elses.csv").write_bytes(b"x")

    call_command("backup_database", "--status")

    out = capsys.readouterr().out
    guide_part, extra = out.split("\n\nSchedules:\n")
    assert re.fullmatch(
        r"  Daily backup and cleanup: next run \d{4}-\d\d-\d\d \d\d:00:00\n"
        r"  Hourly backup: next run \d{4}-\d\d-\d\d \d\d:00:00\n"
        r"  Weekly backup and statistics: next run \d{4}-\d\d-\d\d \d\d:00:00\n"
        "============================================================\n",
        extra,
    )
    assert guide_part + "\n" + "=" * 60 + "\n" == (
        "============================================================\n"
        "HEAT TREATMENT PLANT CONTROL - BACKUP STATUS\n"
        "============================================================\n"
        "\n"
        f"Backup Location: {backup_dir}\n"
        "\n"
        "Database Backups: 1\n"
        "CSV Exports: 1\n"
        "JSON Exports: 0\n"
        "\n"
        "Database Statistics:\n"
        "  Total Readings: 3\n"
        "  Water Temp Range: 20.50°C - 28.75°C\n"
        "  Water Temp Avg: 24.89°C\n"
        "  Air Temp Range: 22.00°C - 29.50°C\n"
        "  Air Temp Avg: 25.90°C\n"
        "  Humidity Avg: 63.65%\n"
        "\n"
        "Latest Reading:\n"
        "  Water: 25.43°C\n"
        "  Air: 26.20°C\n"
        "  Humidity: 60.50%\n"
        "  Setpoint: 25.00°C\n"
        "  Time: 2025-01-11 14:30:22\n"
        "============================================================\n"
    )


def test_status_counts_thousands_with_separators(project):
    project.manage("simulate_readings", "--days", "1", check=True)
    out = project.manage("backup_database", "--status", check=True).stdout
    assert "  Total Readings: 43,200\n" in out


def test_status_of_an_empty_database_says_so(project):
    result = project.manage("backup_database", "--status", check=True)

    lines = result.stdout.splitlines()
    assert lines[4:13] == [
        f"Backup Location: {project.backups}",
        "",
        "Database Backups: 0",
        "CSV Exports: 0",
        "JSON Exports: 0",
        "",
        "Database Statistics:",
        "  Total Readings: 0",
        "  No readings recorded yet.",
    ]
    # No run yet; the schedules migrate installed, each with its next run.
    assert lines[13:15] == ["", "Schedules:"]
    assert [line.split(":")[0] for line in lines[15:18]] == [
        "  Daily backup and cleanup",
        "  Hourly backup",
        "  Weekly backup and statistics",
    ]
    assert lines[18:] == ["============================================================"]
    assert not project.backups.exists()  # looking creates nothing


def test_status_without_a_database_reports_it_and_fails(project):
    project.db.unlink()

    result = project.manage("backup_database", "--status")

    assert result.returncode == 1
    assert "Database Backups: 0" in result.stdout
    assert f"  Database not available: The database {project.db} does not exist" in result.stdout
    assert result.stderr.startswith(f"Error: The database {project.db} does not exist")
    assert not project.db.exists()


def test_status_starts_without_the_redis_client_or_the_tasks(project):
    # Start-up is as long as the status query at a month of readings: it must not
    # load what only the worker, the beat's locks and the admin actions use, nor
    # the PostgreSQL driver on a SQLite plant.
    code = (
        "import sys, django; django.setup(); "
        "from django.core.management import call_command; "
        "call_command('backup_database', '--status'); "
        "print([m for m in ('redis', 'backup_tasks.tasks', 'backup_tasks.services.restore', 'psycopg') "
        "if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=project.env,
        cwd=project.root,
        capture_output=True,
        text=True,
        check=True,
    )

    report, loaded = result.stdout.rsplit("\n", 2)[:2]
    assert "\nSchedules:\n  Daily backup and cleanup: next run " in report
    assert loaded == "[]"
