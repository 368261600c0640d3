"""The jobs an operator can start now, from the schedules page or the dashboard.

A job is one Celery task, sent by its registered name (the web server never
imports the tasks, and need not have them registered): starting one only
enqueues it, and the worker does the work. With the task queue down
the answer is a message saying so, never an error page.
"""

from dataclasses import dataclass

from django.contrib import messages

from backup_tasks.queueing.headers import REQUESTED_BY_HEADER

RUN_PERMISSION = "backup_tasks.run_backup"


@dataclass(frozen=True)
class Job:
    key: str
    task_name: str  # registered by backup_tasks.tasks
    button: str  # what the operator clicks
    label: str  # what was queued, in the answer
    what: str  # what could not be queued, in the answer


JOBS = {
    job.key: job
    for job in (
        Job(
            "complete_backup",
            "backup_tasks.tasks.complete_backup",
            "Run complete backup now",
            "Complete backup",
            "the backup",
        ),
        Job("export_csv", "backup_tasks.tasks.export_csv", "Export CSV now", "CSV export", "the CSV export"),
        Job(
            "export_json",
            "backup_tasks.tasks.export_json",
            "Export JSON now",
            "JSON export",
            "the JSON export",
        ),
        Job(
            "cleanup",
            "backup_tasks.tasks.cleanup_old_backups",
            "Clean up old backups now",
            "Cleanup",
            "the cleanup",
        ),
        Job(
            "restore_drill",
            "backup_tasks.tasks.restore_drill",
            "Run restore drill now",
            "Restore drill",
            "the restore drill",
        ),
    )
}


def enqueue(job: Job, username: str) -> tuple[int, str]:
    """Queue a job for the worker; the message level and text to show the operator."""
    # Deferred: Django imports the admin, and so this module, with every manage.py
    # command; Celery and the Redis client load at the first job instead.
    from celery import current_app

    from backup_tasks.queueing import broker

    try:
        result = current_app.send_task(job.task_name, headers={REQUESTED_BY_HEADER: username})
    except broker.QUEUE_ERRORS as exc:
        return messages.ERROR, unreachable_message(job.what, exc)
    return messages.SUCCESS, f"{job.label} queued (task id {result.id})."


def unreachable_message(what: str, exc: BaseException) -> str:
    from backup_tasks.queueing import broker  # deferred with the Redis client, as in enqueue()

    return f"Could not queue {what}: {broker.unreachable(exc)}. Start Redis, or check CELERY_BROKER_URL."
