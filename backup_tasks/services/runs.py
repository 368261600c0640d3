"""Run history: every operation, through every door, leaves one BackupRun.

A run is recorded only in a database that exists and opens: looking for a
missing database must not create an empty one. Failures are logged at ERROR
and mailed to ADMINS (when any are configured).
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.mail import mail_admins
from django.db import DatabaseError
from django.utils import timezone

from backup_tasks import conf
from backup_tasks.core import layout, processes
from backup_tasks.core.errors import BackupError
from backup_tasks.engines import get_engine
from backup_tasks.models import BackupRun
from backup_tasks.storage.log import run_logger
from backup_tasks.storage.safefile import run_tag

ABANDONED = (
    "Abandoned: the process running it stopped before it finished "
    "(worker killed or machine restarted); the run left no file under a final name."
)

# A running run names its process, so the next run can tell it was killed.
PROCESS = "process"
ENDED = (
    "Abandoned: its process ({process}) ended before the run finished (killed, or the machine "
    "restarted); the run left no file under a final name."
)


@dataclass
class Run:
    """What an operation reports about itself while it runs."""

    kind: str
    trigger: str
    record: BackupRun | None = None
    status: str = BackupRun.Status.SUCCEEDED
    file: str = ""
    size_bytes: int | None = None
    rows: int | None = None
    newest_reading: datetime | None = None
    sha256: str = ""
    error: str = ""
    details: dict = field(default_factory=dict)
    duration_s: float = 0.0
    # The Celery task running this operation ("" from the command line).
    task_id: str = field(default_factory=run_tag.get)

    def tags(self) -> dict:
        return {BackupRun.TASK: self.task_id} if self.task_id else {}


def _database_ready(alias: str) -> bool:
    try:
        get_engine(alias).check_available()
    except BackupError:
        return False
    return True


def mark_abandoned_runs(*, alias: str = "default", now: datetime | None = None) -> int:
    """Mark runs still 'running' after the longest a run may take as failed."""
    cutoff = (now or timezone.now()) - timedelta(seconds=conf.run_timeout_seconds())
    return (
        BackupRun.objects.using(alias)
        .filter(status=BackupRun.Status.RUNNING, started_at__lt=cutoff)
        .update(status=BackupRun.Status.FAILED, error=ABANDONED, finished_at=timezone.now())
    )


def mark_dead_runs(*, alias: str = "default") -> int:
    """Mark runs still 'running' whose process is known to have ended (killed) as failed."""
    marked = 0
    running = BackupRun.objects.using(alias).filter(status=BackupRun.Status.RUNNING)
    for pk, details in running.values_list("pk", "details"):
        owner = details.get(PROCESS) if isinstance(details, dict) else None
        if owner and processes.is_dead(owner):
            marked += running.filter(pk=pk).update(
                status=BackupRun.Status.FAILED,
                error=ENDED.format(process=processes.describe(owner)),
                finished_at=timezone.now(),
            )
    return marked


def _start(run: Run, alias: str) -> None:
    if not _database_ready(alias):
        return
    try:
        mark_abandoned_runs(alias=alias)
        mark_dead_runs(alias=alias)
        run.record = BackupRun.objects.using(alias).create(
            kind=run.kind,
            trigger=run.trigger[:200],
            details={PROCESS: processes.this_process(), **run.tags()},
        )
    except DatabaseError as exc:
        _not_recorded(run, alias, exc)


def _finish(run: Run, alias: str) -> None:
    record = run.record
    if record is None:
        return
    record.status = run.status
    record.finished_at = timezone.now()
    record.duration_s = round(run.duration_s, 3)
    record.file = run.file
    record.size_bytes = run.size_bytes
    record.rows = run.rows
    record.newest_reading = run.newest_reading
    record.sha256 = run.sha256
    record.error = run.error
    record.details = {**run.details, **run.tags()}
    try:
        record.save(using=alias)
    except DatabaseError as exc:
        _not_recorded(run, alias, exc)


def _not_recorded(run: Run, alias: str, exc: DatabaseError) -> None:
    run_logger().warning(
        "Could not record the %s run in the database: %s", run.kind, get_engine(alias).explain(exc)
    )


def notify_failure(run: Run) -> None:
    label = BackupRun.Kind(run.kind).label
    run_logger().error("%s failed (%s): %s", label, run.trigger or "no trigger", run.error)
    logging.getLogger("backup_tasks.alerts").error("%s failed: %s", label, run.error)
    mail_admins(
        f"{label} failed",
        f"{label} failed.\n\nTrigger: {run.trigger or '-'}\nError: {run.error}\n\nLog: {layout.log_path()}\n",
        fail_silently=True,
    )


@contextmanager
def recorded(
    kind: str, *, trigger: str = "", alias: str = "default", when_finished: bool = False
) -> Iterator[Run]:
    """Record one run of `kind`; the body fills in the Run it is given.

    when_finished: write nothing until the run has ended (a restore replaces
    the run table while it works, and would overwrite an earlier record).
    """
    run = Run(kind=kind, trigger=trigger)
    started_at = timezone.now()
    if not when_finished:
        _start(run, alias)
    began = time.monotonic()

    def finish() -> None:
        run.duration_s = time.monotonic() - began
        if when_finished and _database_ready(alias):
            run.record = BackupRun(kind=run.kind, trigger=run.trigger[:200], started_at=started_at)
        _finish(run, alias)

    try:
        yield run
    except BaseException as exc:
        run.status = BackupRun.Status.FAILED
        run.error = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        finish()
        notify_failure(run)
        raise
    finish()
    if run.status == BackupRun.Status.FAILED:
        notify_failure(run)
