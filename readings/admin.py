"""The readings in admin: a list that stays fast over a year of them.

The range export (backup_tasks.web.readings_export) attaches itself from the
backup app: readings knows nothing of backups.
"""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from readings.dates import filtered_span
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
    change_list_template = "admin/readings/reading/change_list.html"

    def get_changelist(self, request, **kwargs):
        return ReadingChangeList
