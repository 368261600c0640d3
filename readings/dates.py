"""The readings changelist's dates: its filters as one time span, and a date navigation
that costs a few index seeks whatever the number of readings.

Django's date_hierarchy finds the years, months or days holding readings with
SELECT DISTINCT over a function of every reading in view (98 s at a year of
readings), after MIN() and MAX() in one query, which walks the whole timestamp
index. Here each choice costs one lone MIN() over a range of the index: the
first reading at or after the start of a period names that period, and the
search goes on from the next one. A year's months are at most 13 seeks.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from readings.models import Reading

FIELD = "timestamp"
LEVELS = ("year", "month", "day")
RANGE = (f"{FIELD}__gte", f"{FIELD}__lt")
DRILL = tuple(f"{FIELD}__{level}" for level in LEVELS)


@dataclass(frozen=True)
class Span:
    """Readings with start <= timestamp < end; None leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None

    def first(self) -> datetime | None:
        """The oldest reading's time: a lone MIN(), one step into the index."""
        return Reading.objects.between(self.start, self.end).aggregate(first=Min(FIELD))["first"]

    def last(self) -> datetime | None:
        """The newest reading's time: a lone MAX(), never paired with MIN() in one query."""
        return Reading.objects.between(self.start, self.end).aggregate(last=Max(FIELD))["last"]


def truncate(day: date, level: str) -> date:
    """The first day of the year, month or day that holds day."""
    return {"year": day.replace(month=1, day=1), "month": day.replace(day=1), "day": day}[level]


def following(day: date, level: str) -> date:
    """The first day of the year, month or day after the one that starts on day."""
    if level == "year":
        return date(day.year + 1, 1, 1)
    if level == "month":
        return (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return day + timedelta(days=1)


def midnight(day: date, zone) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day), zone)


def periods(span: Span, level: str, zone) -> list[date]:
    """The first day of each year, month or day (in zone) with a reading in span, oldest first."""
    found: list[date] = []
    probe = span
    while (first := probe.first()) is not None:
        found.append(truncate(timezone.localtime(first, zone).date(), level))
        probe = Span(midnight(following(found[-1], level), zone), span.end)
    return found


def filtered_span(params: dict[str, list[str]]) -> Span:
    """The span of time the changelist's filters select, the way Django's filters read them.

    Only ranges of the timestamp can use its index: any other lookup on it (a
    month of every year, a weekday, an hour...) would call a function on every
    reading, so it is refused, as is a drill-down given together with a range.
    """
    given = {key: values[-1] for key, values in params.items() if key.startswith(FIELD)}
    refused = sorted(given.keys() - {*RANGE, *DRILL})
    if refused:
        raise IncorrectLookupParameters(f"Readings are filtered by ranges of time only, not {refused}.")
    drilled = [given.get(key) for key in DRILL]
    if not any(drilled):
        try:
            return Span(*(_moment(given.get(key)) for key in RANGE))
        except ValidationError as exc:
            raise IncorrectLookupParameters(exc) from exc
    depth = drilled.index(None) if None in drilled else len(LEVELS)
    if any(drilled[depth:]) or any(key in given for key in RANGE):
        raise IncorrectLookupParameters("A drill-down goes year, month, day, without a range beside it.")
    try:
        day = date(*(int(value) for value in drilled[:depth]), *([1] * (len(LEVELS) - depth)))
    except (ValueError, OverflowError) as exc:
        raise IncorrectLookupParameters(exc) from exc
    # As Django's own drill-down: local midnights of the current time zone, the plant's (TIME_ZONE).
    zone = timezone.get_current_timezone()
    level = LEVELS[depth - 1]
    return Span(midnight(day, zone), midnight(following(day, level), zone))


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    value = models.DateTimeField().to_python(text)
    # As a query does with a naive value: in the default time zone.
    return value if timezone.is_aware(value) else timezone.make_aware(value)


def date_hierarchy(cl, span: Span) -> dict:
    """What Django's date_hierarchy tag shows, for readings in span, from index seeks."""
    year_field, month_field, day_field = DRILL
    year, month, day = (cl.params.get(key) for key in DRILL)
    zone = timezone.get_current_timezone()

    def link(filters: dict) -> str:
        return cl.get_query_string(filters, [f"{FIELD}__"])

    if not (year or month or day):
        first, last = span.first(), span.last()
        if first and last:
            first, last = timezone.localtime(first, zone), timezone.localtime(last, zone)
            if first.year == last.year:
                year = first.year
                if first.month == last.month:
                    month = first.month
    if year and month and day:
        shown = date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(shown, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(shown, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: found.day}),
                    "title": capfirst(formats.date_format(found, "MONTH_DAY_FORMAT")),
                }
                for found in periods(span, "day", zone)
            ],
        }
    if year:
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: found.month}),
                    "title": capfirst(formats.date_format(found, "YEAR_MONTH_FORMAT")),
                }
                for found in periods(span, "month", zone)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(found.year)}), "title": str(found.year)}
            for found in periods(span, "year", zone)
        ],
    }
