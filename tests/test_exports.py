"""CSV and JSON exports: the guide's exact format, in the plant's zone, oldest first."""

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_tasks.services import backup as services
from readings.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "Water Temp (°C),Air Temp (°C),Humidity (%),Setpoint (°C),PID Output,Timestamp"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def add(water, air, humidity, setpoint, pid, when):
    Reading.objects.create(
        water_temperature=water,
        air_temperature=air,
        humidity=humidity,
        setpoint=setpoint,
        pid_output=pid,
        timestamp=when,
    )


@pytest.fixture
def guide_readings():
    # Inserted newest first: the export must still list them oldest first.
    add(24.54, 26.15, 60.45, 25.0, 110, utc(2025, 1, 11, 14, 30, 26))
    add(24.52, 26.18, 60.48, 25.0, 115, utc(2025, 1, 11, 14, 30, 24))
    add(24.5, 26.2, 60.5, 25.0, 120, utc(2025, 1, 11, 14, 30, 22))


def test_csv_export_matches_the_guide_byte_for_byte(backup_dir, guide_readings):
    result = services.export_csv(when=datetime(2025, 1, 11, 14, 30, 22, tzinfo=UTC))

    path = backup_dir / "csv_exports" / "readings_20250111_143022.csv"
    assert result.path == str(path)
    assert result.rows == 3
    assert (
        path.read_bytes()
        == (
            "\ufeff" + HEADER + "\r\n"
            "24.50,26.20,60.50,25.00,120,2025-01-11 14:30:22\r\n"
            "24.52,26.18,60.48,25.00,115,2025-01-11 14:30:24\r\n"
            "24.54,26.15,60.45,25.00,110,2025-01-11 14:30:26\r\n"
        ).encode()
    )


def test_csv_export_reads_back_with_the_csv_module(backup_dir, guide_readings):
    path = services.export_csv().path
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == HEADER.split(",")
    assert rows[1] == ["24.50", "26.20", "60.50", "25.00", "120", "2025-01-11 14:30:22"]
    assert len(rows) == 4


def test_json_export_has_the_guide_keys_as_numbers(backup_dir, guide_readings):
    result = services.export_json(when=datetime(2025, 1, 11, 14, 30, 22, tzinfo=UTC))

    path = backup_dir / "json_exports" / "readings_20250111_143022.json"
    assert result.path == str(path)
    assert path.read_text(encoding="utf-8") == (
        "[\n"
        '{"water_temperature":24.50,"air_temperature":26.20,"humidity":60.50,"setpoint":25.00,'
        '"pid_output":120,"timestamp":"2025-01-11 14:30:22"},\n'
        '{"water_temperature":24.52,"air_temperature":26.18,"humidity":60.48,"setpoint":25.00,'
        '"pid_output":115,"timestamp":"2025-01-11 14:30:24"},\n'
        '{"water_temperature":24.54,"air_temperature":26.15,"humidity":60.45,"setpoint":25.00,'
        '"pid_output":110,"timestamp":"2025-01-11 14:30:26"}\n'
        "]\n"
    )
    data = json.loads(path.read_text())
    assert data[0] == {
        "water_temperature": 24.5,
        "air_temperature": 26.2,
        "humidity": 60.5,
        "setpoint": 25.0,
        "pid_output": 120,
        "timestamp": "2025-01-11 14:30:22",
    }


def test_exports_of_an_empty_database(backup_dir):
    csv_path = services.export_csv().path
    json_path = services.export_json().path
    with open(csv_path, "rb") as handle:
        assert handle.read() == ("\ufeff" + HEADER + "\r\n").encode()
    with open(json_path, "rb") as handle:
        assert handle.read() == b"[]\n"


def test_numbers_round_half_away_from_zero_and_pid_has_no_needless_decimals(backup_dir):
    add(24.125, -3.005, 100.0, 25.0, 37.5, utc(2025, 1, 11, 8, 0, 0, 999_999))
    add(2.675, 0.0, 0.0, 18.333333, 0.25, utc(2025, 1, 11, 8, 0, 2))

    lines = Path(services.export_csv().path).read_text(encoding="utf-8-sig").splitlines()

    assert lines[1:] == [
        "24.13,-3.01,100.00,25.00,37.5,2025-01-11 08:00:00",
        "2.68,0.00,0.00,18.33,0.25,2025-01-11 08:00:02",
    ]


def test_timestamps_are_in_the_plant_zone_across_daylight_saving(settings, backup_dir):
    settings.TIME_ZONE = "Europe/Berlin"
    add(20.0, 20.0, 50.0, 25.0, 1, utc(2026, 1, 15, 12, 0, 0))  # CET, +1
    add(20.0, 20.0, 50.0, 25.0, 2, utc(2026, 3, 29, 0, 59, 58))  # last CET second pair
    add(20.0, 20.0, 50.0, 25.0, 3, utc(2026, 3, 29, 1, 0, 0))  # 02:00 does not exist: 03:00 CEST
    add(20.0, 20.0, 50.0, 25.0, 4, utc(2026, 7, 1, 10, 0, 0))  # CEST, +2
    add(20.0, 20.0, 50.0, 25.0, 5, utc(2026, 10, 25, 0, 59, 58))  # 02:59:58 CEST
    add(20.0, 20.0, 50.0, 25.0, 6, utc(2026, 10, 25, 1, 0, 0))  # 02:00:00 again, now CET
    add(20.0, 20.0, 50.0, 25.0, 7, utc(2026, 10, 25, 1, 30, 0))  # 02:30 CET

    csv_lines = Path(services.export_csv().path).read_text(encoding="utf-8-sig").splitlines()[1:]
    json_rows = json.loads(Path(services.export_json().path).read_text())

    expected = [
        ("1", "2026-01-15 13:00:00"),
        ("2", "2026-03-29 01:59:58"),
        ("3", "2026-03-29 03:00:00"),
        ("4", "2026-07-01 12:00:00"),
        ("5", "2026-10-25 02:59:58"),
        ("6", "2026-10-25 02:00:00"),
        ("7", "2026-10-25 02:30:00"),
    ]
    assert [tuple(line.split(",")[4:]) for line in csv_lines] == expected
    assert [(str(row["pid_output"]), row["timestamp"]) for row in json_rows] == expected


def test_export_window_includes_start_and_excludes_end(backup_dir, guide_readings):
    result = services.export_csv(start=utc(2025, 1, 11, 14, 30, 24), end=utc(2025, 1, 11, 14, 30, 26))
    lines = Path(result.path).read_text(encoding="utf-8-sig").splitlines()
    assert lines[1:] == ["24.52,26.18,60.48,25.00,115,2025-01-11 14:30:24"]


def test_two_exports_in_the_same_second_never_overwrite(backup_dir, guide_readings):
    when = datetime(2025, 1, 11, 14, 30, 22, tzinfo=UTC)
    first = services.export_csv(when=when)
    before = Path(first.path).read_bytes()
    add(30.0, 30.0, 50.0, 25.0, 1, utc(2025, 1, 11, 14, 30, 28))

    second = services.export_csv(when=when)

    assert first.path.endswith("readings_20250111_143022.csv")
    assert second.path.endswith("readings_20250111_143023.csv")
    assert Path(first.path).read_bytes() == before
    assert second.rows == 4


def test_csv_fields_are_never_quoted(backup_dir, guide_readings):
    # The CSV has no quoting at all: every field is a plain number or time.
    text = Path(services.export_csv().path).read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    assert all(len(row) == 6 for row in reader)
    assert '"' not in text


def test_sql_formatting_matches_the_generic_python_path(settings, backup_dir, monkeypatch):
    """The SQLite fast path and the ORM path other databases use write the same bytes."""
    from backup_tasks.engines import get_engine
    from backup_tasks.engines.base import Engine

    settings.TIME_ZONE = "Europe/Berlin"
    values = [24.125, 2.675, -3.005, 0.0, 99.999, 18.333333, 100.0]
    moments = [
        utc(2026, 3, 29, 0, 59, 59),
        utc(2026, 3, 29, 1),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
    ]
    for i, when in enumerate(moments):
        add(values[i], values[i + 1], abs(values[i + 2]), values[i + 3], [120, 37.5, 0.25, -4][i], when)
    fast_csv, fast_json = services.export_csv().path, services.export_json().path

    generic = Engine("default", get_engine().settings_dict)
    monkeypatch.setattr(services, "get_engine", lambda alias="default": generic)
    slow_csv, slow_json = services.export_csv().path, services.export_json().path

    assert Path(slow_csv).read_bytes() == Path(fast_csv).read_bytes()
    assert Path(slow_json).read_bytes() == Path(fast_json).read_bytes()
    assert len(Path(fast_csv).read_text(encoding="utf-8-sig").splitlines()) == 5


def test_export_window_on_the_command_line_is_plant_time(project):
    project.time_zone = "Europe/Berlin"
    project.manage("simulate_readings", "--days", "2", "--start", "2025-01-11", check=True)

    project.manage(
        "backup_database", "--type", "csv", "--since", "2025-01-11 12:00", "--until", "2025-01-12", check=True
    )

    (export,) = (project.backups / "csv_exports").glob("*.csv")
    lines = export.read_text(encoding="utf-8-sig").splitlines()
    assert lines[1].endswith(",2025-01-11 12:00:00")
    assert lines[-1].endswith(",2025-01-11 23:59:58")
    assert len(lines) == 1 + 12 * 1800


def test_export_window_errors_are_one_line(project):
    result = project.manage("backup_database", "--type", "csv", "--since", "yesterday")
    assert result.returncode == 2
    assert result.stderr == (
        "manage.py backup_database: error: argument --since: 'yesterday' is not a date (YYYY-MM-DD) "
        "or date-time (YYYY-MM-DD HH:MM[:SS]) (see --help)\n"
    )
    result = project.manage(
        "backup_database", "--type", "csv", "--since", "2025-02-01", "--until", "2025-01-01"
    )
    assert (result.returncode, result.stderr) == (1, "Error: --since must be before --until\n")


@pytest.mark.slow
def test_a_month_of_csv_is_split_at_the_excel_limit_and_every_part_verifies(project):
    project.manage(
        "simulate_readings", "--days", "31", "--start", "2025-01-01", check=True
    )  # 1,339,200 readings

    out = project.manage("backup_database", "--type", "csv", check=True).stdout
    project.manage("backup_database", "--type", "json", check=True)

    (first,) = (project.backups / "csv_exports").glob("readings_????????_??????.csv")
    second = first.with_name(first.name.replace(".csv", "_part2.csv"))
    assert out == f"Readings exported to CSV: backups/csv_exports/{first.name}\n"
    assert sorted(p.name for p in first.parent.iterdir()) == sorted(
        [first.name, f"{first.name}.sha256", second.name, f"{second.name}.sha256"]
    )
    first_lines = first.read_bytes().split(b"\r\n")
    second_lines = second.read_bytes().split(b"\r\n")
    assert len(first_lines) - 1 == 1_048_576  # the most Excel opens, header included
    assert first_lines[0] == second_lines[0] == ("\ufeff" + HEADER).encode()
    assert len(first_lines) - 2 + len(second_lines) - 2 == 1_339_200
    # The parts continue each other: oldest first, nothing repeated, nothing skipped.
    assert first_lines[-2].endswith(b"2025-01-25 06:32:28")
    assert second_lines[1].endswith(b"2025-01-25 06:32:30")

    verify = project.manage("backup_database", "--verify", check=True).stdout.splitlines()
    assert verify[:2] == [
        f"OK       backups/csv_exports/{first.name}: 1,048,575 readings",
        f"OK       backups/csv_exports/{second.name}: 290,625 readings",
    ]
    status = project.manage("backup_database", "--status", check=True).stdout
    assert "CSV Exports: 1\n" in status
    assert "Total Readings: 1,339,200\n" in status
