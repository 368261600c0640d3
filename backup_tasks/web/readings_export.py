"""Export a range of readings from admin: the form, its range and the download's name."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.http import QueryDict

from backup_tasks.core.layout import STAMP_FORMAT

FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
WIDGET_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _picker() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format=WIDGET_FORMAT)


class ExportForm(forms.Form):
    """From (included) to (excluded), in plant time: the same window as the backup exports."""

    start = forms.DateTimeField(
        label="From", widget=_picker(), help_text="Plant time. Readings at this moment are included."
    )
    end = forms.DateTimeField(
        label="To", widget=_picker(), help_text="Plant time. Readings at this moment are not included."
    )
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")])

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            raise forms.ValidationError("“To” must be later than “From”.")
        return data


def download_name(kind: str, start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """readings_<from>-<to>.<kind> in plant time; the dash keeps it apart from a backup's name."""
    return f"readings_{start.astimezone(zone):{STAMP_FORMAT}}-{end.astimezone(zone):{STAMP_FORMAT}}.{kind}"


def initial_range(params: QueryDict, now: datetime) -> tuple[datetime, datetime]:
    """The changelist's date range (its date hierarchy or date filter) as naive plant times.

    Yesterday when the changelist shows no range. now is aware, in the plant's zone.
    """
    try:
        if "timestamp__gte" in params and "timestamp__lt" in params:
            start = _naive(datetime.fromisoformat(params["timestamp__gte"]), now)
            end = _naive(datetime.fromisoformat(params["timestamp__lt"]), now)
            if start < end:
                return start, end
        if "timestamp__year" in params:
            year = int(params["timestamp__year"])
            if "timestamp__month" in params:
                month = int(params["timestamp__month"])
                if "timestamp__day" in params:
                    start = datetime(year, month, int(params["timestamp__day"]))
                    return start, start + timedelta(days=1)
                start = datetime(year, month, 1)
                return start, (start + timedelta(days=32)).replace(day=1)
            return datetime(year, 1, 1), datetime(year + 1, 1, 1)
    except (ValueError, OverflowError):
        pass  # a hand-edited URL: fall back to yesterday
    today = now.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1), today


def _naive(value: datetime, now: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(now.tzinfo)
    return value.replace(tzinfo=None)
