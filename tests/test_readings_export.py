"""Readings admin: export a range as a streamed download, byte for byte a backup export."""

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.messages import get_messages
from django.http import StreamingHttpResponse
from django.test import Client

from backup_tasks.services import backup as services
from readings.models import Reading
from tests.conftest import PEAK_KB, measure, operator

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/readings/reading/export/"
CHANGELIST = "/admin/readings/reading/"
HEADER = "Water Temp (°C),Air Temp (°C),Humidity (%),Setpoint (°C),PID Output,Timestamp"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def add(water, pid, when):
    Reading.objects.create(
        water_temperature=water,
        air_temperature=26.2,
        humidity=60.5,
        setpoint=25.0,
        pid_output=pid,
        timestamp=when,
    )


@pytest.fixture
def readings():
    # Inserted newest first: the export lists them oldest first.
    add(24.56, 105, utc(2025, 1, 11, 14, 30, 28))
    add(24.54, 110, utc(2025, 1, 11, 14, 30, 26))
    add(24.52, 115, utc(2025, 1, 11, 14, 30, 24))
    add(24.5, 120, utc(2025, 1, 11, 14, 30, 22))
    add(24.48, 125, utc(2025, 1, 11, 14, 30, 20))


@pytest.fixture
def vera(client, readings, backup_dir):
    """An operator who may view readings."""
    client.force_login(operator("vera", "view_reading"))
    return client


def export(client, start: str, end: str, format: str = "csv"):
    return client.post(PAGE, {"start": start, "end": end, "format": format})


def content(response) -> bytes:
    return b"".join(response.streaming_content)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_csv_range_downloads_the_exact_lines_from_start_up_to_end(vera):
    response = export(vera, "2025-01-11T14:30:22", "2025-01-11T14:30:28")

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="readings_20250111_143022-20250111_143028.csv"'
    )
    # 14:30:22 (From) is in, 14:30:28 (To) is out, like the backup exports' windows.
    assert (
        content(response)
        == (
            "\ufeff" + HEADER + "\r\n"
            "24.50,26.20,60.50,25.00,120,2025-01-11 14:30:22\r\n"
            "24.52,26.20,60.50,25.00,115,2025-01-11 14:30:24\r\n"
            "24.54,26.20,60.50,25.00,110,2025-01-11 14:30:26\r\n"
        ).encode()
    )


@pytest.mark.parametrize(
    ("format", "service"), [("csv", services.export_csv), ("json", services.export_json)]
)
def test_a_download_is_byte_for_byte_the_backup_export_of_the_same_window(vera, backup_dir, format, service):
    backup = service(start=utc(2025, 1, 11, 14, 30, 22), end=utc(2025, 1, 11, 14, 30, 28))

    response = export(vera, "2025-01-11T14:30:22", "2025-01-11T14:30:28", format)

    assert backup.rows == 3
    assert content(response) == Path(backup.path).read_bytes()


def test_a_json_range_downloads_the_guide_keys_as_numbers(vera):
    response = export(vera, "2025-01-11 14:30:24", "2025-01-11 14:30:27", "json")

    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        'attachment; filename="readings_20250111_143024-20250111_143027.json"'
    )
    assert content(response) == (
        b"[\n"
        b'{"water_temperature":24.52,"air_temperature":26.20,"humidity":60.50,"setpoint":25.00,'
        b'"pid_output":115,"timestamp":"2025-01-11 14:30:24"},\n'
        b'{"water_temperature":24.54,"air_temperature":26.20,"humidity":60.50,"setpoint":25.00,'
        b'"pid_output":110,"timestamp":"2025-01-11 14:30:26"}\n'
        b"]\n"
    )


def test_a_range_given_to_the_minute_starts_and_ends_on_the_minute(vera):
    # What a browser's date-time picker sends when the seconds are zero.
    response = export(vera, "2025-01-11T14:30", "2025-01-11T14:31", "json")

    assert [row["pid_output"] for row in json.loads(content(response))] == [125, 120, 115, 110, 105]


def test_dates_are_plant_time_and_so_are_the_lines_and_the_name(vera, settings, backup_dir):
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in January
    backup = services.export_csv(start=utc(2025, 1, 11, 14, 30, 24), end=utc(2025, 1, 11, 14, 30, 26))

    response = export(vera, "2025-01-11T15:30:24", "2025-01-11T15:30:26")

    assert response["Content-Disposition"] == (
        'attachment; filename="readings_20250111_153024-20250111_153026.csv"'
    )
    downloaded = content(response)
    assert downloaded == Path(backup.path).read_bytes()
    assert downloaded.endswith(b"\r\n24.52,26.20,60.50,25.00,115,2025-01-11 15:30:24\r\n")


def test_an_empty_range_says_so_instead_of_downloading(vera):
    response = export(vera, "2025-01-12T00:00", "2025-01-13T00:00")

    assert response.status_code == 200
    assert not response.streaming
    assert messages_of(response) == [
        "No readings from 2025-01-12 00:00:00 to 2025-01-13 00:00:00: nothing to export."
    ]
    assert 'name="start" value="2025-01-12T00:00"' in response.content.decode()


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        ("yesterday", "2025-01-12T00:00", "Enter a valid date/time."),
        ("2025-02-30T00:00", "2025-03-01T00:00", "Enter a valid date/time."),
        ("", "2025-01-12T00:00", "This field is required."),
        ("2025-01-12T00:00", "2025-01-11T00:00", "“To” must be later than “From”."),
        ("2025-01-11T00:00", "2025-01-11T00:00", "“To” must be later than “From”."),
    ],
)
def test_bad_dates_answer_the_form_with_a_message_not_an_error_page(vera, start, end, error):
    response = export(vera, start, end)

    assert response.status_code == 200
    assert not response.streaming
    assert messages_of(response) == ["Please correct the range below."]
    assert error in response.content.decode()


def test_a_time_the_clocks_skip_is_a_form_error(vera, settings):
    settings.TIME_ZONE = "Europe/Berlin"  # 02:00-03:00 does not exist on 30 March 2025

    response = export(vera, "2025-03-30T02:30", "2025-03-30T04:00")

    assert response.status_code == 200
    assert messages_of(response) == ["Please correct the range below."]
    assert "couldn’t be interpreted in time zone Europe/Berlin" in response.content.decode()


def test_an_unknown_format_is_a_form_error(vera):
    response = export(vera, "2025-01-11T00:00", "2025-01-12T00:00", "xlsx")

    assert response.status_code == 200
    assert not response.streaming
    assert "Choose CSV or JSON." in response.content.decode()


def test_the_form_starts_from_the_range_the_changelist_shows(vera):
    changelist = vera.get(
        CHANGELIST, {"timestamp__year": "2025", "timestamp__month": "1", "timestamp__day": "11"}
    )
    link = f"{PAGE}?timestamp__year=2025&amp;timestamp__month=1&amp;timestamp__day=11"

    page = vera.get(PAGE, {"timestamp__year": "2025", "timestamp__month": "1", "timestamp__day": "11"})

    assert f'<a href="{link}">Export range…</a>' in changelist.content.decode()
    html = page.content.decode()
    assert 'name="start" value="2025-01-11T00:00:00"' in html
    assert 'name="end" value="2025-01-12T00:00:00"' in html


def test_the_form_takes_the_changelist_date_filter_in_plant_time(vera, settings):
    settings.TIME_ZONE = "Europe/Berlin"

    page = vera.get(
        PAGE, {"timestamp__gte": "2025-01-04 00:00:00+01:00", "timestamp__lt": "2025-01-12 00:00:00+01:00"}
    )

    html = page.content.decode()
    assert 'name="start" value="2025-01-04T00:00:00"' in html
    assert 'name="end" value="2025-01-12T00:00:00"' in html


def test_without_a_range_shown_the_form_offers_yesterday(vera, settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()

    html = vera.get(PAGE).content.decode()

    assert f'name="end" value="{today:%Y-%m-%d}T00:00:00"' in html
    assert "Times are plant time (Asia/Kolkata)." in html


def test_each_export_is_logged_with_the_user_and_the_file(vera, backup_dir, caplog):
    logger = logging.getLogger("backup_tasks")
    logger.addHandler(caplog.handler)
    try:
        content(export(vera, "2025-01-11T14:30:22", "2025-01-11T14:30:28"))
    finally:
        logger.removeHandler(caplog.handler)

    assert [r.getMessage() for r in caplog.records if r.name == "backup_tasks"] == [
        "Readings export by vera: readings_20250111_143022-20250111_143028.csv"
    ]


@pytest.mark.parametrize("method", ["get", "post"])
def test_staff_who_may_not_view_readings_are_refused(client, readings, method):
    client.force_login(operator("bob", "view_backuprun", "download_backup"))

    response = getattr(client, method)(
        PAGE, {"start": "2025-01-11T00:00", "end": "2025-01-12T00:00", "format": "csv"}
    )

    assert response.status_code == 403
    assert not response.streaming
    assert b"24.50" not in response.content


def test_anonymous_users_are_sent_to_the_login_page(client, readings):
    response = client.post(PAGE, {"start": "2025-01-11T00:00", "end": "2025-01-12T00:00", "format": "csv"})

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={PAGE}"


def test_the_export_form_needs_its_csrf_token(readings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator("vera", "view_reading"))
    data = {"start": "2025-01-11T00:00", "end": "2025-01-12T00:00", "format": "csv"}

    refused = client.post(PAGE, data)
    token = client.get(PAGE).context["csrf_token"]
    accepted = client.post(PAGE, {**data, "csrfmiddlewaretoken": str(token)})

    assert refused.status_code == 403
    assert not refused.streaming
    assert accepted.status_code == 200
    assert accepted.streaming


MEASURE = (
    """
import hashlib, json, sys
import django
django.setup()
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
client.force_login(User.objects.filter(username="measure").first() or User.objects.create_superuser("measure"))
response = client.post(
    "/admin/readings/reading/export/",
    {"start": "2000-01-01T00:00", "end": "2100-01-01T00:00", "format": sys.argv[1]},
)
digest, size, blocks = hashlib.sha256(), 0, 0
for block in response.streaming_content:
    digest.update(block)
    size += len(block)
    blocks += 1
"""
    + PEAK_KB
    + """
print(json.dumps({"sha256": digest.hexdigest(), "size": size, "blocks": blocks, "peak_kb": peak_kb}))
"""
)


def streamed(project, format: str) -> dict:
    return measure(project, MEASURE, format)


@pytest.mark.slow
@pytest.mark.parametrize("format", ["csv", "json"])
def test_a_download_of_300_000_readings_streams_in_flat_memory(project, format):
    interval = 2
    project.manage("simulate_readings", "--days", str(30_000 * interval / 86_400), check=True)
    small = streamed(project, format)
    project.manage("simulate_readings", "--days", str(270_000 * interval / 86_400), check=True)
    large = streamed(project, format)
    project.manage("backup_database", "--type", format, check=True)
    [backup] = (project.backups / f"{format}_exports").glob(f"readings_*.{format}")

    # The whole database as one download: the very bytes of a backup export.
    assert large["sha256"] == hashlib.sha256(backup.read_bytes()).hexdigest()
    # Ten times the readings; a reading's line is a byte or two longer or shorter with its
    # digits, which vary with the simulated values (it once came out at 9.999 times).
    assert large["size"] > 9 * small["size"] > 0
    assert large["blocks"] > 100
    # Ten times the readings may cost a few MB of SQLite page cache, not ten times the memory.
    assert large["peak_kb"] / 1024 < small["peak_kb"] / 1024 + 10, (small, large)
    assert large["peak_kb"] / 1024 < 100
