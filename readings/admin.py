"""The readings in admin: a list that stays fast over a year of them.

The range export (backup_tasks.web.readings_export) attaches itself from the
backup app: readings knows nothing of backups.
"""

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from readings.models import Reading


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows, so a page of a year's readings costs no full scan."""

    CAP = 100_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


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
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100
