from django.apps import AppConfig


class BackupTasksConfig(AppConfig):
    name = "backup_tasks"
    verbose_name = "Backups"

    def ready(self) -> None:
        # Registers the system checks, and the lockout log of admin logins.
        from backup_tasks import checks, logins  # noqa: F401
