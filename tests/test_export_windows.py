"""An export with a window costs SQLite no more work than the full export of the same readings.

Counted in SQLite's virtual-machine steps (its progress handler), never in
seconds: the same work on any machine, however busy.
"""

import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from backup_tasks.engines.sqlite import SQLiteEngine
from backup_tasks.services import backup as services

pytestmark = pytest.mark.django_db(transaction=True)

# Nine days, one reading every 2 s, across Berlin's spring change (30 March)
# and Adelaide's autumn one (6 April); the plant is off for 7 hours on 1 April.
FIRST = datetime(2025, 3, 29, tzinfo=UTC)
LAST = datetime(2025, 4, 6, 23, 59, 58, tzinfo=UTC)
OFF = (datetime(2025, 4, 1, 10, tzinfo=UTC), datetime(2025, 4, 1, 17, tzinfo=UTC))
EVERY_2S_FOR_9_DAYS = 9 * 43_200
FILL_SQL = """
INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp)
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
SELECT 24.5 + (i % 100) / 100.0, 26.0, 60.0, 25.0, i % 256, datetime(?, '+' || (2 * i) || ' seconds')
FROM seq WHERE datetime(?, '+' || (2 * i) || ' seconds') NOT BETWEEN ? AND ?
"""
STEPS_PER_CALL = 10


def text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture
def nine_days():
    with connection.cursor() as cursor:
        start = text(FIRST)
        cursor.execute(
            FILL_SQL,
            [EVERY_2S_FOR_9_DAYS - 1, start, start, text(OFF[0]), text(OFF[1] - timedelta(seconds=1))],
        )
    return EVERY_2S_FOR_9_DAYS - 7 * 1800


@pytest.fixture
def vm_steps(monkeypatch):
    """Count the virtual-machine steps of every connection the SQLite engine opens."""
    counted = [0]
    connect = SQLiteEngine.connect

    def counting_connect(self) -> sqlite3.Connection:
        db = connect(self)

        def step() -> int:
            counted[0] += STEPS_PER_CALL
            return 0

        db.set_progress_handler(step, STEPS_PER_CALL)
        return db

    monkeypatch.setattr(SQLiteEngine, "connect", counting_connect)

    def measure(export, **window) -> tuple[int, int]:
        counted[0] = 0
        rows = export(**window).rows
        return rows, counted[0]

    return measure


WINDOWS = {
    "since the second reading": ({"start": FIRST + timedelta(seconds=2)}, 1),
    "until the last hour": ({"end": LAST - timedelta(minutes=59, seconds=58)}, 1800),
    "an hour in from each end": (
        {"start": FIRST + timedelta(hours=1), "end": LAST - timedelta(minutes=59, seconds=58)},
        3600,
    ),
    "wider than the readings": ({"start": FIRST - timedelta(days=30), "end": LAST + timedelta(days=30)}, 0),
}


def assert_no_dearer(window: str, rows: int, steps: int, full_steps: int) -> None:
    # A window's end is one more comparison per reading where the full export
    # has no end to check (a zone off UTC by part of an hour exports each run
    # of one offset in one query); nothing more may grow with the window.
    assert steps <= full_steps + rows, f"{window}: {steps:,} steps, the full export {full_steps:,}"


@pytest.mark.slow
@pytest.mark.parametrize("zone", ["Europe/Berlin", "Australia/Adelaide"])
def test_a_window_of_nearly_every_reading_costs_no_more_than_the_full_export(
    settings, backup_dir, nine_days, vm_steps, zone
):
    # Berlin is whole hours off UTC (one query per hour), Adelaide half an hour (one per offset).
    settings.TIME_ZONE = zone
    full_rows, full_steps = vm_steps(services.export_csv)
    assert full_rows == nine_days

    for window, (bounds, left_out) in WINDOWS.items():
        rows, steps = vm_steps(services.export_csv, **bounds)

        assert rows == nine_days - left_out, window
        assert_no_dearer(window, rows, steps, full_steps)


@pytest.mark.slow
def test_a_json_export_until_an_hour_ago_costs_no_more_than_the_full_one(
    settings, backup_dir, nine_days, vm_steps
):
    settings.TIME_ZONE = "Europe/Berlin"
    bounds, left_out = WINDOWS["until the last hour"]

    full_rows, full_steps = vm_steps(services.export_json)
    rows, steps = vm_steps(services.export_json, **bounds)

    assert (full_rows, rows) == (nine_days, nine_days - left_out)
    assert_no_dearer("until the last hour", rows, steps, full_steps)


def test_every_query_of_an_export_reads_one_range_of_the_timestamp_index(
    settings, backup_dir, nine_days, monkeypatch
):
    # Its first and last reading included: MIN() and MAX() in one query walk the whole index.
    settings.TIME_ZONE = "Europe/Berlin"
    statements = []
    connect = SQLiteEngine.connect

    def tracing_connect(self) -> sqlite3.Connection:
        db = connect(self)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(SQLiteEngine, "connect", tracing_connect)
    services.export_csv()
    services.export_csv(start=FIRST + timedelta(hours=1), end=LAST - timedelta(hours=1))

    queries = [sql for sql in statements if sql.startswith("SELECT")]
    assert len(queries) > 2 * 24 * 8
    with connection.cursor() as cursor:
        for sql in queries:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = " / ".join(row[-1] for row in cursor.fetchall())
            assert re.match(
                r"SEARCH readings_reading USING (COVERING )?INDEX readings_reading_timestamp_", plan
            ), f"{sql}\n{plan}"
            lone_edge = re.fullmatch(r"SELECT (MIN|MAX)\(timestamp\) FROM readings_reading( WHERE .*)?", sql)
            assert lone_edge or "(timestamp>? AND timestamp<?)" in plan, f"{sql}\n{plan}"
