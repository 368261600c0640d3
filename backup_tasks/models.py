from pathlib import Path

from django.db import models
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.querysets import PeriodicTaskQuerySet

from backup_tasks.core.units import human_size


class BackupRunQuerySet(models.QuerySet):
    def of_kind(self, kind: str):
        return self.filter(kind=kind)

    def succeeded(self):
        return self.filter(status=BackupRun.Status.SUCCEEDED)

    def finished(self):
        return self.exclude(status=BackupRun.Status.RUNNING)

    def last_success(self, kind: str):
        return self.of_kind(kind).succeeded().order_by("-started_at", "-id").first()

    def last_failure(self, kind: str):
        return (
            self.of_kind(kind).filter(status=BackupRun.Status.FAILED).order_by("-started_at", "-id").first()
        )

    def last_success_for(self, path: Path | str):
        """The newest successful run that wrote this file (a snapshot or an export), matched by name."""
        return (
            self.succeeded()
            .filter(kind__in=BackupRun.FILE_KINDS, file__endswith=f"/{Path(path).name}")
            .exclude(rows=None)
            .order_by("-started_at", "-id")
            .first()
        )

    def last_finished(self, kind: str):
        return (
            self.of_kind(kind)
            .finished()
            .exclude(status=BackupRun.Status.SKIPPED)
            .order_by("-started_at", "-id")
            .first()
        )


class BackupRun(models.Model):
    """One run of one operation, through any door (command, task, admin)."""

    class Kind(models.TextChoices):
        SNAPSHOT = "snapshot", "Database snapshot"
        CSV = "csv", "CSV export"
        JSON = "json", "JSON export"
        CLEANUP = "cleanup", "Cleanup"
        VERIFY = "verify", "Verification"
        RESTORE = "restore", "Restore"
        DRILL = "drill", "Restore drill"
        HISTORY_CHECK = "repo_check", "History check"
        HISTORY_RETENTION = "retention", "History retention"

    # Runs of these kinds write a backup file.
    FILE_KINDS = (Kind.SNAPSHOT, Kind.CSV, Kind.JSON)

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    trigger = models.CharField(
        max_length=200, blank=True, help_text="schedule, admin user or command line that started it"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True, verbose_name="duration (s)")
    file = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    rows = models.BigIntegerField(null=True, blank=True, help_text="readings in the file")
    newest_reading = models.DateTimeField(null=True, blank=True, help_text="newest reading in the file")
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    # The key in details naming the Celery task that made the run (none from the command line).
    TASK = "task"

    objects = BackupRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["kind", "status", "-started_at"], name="backuprun_kind_status")]
        permissions = [
            ("view_dashboard", "Can view the backup dashboard"),
            ("download_backup", "Can download backup files"),
        ]

    def __str__(self) -> str:
        when = timezone.localtime(self.started_at).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self.get_kind_display()} {when}: {self.get_status_display()}"

    @property
    def file_name(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    @property
    def task_id(self) -> str:
        return self.details.get(self.TASK, "") if isinstance(self.details, dict) else ""

    @property
    def size_text(self) -> str:
        return "" if self.size_bytes is None else human_size(self.size_bytes)


class BackupScheduleQuerySet(PeriodicTaskQuerySet):
    def ours(self):
        return self.filter(task__startswith="backup_tasks.tasks.")


class BackupSchedule(PeriodicTask):
    """The backup jobs' periodic tasks, as operators see them under Backups in admin.

    A proxy (no table of its own) that carries our permission to run backups now.
    """

    objects = BackupScheduleQuerySet.as_manager()

    class Meta:
        proxy = True
        verbose_name = "backup schedule"
        verbose_name_plural = "backup schedules"
        permissions = [("run_backup", "Can run backups, exports and cleanup now")]
