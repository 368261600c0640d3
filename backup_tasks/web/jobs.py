"""The jobs an operator can start now, from the schedules page or the dashboard.

Starting a job only enqueues its Celery task; the worker does the work. With
the task queue down the answer is a message saying so, never an error page.

The tasks and the Redis client load at the first job, not with every
manage.py command: Django imports the admin, and so this module, at start-up.
"""

from dataclasses import dataclass

from django.contrib import messages

RUN_PERMISSION = "backup_tasks.run_backup"


@dataclass(frozen=True)
class Job:
    key: str
    task_name: str  # a task in backup_tasks.tasks
    button: str  # what the operator clicks
    label: str  # what was queued, in the answer
    what: str  # what could not be queued, in the answer

    @property
    def task(self):
        from backup_tasks import tasks

        return getattr(tasks, self.task_name)


JOBS = {
    job.key: job
    for job in (
        Job("complete_backup", "complete_backup", "Run complete backup now", "Complete backup", "the backup"),
        Job("export_csv", "export_csv", "Export CSV now", "CSV export", "the CSV export"),
        Job("export_json", "export_json", "Export JSON now", "JSON export", "the JSON export"),
        Job("cleanup", "cleanup_old_backups", "Clean up old backups now", "Cleanup", "the cleanup"),
        Job("restore_drill", "restore_drill", "Run restore drill now", "Restore drill", "the restore drill"),
    )
}


def enqueue(job: Job, username: str) -> tuple[int, str]:
    """Queue a job for the worker; the message level and text to show the operator."""
    from backup_tasks import tasks
    from backup_tasks.queueing import broker

    try:
        result = job.task.apply_async(headers={tasks.REQUESTED_BY_HEADER: username})
    except broker.QUEUE_ERRORS as exc:
        return messages.ERROR, unreachable_message(job.what, exc)
    return messages.SUCCESS, f"{job.label} queued (task id {result.id})."


def unreachable_message(what: str, exc: BaseException) -> str:
    from backup_tasks.queueing import broker

    return f"Could not queue {what}: {broker.unreachable(exc)}. Start Redis, or check CELERY_BROKER_URL."
