"""Export timestamps in any plant zone: whole-hour, half-hour, across DST and gaps."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backup_tasks.services import backup as services
from readings.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def add_at(*moments: datetime) -> None:
    Reading.objects.bulk_create(
        Reading(
            water_temperature=20.0,
            air_temperature=20.0,
            humidity=50.0,
            setpoint=25.0,
            pid_output=i,
            timestamp=moment,
        )
        for i, moment in enumerate(moments)
    )


def csv_times(result) -> list[str]:
    lines = Path(result.path).read_text(encoding="utf-8-sig").splitlines()[1:]
    return [line.rsplit(",", 1)[1] for line in lines]


def local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_every_timestamp_is_the_plant_zone_time_across_both_dst_changes(settings, backup_dir, zone):
    # A reading every 1 h 0 min 7 s through 2025: both DST changes, every minute of the hour.
    settings.TIME_ZONE = zone
    moments = [utc(2025, 1, 1) + timedelta(seconds=3607 * i) for i in range(8_800)]
    add_at(*moments)

    csv_result = services.export_csv()
    json_rows = json.loads(Path(services.export_json().path).read_text())

    expected = [local(moment, zone) for moment in moments]
    assert csv_times(csv_result) == expected
    assert [row["timestamp"] for row in json_rows] == expected


@pytest.mark.parametrize(
    ("zone", "shown"),
    [("Asia/Kolkata", "2025-01-11 20:00:22"), ("Asia/Kathmandu", "2025-01-11 20:15:22")],
)
def test_zones_off_utc_by_part_of_an_hour_shift_minutes_too(settings, backup_dir, zone, shown):
    settings.TIME_ZONE = zone
    add_at(utc(2025, 1, 11, 14, 30, 22))

    assert csv_times(services.export_csv()) == [shown]


def test_readings_months_apart_and_fractions_of_seconds_are_all_exported_in_order(settings, backup_dir):
    settings.TIME_ZONE = "Europe/Berlin"
    moments = [
        utc(2025, 1, 1, 0, 0, 0),
        utc(2025, 1, 1, 0, 59, 59, 999_999),  # Last instant of an hour: still that hour, never rounded up.
        utc(2025, 1, 1, 1, 0, 0),
        utc(2025, 1, 5, 13, 0, 0),  # Four days without readings: the plant was off.
        utc(2025, 6, 1, 12, 34, 56, 500_000),
        utc(2026, 12, 31, 22, 59, 59),  # Into the next year, local midnight.
    ]
    add_at(*reversed(moments))

    assert csv_times(services.export_csv()) == [
        "2025-01-01 01:00:00",
        "2025-01-01 01:59:59",
        "2025-01-01 02:00:00",
        "2025-01-05 14:00:00",
        "2025-06-01 14:34:56",
        "2026-12-31 23:59:59",
    ]


def test_export_window_cuts_inside_hours_and_across_dst(settings, backup_dir):
    settings.TIME_ZONE = "Europe/Berlin"
    moments = [utc(2025, 3, 30, 0, 0, 0) + timedelta(minutes=10 * i) for i in range(18)]  # 00:00-02:50 UTC
    add_at(*moments)

    result = services.export_csv(start=utc(2025, 3, 30, 0, 35), end=utc(2025, 3, 30, 1, 25))

    assert csv_times(result) == [
        "2025-03-30 01:40:00",
        "2025-03-30 01:50:00",
        "2025-03-30 03:00:00",  # 01:00 UTC: clocks jump from 02:00 to 03:00.
        "2025-03-30 03:10:00",
        "2025-03-30 03:20:00",
    ]
