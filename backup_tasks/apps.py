from django.apps import AppConfig


class BackupTasksConfig(AppConfig):
    name = "backup_tasks"
    verbose_name = "Backups"

    def ready(self) -> None:
        from backup_tasks import checks  # noqa: F401  (registers the system checks)
