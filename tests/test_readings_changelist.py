"""The readings changelist at over a month of readings: every query reads a range of the
timestamp index or a fixed number of rows, never every reading.

Checked without timing anything: each query the pages run is read back with
EXPLAIN QUERY PLAN and run again under SQLite's progress handler, which counts
its virtual-machine steps. A walk over every reading costs more steps than
there are readings.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from readings.models import Reading

from .conftest import operator

PAGE = "/admin/readings/reading/"
# 2025-03-15 to 2025-04-17 (UTC), a reading every 2 s, across the spring change to
# summer time (30 March), with the plant off from 5 to 7 April (plant time).
FIRST = datetime(2025, 3, 15, tzinfo=UTC)
DAYS = 33
OFF = (datetime(2025, 4, 4, 22, tzinfo=UTC), datetime(2025, 4, 7, 22, tzinfo=UTC))
READINGS = DAYS * 43_200 - 3 * 43_200
FILL_SQL = """
INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp)
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < %s),
moments(i, at) AS (SELECT i, datetime(%s, '+' || (2 * i) || ' seconds') FROM seq)
SELECT 24.5 + (i %% 100) / 100.0, 26.0, 60.0, 25.0, i %% 256, at FROM moments WHERE at < %s OR at >= %s
"""
STEPS_PER_CALL = 100

# Every page an operator reaches: the list, each drill-down level, the range
# filters (as the sidebar's links and the export button write them), sorting,
# paging, and what a hand-edited address may ask.
PAGES = {
    "the list": "",
    "a year": "?timestamp__year=2025",
    "a month": "?timestamp__year=2025&timestamp__month=4",
    "a month across the clock change": "?timestamp__year=2025&timestamp__month=3",
    "a day": "?timestamp__year=2025&timestamp__month=3&timestamp__day=30",
    "a one-day range": "?timestamp__gte=2025-04-01&timestamp__lt=2025-04-02",
    "a range as the sidebar writes it": "?timestamp__gte=2025-04-01+00%3A00%3A00%2B02%3A00"
    "&timestamp__lt=2025-05-01+00%3A00%3A00%2B02%3A00",
    "a range open at one end": "?timestamp__gte=2025-04-10",
    # Columns count from 0 for an operator without actions: 0 is the timestamp.
    "oldest first": "?o=0",
    "oldest first in a month": "?timestamp__year=2025&timestamp__month=4&o=0",
    "the second page": "?p=2",
    "the last page within the count": "?p=1000",
    "sorted by water temperature": "?o=1",
    "with filter counts": "?_facets=True",
}


@pytest.fixture(scope="module")
def month_of_readings(django_db_setup, django_db_blocker):
    """Over a month of readings, inserted once for the module in one SQL statement."""
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(FILL_SQL, [DAYS * 43_200 - 1, text(FIRST), text(OFF[0]), text(OFF[1])])
        assert Reading.objects.count() == READINGS
        yield READINGS
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM readings_reading")


@pytest.fixture
def viewer(client, db, settings, month_of_readings):
    settings.TIME_ZONE = "Europe/Berlin"
    client.force_login(operator("olga", "view_reading"))
    return client


def text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def readings_queries(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return [query["sql"] for query in captured.captured_queries if "readings_reading" in query["sql"]]


def links(page: str) -> list[tuple[str, dict[str, str]]]:
    """The date navigation's links: (title, drill-down parameters)."""
    bar = re.search(r'<nav class="toplinks">(.*?)</nav>', page, re.S).group(1)
    return [
        (title, dict(re.findall(r"timestamp__(\w+)=(\w+)", href)))
        for href, title in re.findall(r'<a href="([^"]*)">([^<]+)</a>', bar)
    ]


def plan(sql: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [row[-1] for row in cursor.fetchall()]


def steps(sql: str) -> int:
    """SQLite's virtual-machine steps to run the query to its last row."""
    counted = [0]

    def count() -> int:
        counted[0] += STEPS_PER_CALL
        return 0

    raw = connection.connection
    raw.set_progress_handler(count, STEPS_PER_CALL)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()
    finally:
        raw.set_progress_handler(None, 0)
    return counted[0]


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
# A date typed without a time is read in the plant's zone, with Django's warning.
@pytest.mark.filterwarnings("ignore:DateTimeField Reading.timestamp received a naive datetime")
def test_no_query_of_the_changelist_reads_every_reading(viewer, page):
    queries = readings_queries(viewer, PAGE + PAGES[page])

    assert queries
    for sql in queries:
        lines = plan(sql)
        shown = f"{sql}\n" + "\n".join(lines)
        assert not any("TEMP B-TREE" in line for line in lines), f"sorts readings: {shown}"
        for line in lines:
            if "readings_reading" not in line:
                continue
            assert re.search(r"USING (COVERING )?INDEX readings_reading_timestamp_", line), (
                f"no index: {shown}"
            )
            ranged = line.startswith("SEARCH")  # a range of the index, or MIN() / MAX() from it
            assert ranged or re.search(r"\bLIMIT \d+\b", sql), f"reads the whole index: {shown}"
        assert steps(sql) < READINGS, f"walks every reading: {shown}"


@pytest.mark.slow
def test_the_date_navigation_offers_the_months_then_the_days_that_hold_readings(viewer):
    months = viewer.get(PAGE).content.decode()
    april = viewer.get(PAGE + "?timestamp__year=2025&timestamp__month=4").content.decode()

    # All in one year, so the navigation starts with its months, as Django's does.
    assert links(months) == [
        ("March 2025", {"year": "2025", "month": "3"}),
        ("April 2025", {"year": "2025", "month": "4"}),
    ]
    # The plant was off from 5 to 7 April; the last reading is at 01:59:58 on 17 April.
    assert links(april) == [
        (f"April {day}", {"year": "2025", "month": "4", "day": str(day)})
        for day in (1, 2, 3, 4, *range(8, 18))
    ]


@pytest.mark.slow
def test_a_day_is_the_plant_days_readings_even_when_the_clocks_change(viewer):
    response = viewer.get(PAGE + "?timestamp__year=2025&timestamp__month=3&timestamp__day=30")
    cl = response.context["cl"]

    # 30 March has 23 hours in Berlin: 00:00 CET to 00:00 CEST.
    assert cl.result_count == 23 * 1800
    assert cl.result_list[0].timestamp == datetime(2025, 3, 30, 21, 59, 58, tzinfo=UTC)
    assert "March 30" in response.content.decode()


@pytest.mark.slow
def test_the_list_is_newest_first_or_oldest_first_and_never_by_another_column(viewer):
    newest = viewer.get(PAGE).context["cl"].result_list
    oldest = viewer.get(PAGE + "?o=0").context["cl"].result_list
    by_water = viewer.get(PAGE + "?o=1").context["cl"].result_list

    assert newest[0].timestamp == FIRST + timedelta(seconds=2 * (DAYS * 43_200 - 1))
    assert oldest[0].timestamp == FIRST
    assert [r.pk for r in by_water] == [r.pk for r in newest]


@pytest.mark.slow
@pytest.mark.parametrize(
    "query",
    [
        "?timestamp__month=4",  # every April: a function of every reading
        "?timestamp__hour=3",
        "?timestamp__year=2025&timestamp__day=3",
        "?timestamp__year=2025&timestamp__gte=2025-04-01",
    ],
)
def test_filters_that_cannot_use_the_index_send_back_to_the_plain_list(viewer, query):
    response = viewer.get(PAGE + query)

    assert response.status_code == 302
    assert response["Location"] == PAGE + "?e=1"
