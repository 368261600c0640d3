"""Checking a snapshot, and a drill's restored copy, reads the readings' count and newest
time from the index without walking every reading.

Counted in SQLite's virtual-machine steps, not seconds: each statement the
check runs is run again under the progress handler.
"""

import sqlite3
from pathlib import Path

import pytest
from django.db import connection

from backup_tasks.services import backup as services
from backup_tasks.services import restore

pytestmark = pytest.mark.django_db(transaction=True)

READINGS = 200_000
FILL_SQL = """
INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp)
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < %s)
SELECT 24.5, 26.0, 60.0, 25.0, 120, datetime('2025-01-01', '+' || (2 * i) || ' seconds') FROM seq
"""
STEPS_PER_CALL = 10


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every statement run on any SQLite connection opened during the test."""
    seen: list[str] = []
    connect = sqlite3.connect

    def tracing_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", tracing_connect)
    return seen


def steps(path: Path, sql: str) -> int:
    counted = [0]

    def count() -> int:
        counted[0] += STEPS_PER_CALL
        return 0

    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        db.set_progress_handler(count, STEPS_PER_CALL)
        db.execute(sql).fetchall()
    finally:
        db.close()
    return counted[0]


def reading_queries(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.startswith("SELECT") and "readings_reading" in sql]


@pytest.fixture
def readings():
    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, [READINGS - 1])


def test_a_snapshot_and_a_drill_check_their_copy_without_walking_every_reading(
    backup_dir, readings, statements
):
    result = services.snapshot_database()
    checks = reading_queries(statements)
    statements.clear()
    drill = restore.restore_drill()
    drill_checks = reading_queries(statements)

    assert result.rows == READINGS
    assert drill.rows == READINGS
    assert checks
    assert drill_checks
    for sql in checks + drill_checks:
        assert steps(Path(result.path), sql) < READINGS, sql
