"""Export a range of readings from the readings admin: the form, its range, the download.

The view attaches itself to readings' own admin (backup_tasks/admin.py registers
ReadingExportMixin over it), so the readings app never imports backups.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import QueryDict, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_http_methods

from backup_tasks import conf
from backup_tasks.core.errors import BackupError
from backup_tasks.core.layout import STAMP_FORMAT
from backup_tasks.services import backup
from backup_tasks.storage.log import run_logger

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


class ReadingExportMixin:
    """Adds "Export range…" to a readings ModelAdmin: a form whose POST streams the range."""

    change_list_template = "admin/backup_tasks/reading_change_list.html"

    def get_urls(self):
        export = self.admin_site.admin_view(require_http_methods(["GET", "HEAD", "POST"])(self.export_view))
        return [path("export/", export, name="readings_reading_export"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        # The button carries the range the changelist shows, to start the form from.
        shown = {key: value for key, value in request.GET.items() if key.startswith("timestamp__")}
        export_url = reverse("admin:readings_reading_export") + (f"?{urlencode(shown)}" if shown else "")
        return super().changelist_view(request, {"export_url": export_url, **(extra_context or {})})

    def export_view(self, request):
        """A form for a range in plant time; its POST streams the readings as CSV or JSON."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        zone = conf.plant_zone()
        if request.method == "POST":
            form = ExportForm(request.POST)
            with timezone.override(zone):  # the dates typed are plant time, whoever is logged in
                valid = form.is_valid()
            if valid:
                response = self._stream(request, **form.cleaned_data)
                if response is not None:
                    return response
            else:
                self.message_user(request, "Please correct the range below.", messages.ERROR)
        else:
            start, end = initial_range(request.GET, datetime.now(zone))
            form = ExportForm(initial={"start": start, "end": end})
        context = {
            **self.admin_site.each_context(request),
            "title": "Export readings",
            "opts": self.model._meta,
            "form": form,
            "zone": zone,
        }
        return TemplateResponse(request, "admin/backup_tasks/reading_export.html", context)

    def _stream(self, request, *, start, end, format: str) -> StreamingHttpResponse | None:
        """The export as a streaming download, or None after telling the operator why not."""
        zone = conf.plant_zone()
        try:
            blocks = backup.export_stream(format, start=start, end=end)
        except BackupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        if blocks is None:
            self.message_user(
                request,
                f"No readings from {start.astimezone(zone):%Y-%m-%d %H:%M:%S} "
                f"to {end.astimezone(zone):%Y-%m-%d %H:%M:%S}: nothing to export.",
                messages.WARNING,
            )
            return None
        name = download_name(format, start, end, zone)
        run_logger().info("Readings export by %s: %s", request.user.get_username(), name)
        response = StreamingHttpResponse(blocks, content_type=FORMATS[format])
        response["Content-Disposition"] = content_disposition_header(True, name)
        return response
