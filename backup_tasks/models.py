from django_celery_beat.models import PeriodicTask
from django_celery_beat.querysets import PeriodicTaskQuerySet


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
