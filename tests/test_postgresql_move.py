"""Moving a SQLite plant with a week of readings to PostgreSQL: every reading, user and schedule edit arrives."""

import shutil
import sqlite3
from datetime import UTC, datetime

import pytest

from tests.conftest import FILL_SQL, Project

pytestmark = pytest.mark.slow

WEEK = 302_400  # readings: one every 2 s


def lite_readings(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT id, water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp"
            " FROM readings_reading ORDER BY id"
        ).fetchall()
    return [(*values, datetime.fromisoformat(stamp).replace(tzinfo=UTC)) for *values, stamp in rows]


EDIT_IN_ADMIN = """
from django.contrib.auth.models import User
from django_celery_beat.models import PeriodicTask
User.objects.create_user("olga", "olga@example.com", "correct horse battery", is_staff=True)
PeriodicTask.objects.filter(name="Daily backup and cleanup").update(enabled=False)
"""


def test_a_week_of_readings_users_and_schedules_move_to_postgresql(tmp_path, migrated_template, pg_project):
    lite = Project(tmp_path / "lite")
    lite.root.mkdir()
    shutil.copy(migrated_template, lite.db)
    with sqlite3.connect(lite.db) as db:
        db.execute(FILL_SQL, [WEEK - 1])
        # Values a text round trip could lose: every digit of a double must arrive.
        db.execute(
            "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output,"
            " timestamp) VALUES (0.1 + 0.2, 1.0 / 3, 24.125, -0.001, 37.5, '2025-01-08 00:00:00.999500')"
        )
    lite.manage("shell", "-c", EDIT_IN_ADMIN, check=True)
    lite.manage("backup_database", "--type", "json", check=True)  # a run in the history
    expected = lite_readings(lite.db)
    assert len(expected) == WEEK + 1

    result = pg_project.manage("move_to_postgresql", str(lite.db), check=True, timeout=600)

    assert result.stdout.startswith(f"Moved {WEEK + 1:,} readings and ")
    moved = pg_project.sql(
        "SELECT id, water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp"
        " FROM readings_reading ORDER BY id"
    )
    assert moved == expected
    assert pg_project.sql("SELECT username, email, is_staff FROM auth_user") == [
        ("olga", "olga@example.com", True)
    ]
    login = "from django.contrib.auth.models import User; print(User.objects.get(username='olga').check_password('correct horse battery'))"
    assert pg_project.manage("shell", "-c", login, check=True).stdout.splitlines()[-1] == "True"
    assert pg_project.sql(
        "SELECT enabled FROM django_celery_beat_periodictask WHERE name = 'Daily backup and cleanup'"
    ) == [(False,)]
    assert pg_project.sql("SELECT count(*) FROM django_celery_beat_periodictask") == [(3,)]
    assert pg_project.sql("SELECT kind, rows FROM backup_tasks_backuprun") == [("json", WEEK + 1)]
    # The plant goes on: a new reading gets the next id, and a snapshot holds them all.
    pg_project.sql(
        "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output,"
        " timestamp) VALUES (1, 2, 3, 4, 5, now())"
    )
    assert pg_project.sql("SELECT max(id) FROM readings_reading") == [(WEEK + 2,)]
    pg_project.manage("backup_database", "--type", "db", check=True)
    assert pg_project.sql("SELECT rows FROM backup_tasks_backuprun WHERE kind = 'snapshot'") == [(WEEK + 2,)]

    # Once more is refused: the readings are there already, and nothing changes.
    again = pg_project.manage("move_to_postgresql", str(lite.db))
    assert again.returncode == 1
    assert (
        again.stderr.startswith("CommandError: The PostgreSQL database ")
        or "already holds readings" in again.stderr
    )
    assert pg_project.sql("SELECT count(*) FROM readings_reading") == [(WEEK + 2,)]
