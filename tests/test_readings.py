"""Readings: validated recording, demo data, and an admin that stays fast."""

import math
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from readings.models import Reading
from readings.services import InvalidReading, record_reading

GOOD = {
    "water_temperature": 24.5,
    "air_temperature": 26.2,
    "humidity": 60.5,
    "setpoint": 25.0,
    "pid_output": 120,
}


@pytest.mark.django_db
def test_record_reading_stores_a_valid_reading():
    when = datetime(2025, 1, 11, 14, 30, 22, tzinfo=UTC)
    reading = record_reading(**GOOD, timestamp=when)
    stored = Reading.objects.get(pk=reading.pk)
    assert (stored.water_temperature, stored.humidity, stored.pid_output, stored.timestamp) == (
        24.5,
        60.5,
        120.0,
        when,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("water_temperature", math.nan, "water_temperature is nan: the sensor sent no usable value"),
        ("air_temperature", math.inf, "air_temperature is inf: the sensor sent no usable value"),
        ("pid_output", -math.inf, "pid_output is -inf: the sensor sent no usable value"),
        ("humidity", 100.5, "humidity 100.5% is outside the possible range 0..100%"),
        ("humidity", -1, "humidity -1% is outside the possible range 0..100%"),
        ("water_temperature", -300, "water_temperature -300°C is outside the possible range -40..150°C"),
        ("setpoint", "hot", "setpoint is not a number: 'hot'"),
        ("air_temperature", None, "air_temperature is missing or not a number"),
        # Shown precisely enough to see why: 100.0001, not 100.
        ("humidity", 100.0001, "humidity 100.0001% is outside the possible range 0..100%"),
        ("humidity", Decimal("100.0001"), "humidity 100.0001% is outside the possible range 0..100%"),
        ("setpoint", b"24", "setpoint is bytes, not a number: b'24' (decode the sensor's text first)"),
        (
            "setpoint",
            bytearray(b"24"),
            "setpoint is bytes, not a number: bytearray(b'24') (decode the sensor's text first)",
        ),
        ("pid_output", True, "pid_output is a truth value, not a number: True"),
        ("pid_output", [120], "pid_output is not a number: [120]"),
        pytest.param(
            "pid_output",
            10**400,
            "pid_output 1.000e+400 is outside the possible range -100000..100000",
            id="10**400",
        ),
        pytest.param(
            "pid_output",
            -(10**400),
            "pid_output -1.000e+400 is outside the possible range -100000..100000",
            id="-10**400",
        ),
        pytest.param(
            "water_temperature",
            "x" * 300,
            f"water_temperature is not a number: '{'x' * 39}...",
            id="long text",
        ),
    ],
)
def test_record_reading_refuses_impossible_values(field, value, message):
    with pytest.raises(InvalidReading) as caught:
        record_reading(**{**GOOD, field: value})
    assert caught.value.messages == [message]
    assert not Reading.objects.exists()


@pytest.mark.django_db
def test_record_reading_refuses_a_naive_timestamp():
    with pytest.raises(InvalidReading) as caught:
        record_reading(**GOOD, timestamp=datetime(2025, 1, 11, 14, 30, 22))
    assert caught.value.messages == [
        "timestamp 2025-01-11T14:30:22 has no time zone: pass a timezone-aware datetime"
    ]


@pytest.mark.django_db
def test_record_reading_refuses_timestamps_no_sensor_clock_can_mean():
    ten_years_ahead = (timezone.now() + timedelta(days=3653)).replace(microsecond=0)
    six_minutes_ahead = (timezone.now() + timedelta(minutes=6)).replace(microsecond=0)
    refused = {
        ten_years_ahead: f"timestamp {ten_years_ahead.isoformat()} is more than 5 minutes ahead of this "
        "server's clock: check the sensor's clock",
        six_minutes_ahead: f"timestamp {six_minutes_ahead.isoformat()} is more than 5 minutes ahead of this "
        "server's clock: check the sensor's clock",
        datetime(1, 1, 1, tzinfo=UTC): "timestamp 0001-01-01T00:00:00+00:00 is before 2020-01-01: "
        "check the sensor's clock (a clock that lost its time starts in 1970 or 2000)",
        datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC): "timestamp 2019-12-31T23:59:59+00:00 is before "
        "2020-01-01: check the sensor's clock (a clock that lost its time starts in 1970 or 2000)",
        "2025-01-11 14:30:22": "timestamp is not a date and time: '2025-01-11 14:30:22' "
        "(pass a timezone-aware datetime)",
        1736605822: "timestamp is not a date and time: 1736605822 (pass a timezone-aware datetime)",
    }
    for timestamp, message in refused.items():
        with pytest.raises(InvalidReading) as caught:
            record_reading(**GOOD, timestamp=timestamp)
        assert caught.value.messages == [message]
    assert not Reading.objects.exists()

    # The edges themselves are fine: the floor, and a sensor clock a few minutes fast.
    floor = datetime(2020, 1, 1, tzinfo=UTC)
    fast = timezone.now() + timedelta(minutes=4)
    record_reading(**GOOD, timestamp=floor)
    record_reading(**GOOD, timestamp=fast)
    assert sorted(Reading.objects.values_list("timestamp", flat=True)) == [floor, fast]


def test_simulate_readings_writes_a_plant_settling_around_its_setpoint(project):
    result = project.manage("simulate_readings", "--days", "2", "--start", "2025-01-11", check=True)

    assert result.stdout.startswith("Created 86,400 readings from 2025-01-11 00:00 every 2 s")
    with sqlite3.connect(project.db) as conn:
        count, first, last, water_avg, humidity_min, humidity_max, pid_min, pid_max = conn.execute(
            "SELECT COUNT(*), MIN(timestamp), MAX(timestamp), AVG(water_temperature),"
            " MIN(humidity), MAX(humidity), MIN(pid_output), MAX(pid_output) FROM readings_reading"
        ).fetchone()
        settled = conn.execute(
            "SELECT AVG(ABS(water_temperature - setpoint)) FROM readings_reading"
            " WHERE timestamp >= '2025-01-12 00:00:00'"
        ).fetchone()[0]
    assert count == 86_400
    assert (first, last) == ("2025-01-11 00:00:00", "2025-01-12 23:59:58")
    assert 24 < water_avg < 27
    assert settled < 0.5  # on the second day the loop holds the setpoint within half a degree
    assert humidity_min >= 0
    assert humidity_max <= 100
    assert (pid_min, pid_max) == (0, 255)


def test_simulate_readings_if_empty_adds_nothing_to_a_filled_database(project):
    project.manage("simulate_readings", "--days", "0.01", check=True)
    result = project.manage("simulate_readings", "--days", "7", "--if-empty", check=True)
    assert result.stdout == "The database already has readings: no demo readings added.\n"
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM readings_reading").fetchone()[0] == 432


def test_simulate_readings_rejects_bad_dates(project):
    result = project.manage("simulate_readings", "--days", "1", "--start", "11/01/2025")
    assert result.returncode == 1
    assert result.stderr == "CommandError: --start must be a date like 2025-01-11, got '11/01/2025'\n"


@pytest.mark.django_db
def test_admin_lists_readings_without_counting_the_whole_table(client):
    Reading.objects.bulk_create(
        Reading(timestamp=datetime(2025, 1, 11, 0, 0, s % 60, tzinfo=UTC), **GOOD) for s in range(150)
    )
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin)

    response = client.get("/admin/readings/reading/")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 150
    assert response.context["cl"].full_result_count is None  # no unfiltered COUNT(*)
    assert len(response.context["cl"].result_list) == 100
    assert b"2025" in response.content  # date hierarchy
