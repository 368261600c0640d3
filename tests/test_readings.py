"""Readings: validated recording, demo data, and an admin that stays fast."""

import math
import sqlite3
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User

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
    ],
)
def test_record_reading_refuses_impossible_values(field, value, message):
    with pytest.raises(InvalidReading) as caught:
        record_reading(**{**GOOD, field: value})
    assert caught.value.messages == [message]
    assert not Reading.objects.exists()


@pytest.mark.django_db
def test_record_reading_refuses_a_naive_timestamp():
    with pytest.raises(InvalidReading, match="timezone-aware"):
        record_reading(**GOOD, timestamp=datetime(2025, 1, 11, 14, 30, 22))


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
