"""Long exports show their progress on stderr: a bar on a terminal, plain lines otherwise."""

import io
import os
import pty
import re
import sqlite3
import subprocess

import pytest
from django.core.management.base import OutputWrapper
from django.db import connection

from backup_tasks.management.commands.backup_database import ProgressReport
from backup_tasks.services import backup as services
from readings.models import Reading

from .conftest import FILL_SQL


def test_plain_progress_lines_at_each_quarter_when_not_on_a_terminal(project):
    project.manage("simulate_readings", "--days", str(300_000 * 2 / 86_400), check=True)

    result = project.manage("backup_database", "--type", "csv", check=True)

    assert re.fullmatch(
        r"Readings exported to CSV: backups/csv_exports/readings_\d{8}_\d{6}\.csv\n", result.stdout
    )
    lines = result.stderr.splitlines()
    assert [line.split(" ")[0] for line in lines] == ["25%", "50%", "75%", "100%"]
    first = re.fullmatch(
        r"25% CSV export: ([\d,]+) of 300,000 readings, [\d,]+/s, about [\d,]+ s left", lines[0]
    )
    assert first, lines[0]
    assert 75_000 <= int(first.group(1).replace(",", "")) < 150_000
    assert re.fullmatch(r"100% CSV export: 300,000 of 300,000 readings, [\d,]+/s, done", lines[3])


def test_a_bar_on_a_terminal(project):
    project.manage("simulate_readings", "--days", str(300_000 * 2 / 86_400), check=True)
    leader, follower = pty.openpty()
    try:
        result = project.manage(
            "backup_database", "--type", "json", stderr=follower, capture_output=False, stdout=subprocess.PIPE
        )
        os.close(follower)
        screen = b""
        while True:
            try:
                block = os.read(leader, 65536)
            except OSError:
                break
            if not block:
                break
            screen += block
    finally:
        os.close(leader)

    assert result.returncode == 0
    text = screen.decode()
    assert text.startswith("\r[")
    assert re.search(
        r"\r\[#{30}\] 100% JSON export: 300,000 of 300,000 readings, [\d,]+/s, done\x1b\[K\r?\n$", text
    )
    assert result.stdout.startswith("Readings exported to JSON: ")


def test_small_exports_show_no_progress(project):
    project.manage("simulate_readings", "--days", "1", check=True)
    result = project.manage("backup_database", "--type", "csv", check=True)
    assert result.stderr == ""


@pytest.mark.django_db(transaction=True)
def test_progress_never_counts_more_readings_than_the_export_holds(backup_dir):
    connection.ensure_connection()
    connection.connection.execute(FILL_SQL, [100_000 - 1])
    stderr = io.StringIO()
    report = ProgressReport(OutputWrapper(stderr))
    sensor = sqlite3.connect(connection.settings_dict["NAME"])
    reported = []

    def progress(label: str, done: int, total: int, elapsed: float) -> None:
        reported.append((done, total))
        if done == 0:
            # The sensor loop commits a reading just as the export begins.
            with sensor:
                sensor.execute(
                    "INSERT INTO readings_reading (water_temperature, air_temperature, humidity,"
                    " setpoint, pid_output, timestamp) VALUES (25, 24, 60, 25, 90, datetime('now'))"
                )
        report(label, done, total, elapsed)

    try:
        result = services.export_csv(progress=progress)
    finally:
        sensor.close()

    assert reported[-1] == (100_000, 100_000)
    assert all(done <= total for done, total in reported)
    lines = stderr.getvalue().splitlines()
    assert re.fullmatch(r"100% CSV export: 100,000 of 100,000 readings, [\d,]+/s, done", lines[-1]), lines
    assert result.rows == 100_000
    assert Reading.objects.count() == 100_001
