"""The same readings give the same CSV and JSON bytes on SQLite and on PostgreSQL."""

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import PgProject, Project

HALF_WAY = [
    24.125,
    2.675,
    0.125,
    -0.125,
    -0.001,
    -0.005,
    24.005,
    1.005,
    123456.785,
    0.1 + 0.2,
    1 / 3,
    0.0,
    -0.0,
]
PIDS = [120.0, 37.5, 0.1 + 0.2, 1e-07, 100.0, 0.0, 1 / 3]


def known_readings() -> list[tuple]:
    """Readings across both of Berlin's DST changes of 2025, with half-way values and odd PID outputs."""
    rows = []
    for day in (datetime(2025, 3, 29, 22, tzinfo=UTC), datetime(2025, 10, 25, 22, tzinfo=UTC)):
        for i in range(600):  # every 37.25 s for about six hours, through the change at 01:00 UTC
            moment = day + timedelta(seconds=37.25 * i)
            if i % 50 == 7:
                moment += timedelta(microseconds=999_500)  # never rounded up into the next second
            value = HALF_WAY[i % len(HALF_WAY)]
            rows.append(
                (value, HALF_WAY[(i + 3) % len(HALF_WAY)], 55.555, 25.0 + value, PIDS[i % len(PIDS)], moment)
            )
    return rows


def fill_sqlite(path: Path, rows: list[tuple]) -> None:
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output,"
            " timestamp) VALUES (?, ?, ?, ?, ?, ?)",
            [(*values, str(moment.astimezone(UTC).replace(tzinfo=None))) for *values, moment in rows],
        )


def fill_postgres(project: PgProject, rows: list[tuple]) -> None:
    import psycopg

    with psycopg.connect(project.url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output,"
            " timestamp) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def exported(project: Project, kind: str, *window: str) -> bytes:
    folder = project.backups / {"csv": "csv_exports", "json": "json_exports"}[kind]
    shutil.rmtree(folder, ignore_errors=True)
    project.manage("backup_database", "--type", kind, *window, check=True)
    [path] = sorted(folder.glob(f"*.{kind}"))
    return path.read_bytes()


@pytest.mark.parametrize("window", [(), ("--since", "2025-03-30 01:30", "--until", "2025-10-26 02:30")])
def test_csv_and_json_are_byte_identical_on_both_engines(tmp_path, migrated_template, pg_project, window):
    rows = known_readings()
    lite_root = tmp_path / "sqlite"
    lite_root.mkdir()
    shutil.copy(migrated_template, lite_root / "db.sqlite3")
    lite = Project(lite_root, time_zone="Europe/Berlin")
    fill_sqlite(lite.db, rows)
    pg_project.time_zone = "Europe/Berlin"
    fill_postgres(pg_project, rows)

    for kind in ("csv", "json"):
        on_sqlite, on_postgres = exported(lite, kind, *window), exported(pg_project, kind, *window)
        assert on_postgres.splitlines() == on_sqlite.splitlines()
        assert on_postgres == on_sqlite
    # The data holds what the comparison is about.
    text = exported(lite, "csv").decode("utf-8-sig")
    for expected in ("24.13,", "2.68,", "-0.13,", "-0.00,", "-0.01,", ",120,", ",37.5,", ",0.3,", ",1e-07,"):
        assert expected in text
    assert "2025-03-30 01:59" in text
    assert "2025-03-30 03:00" in text
    assert text.count("2025-10-26 02:0") > text.count("2025-10-26 03:0")  # 02:xx happens twice
