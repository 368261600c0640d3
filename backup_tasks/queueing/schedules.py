"""The guide's backup schedule, written once into django-celery-beat's tables.

The data migration 0001_default_schedules calls install_default_schedules()
when the database is created. Nothing calls it again: a re-run of `migrate`,
a restart or a deploy never overwrites what an operator changed in admin.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    task: str
    description: str
    minute: str
    hour: str
    day_of_week: str


DEFAULT_SCHEDULES = (
    DefaultSchedule(
        name="Hourly backup",
        task="backup_tasks.tasks.complete_backup",
        description="Complete backup: database snapshot, CSV and JSON export.",
        # At minute 0 of every hour.
        minute="0",
        hour="*",
        day_of_week="*",
    ),
    DefaultSchedule(
        name="Daily backup and cleanup",
        task="backup_tasks.tasks.daily_backup",
        description="Complete backup, then removal of backups older than BACKUP_KEEP_DAYS days.",
        # Every day at 02:00.
        minute="0",
        hour="2",
        day_of_week="*",
    ),
    DefaultSchedule(
        name="Weekly backup and statistics",
        task="backup_tasks.tasks.weekly_backup",
        description="Complete backup, then the BACKUP STATUS report written to scheduled_backup.log.",
        # Sundays at 03:00.
        minute="0",
        hour="3",
        day_of_week="0",
    ),
)


def install_default_schedules(periodic_task_model, crontab_model, time_zone: str) -> list[str]:
    """Create each default schedule whose name is not taken yet; return the names created.

    Takes the models as arguments so that a migration can pass its historical ones.
    """
    created = []
    for default in DEFAULT_SCHEDULES:
        if periodic_task_model.objects.filter(name=default.name).exists():
            continue
        crontab, _ = crontab_model.objects.get_or_create(
            minute=default.minute,
            hour=default.hour,
            day_of_week=default.day_of_week,
            day_of_month="*",
            month_of_year="*",
            timezone=time_zone,
        )
        periodic_task_model.objects.create(
            name=default.name,
            task=default.task,
            description=default.description,
            crontab=crontab,
            enabled=True,
        )
        created.append(default.name)
    return created
