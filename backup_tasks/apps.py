from django.apps import AppConfig


class BackupTasksConfig(AppConfig):
    name = "backup_tasks"
    verbose_name = "Backups"

    def ready(self) -> None:
        # Deferred to ready(), as Django asks: importing the checks registers them.
        from backup_tasks import checks  # noqa: F401
