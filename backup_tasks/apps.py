from django.apps import AppConfig


class BackupTasksConfig(AppConfig):
    name = "backup_tasks"
    verbose_name = "Backups"

    def ready(self) -> None:
        # Deferred to ready(), as Django asks: importing them registers the system
        # checks, and the lockout log of admin logins.
        from backup_tasks import checks  # noqa: F401
        from backup_tasks.web import logins  # noqa: F401
