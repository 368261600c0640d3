"""Admin: the backup schedules, and actions that queue a backup, export or cleanup now;
the readings' range export joins the readings admin from here.

The actions only enqueue Celery tasks; the worker does the work. With the
task queue down they answer at once with a message, never an error page.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponseRedirect
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from backup_tasks.models import BackupRun, BackupSchedule
from backup_tasks.web import jobs
from backup_tasks.web.readings_export import ReadingExportMixin
from readings.admin import ReadingAdmin
from readings.models import Reading


def queue(modeladmin: admin.ModelAdmin, request, key: str) -> None:
    """Enqueue one of the plant jobs and tell the operator its task id, or why it could not be queued."""
    level, message = jobs.enqueue(jobs.JOBS[key], request.user.get_username())
    modeladmin.message_user(request, message, level)


class SafePeriodicTaskAdmin(PeriodicTaskAdmin):
    """django-celery-beat's admin, whose "Run selected tasks" answers a message when Redis is down."""

    @admin.action(description="Run selected tasks")
    def run_tasks(self, request, queryset):
        # Deferred: Django imports the admin with every manage.py command; Redis loads at the first action.
        from backup_tasks.queueing import broker

        try:
            return super().run_tasks(request, queryset)
        except broker.QUEUE_ERRORS as exc:
            self.message_user(request, jobs.unreachable_message("the selected tasks", exc), messages.ERROR)
            return None


# The admin index links to the backup dashboard for those who may see it.
admin.site.index_template = "admin/backup_tasks/index.html"

admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, SafePeriodicTaskAdmin)


class ReadingWithExportAdmin(ReadingExportMixin, ReadingAdmin):
    """The readings app's own admin, with the range export of the backup app."""


# Importing readings.admin above registered its ReadingAdmin; the export joins it here.
admin.site.unregister(Reading)
admin.site.register(Reading, ReadingWithExportAdmin)


@admin.register(BackupSchedule)
class BackupScheduleAdmin(SafePeriodicTaskAdmin):
    """Backups › Backup schedules: edit when the jobs run, or run one now."""

    list_display = ("name", "enabled", "schedule_in_words", "last_run_at", "total_run_count")
    list_filter = ("enabled",)
    date_hierarchy = None
    actions = (
        "run_complete_backup",
        "export_csv_now",
        "export_json_now",
        "cleanup_now",
        "restore_drill_now",
        "run_tasks",
        "enable_tasks",
        "disable_tasks",
    )
    # These act on the plant, not on the rows: they need no selection.
    PLANT_ACTIONS = (
        "run_complete_backup",
        "export_csv_now",
        "export_json_now",
        "cleanup_now",
        "restore_drill_now",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).ours()

    @admin.display(description="When")
    def schedule_in_words(self, obj) -> str:
        if obj.crontab:
            return obj.crontab.human_readable
        return str(obj.scheduler or "no schedule")

    def has_run_permission(self, request) -> bool:
        return request.user.has_perm(jobs.RUN_PERMISSION)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or self.has_run_permission(request)

    @admin.action(description="Run complete backup now", permissions=["run"])
    def run_complete_backup(self, request, queryset):
        queue(self, request, "complete_backup")

    @admin.action(description="Export CSV now", permissions=["run"])
    def export_csv_now(self, request, queryset):
        queue(self, request, "export_csv")

    @admin.action(description="Export JSON now", permissions=["run"])
    def export_json_now(self, request, queryset):
        queue(self, request, "export_json")

    @admin.action(description="Clean up old backups now", permissions=["run"])
    def cleanup_now(self, request, queryset):
        queue(self, request, "cleanup")

    @admin.action(description="Run restore drill now", permissions=["run"])
    def restore_drill_now(self, request, queryset):
        queue(self, request, "restore_drill")

    @admin.action(description="Run selected schedules now", permissions=["run"])
    def run_tasks(self, request, queryset):
        return super().run_tasks(request, queryset)

    def changelist_view(self, request, extra_context=None):
        posted = request.method == "POST" and "index" in request.POST
        if posted and not request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            actions = self.get_actions(request)
            try:
                name = request.POST.getlist("action")[int(request.POST.get("index", 0))]
            except (IndexError, ValueError):
                name = None
            if name in self.PLANT_ACTIONS and name in actions:
                actions[name][0](self, request, self.get_queryset(request))
                return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)


@admin.register(BackupRun)
class BackupRunAdmin(admin.ModelAdmin):
    """Backups › Backup runs: what ran, through which door, and how it ended. Read-only."""

    list_display = (
        "started_at",
        "kind",
        "status_badge",
        "trigger",
        "file_name",
        "size",
        "rows",
        "duration_s",
    )
    list_filter = ("status", "kind", "started_at")
    search_fields = ("file", "trigger", "error")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-id")
    list_per_page = 50

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: BackupRun) -> str:
        colours = {"failed": "#ba2121", "succeeded": "#2e7d32", "running": "#1565c0", "skipped": "#777"}
        return format_html(
            '<strong style="color:{}">{}</strong>{}',
            colours.get(obj.status, "#000"),
            obj.get_status_display().upper() if obj.status == "failed" else obj.get_status_display(),
            format_html(": {}", obj.error[:120]) if obj.error else "",
        )

    @admin.display(description="File", ordering="file")
    def file_name(self, obj: BackupRun) -> str:
        return obj.file_name

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: BackupRun) -> str:
        return obj.size_text
