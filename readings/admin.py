from datetime import datetime

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_http_methods

from backup_tasks import conf, services
from backup_tasks.errors import BackupError
from backup_tasks.log import run_logger
from readings.dates import filtered_span
from readings.export import FORMATS, ExportForm, download_name, initial_range
from readings.models import Reading


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows, so a page of a year's readings costs no full scan."""

    CAP = 100_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


class ReadingChangeList(ChangeList):
    """The readings changelist, kept to ranges of the timestamp index at any number of readings."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        # What the date navigation (readings.dates) searches within.
        self.timestamp_span = filtered_span(lookup_params)
        return lookup_params

    def get_ordering_field(self, field_name):
        # Only the timestamp is indexed: a page sorted by another column sorts every reading.
        return super().get_ordering_field(field_name) if field_name == "timestamp" else None

    def get_ordering(self, request, queryset):
        # Ties broken by id in the timestamp's direction, as the index holds them: Django's
        # "-pk" after an oldest-first timestamp would make SQLite sort instead of walk it.
        newest_first = super().get_ordering(request, queryset)[0].startswith("-")
        return ["-timestamp", "-pk"] if newest_first else ["timestamp", "pk"]


@admin.register(Reading)
class ReadingAdmin(admin.ModelAdmin):
    list_display = (
        "timestamp",
        "water_temperature",
        "air_temperature",
        "humidity",
        "setpoint",
        "pid_output",
    )
    date_hierarchy = "timestamp"
    list_filter = ("timestamp",)
    ordering = ("-timestamp",)
    sortable_by = ("timestamp",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    # Filter counts would count every reading once per choice.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100

    def get_changelist(self, request, **kwargs):
        return ReadingChangeList

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
        return TemplateResponse(request, "admin/readings/reading/export.html", context)

    def _stream(self, request, *, start, end, format: str) -> StreamingHttpResponse | None:
        """The export as a streaming download, or None after telling the operator why not."""
        zone = conf.plant_zone()
        try:
            blocks = services.export_stream(format, start=start, end=end)
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
