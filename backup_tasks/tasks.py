"""Celery tasks: thin doors over backup_tasks.services.

Words: a job is what a schedule or an operator starts, one Celery task
(the summary's "job"); its steps are operations, each with its own
single-flight lock (queueing.flight) and run record.

Retries, time limits and single-flight live here; the backup work itself is
in the services. Every task returns a JSON summary (files, sizes, rows,
duration) and writes what it did to scheduled_backup.log.

The guide's schedule table, as tasks:
    hourly = complete_backup; daily = daily_backup; weekly = weekly_backup.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.backends.base import DisabledBackend
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from backup_tasks import conf
from backup_tasks.core.errors import BackupError
from backup_tasks.core.units import human_size
from backup_tasks.queueing import flight
from backup_tasks.queueing.headers import REQUESTED_BY_HEADER, SLOT_HEADER
from backup_tasks.services import backup, cleanup, history, restore, status
from backup_tasks.storage.log import run_logger
from backup_tasks.storage.safefile import run_tag

MAX_RETRIES = 3


class TimeLimitReached(BackupError):
    """A run that took longer than BACKUP_TIME_LIMIT allows."""


@dataclass(frozen=True)
class Context:
    """What a step knows about the run: who or what started it."""

    trigger: str  # recorded with every BackupRun: schedule, admin user or task
    scheduled: bool  # sent by beat: exports continue where the last scheduled one ended
    progress: Callable[[str, int, int, float], None] | None = None


@dataclass(frozen=True)
class Step:
    operation: str  # single-flight lock name
    run: Callable[[dict, Context], None]  # does the work and adds its part to the summary
    always: bool = False  # runs even when an earlier step failed (cleanup on a failed day)


def _backup(summary: dict, ctx: Context) -> None:
    results = backup.complete_backup(trigger=ctx.trigger, incremental=ctx.scheduled, progress=ctx.progress)
    summary["files"] += [result.to_dict() for result in results]


def _only(kind: str, **window: str | None) -> Callable[[dict, Context], None]:
    def run(summary: dict, ctx: Context) -> None:
        options = {} if kind == "db" else {"progress": ctx.progress, **_window(window)}
        if kind != "db" and ctx.scheduled and not any(window.values()):
            options["incremental"] = True
        summary["files"].append(backup.SERVICE_OF_KIND[kind](trigger=ctx.trigger, **options).to_dict())
        backup.after_backup()  # thin the plain files and copy offsite, as after a complete backup

    return run


def _window(window: dict[str, str | None]) -> dict:
    """since/until as ISO text (JSON-friendly task arguments) -> aware datetimes in the plant's zone."""
    parsed = {}
    for name, key in (("since", "start"), ("until", "end")):
        if text := window.get(name):
            moment = datetime.fromisoformat(text)
            parsed[key] = moment if moment.tzinfo else moment.replace(tzinfo=conf.plant_zone())
    return parsed


def _cleanup(days_to_keep: int | None) -> Callable[[dict, Context], None]:
    def run(summary: dict, ctx: Context) -> None:
        summary["cleanup"] = cleanup.cleanup_old_backups(
            days_to_keep=days_to_keep, trigger=ctx.trigger
        ).to_dict()

    return run


def _statistics(summary: dict, ctx: Context) -> None:
    summary["statistics"] = status.log_statistics().to_dict()


def _history_retention(summary: dict, ctx: Context) -> None:
    if not history.enabled():
        return
    summary["history_retention"] = []
    for where in (history.LOCAL, history.OFFSITE) if history.offsite() else (history.LOCAL,):
        plan = history.apply_retention(where=where, trigger=ctx.trigger)
        summary["history_retention"].append(
            {"where": where, "forgot": len(plan.forget), "kept": len(plan.keep)}
        )


def _history_drill(summary: dict, ctx: Context) -> None:
    """The newest and one random older restore point weekly; in a month's first week, offsite too."""
    if not history.enabled():
        return
    drills = restore.history_drill(trigger=ctx.trigger)
    if history.offsite() and datetime.now(conf.plant_zone()).day <= 7:
        drills += restore.history_drill(trigger=ctx.trigger, offsite=True)
    summary["history_drill"] = [drill.to_dict() for drill in drills]


def _history_check(summary: dict, ctx: Context) -> None:
    if not history.enabled():
        return
    summary["history_check"] = []
    for where in (history.LOCAL, history.OFFSITE) if history.offsite() else (history.LOCAL,):
        result = history.check(where=where, trigger=ctx.trigger)
        summary["history_check"].append({"where": where, "subset": result.subset, "ok": result.ok})


def _drill(summary: dict, ctx: Context) -> None:
    summary["drill"] = restore.restore_drill(trigger=ctx.trigger).to_dict()


def _header(request, name: str) -> str | None:
    return getattr(request, name, None) or (request.headers or {}).get(name)


class BackupTask(Task):
    """Acknowledged after the work, given back to the queue when a worker dies."""

    acks_late = True
    reject_on_worker_lost = True
    max_retries = MAX_RETRIES
    # Expected failures: logged in one line, not as a worker crash.
    throws = (BackupError,)
    label = "Backup"

    def run_steps(self, steps: list[Step]) -> dict:
        request = self.request
        slot = _header(request, SLOT_HEADER)
        job = _header(request, "periodic_task_name") or self.label
        log = run_logger()
        trigger = _trigger(request, slot, job)
        log.info("%s started (%s, task %s)", job, trigger.logged, request.id)
        began = time.monotonic()
        summary: dict = {"job": job, "task_id": request.id, "slot": slot, "files": [], "skipped": []}
        # Progress is task state: only worth counting readings for when a result backend keeps it.
        progress = None if isinstance(self.backend, DisabledBackend) else self._progress
        ctx = Context(trigger=trigger.recorded, scheduled=slot is not None, progress=progress)
        failure: BackupError | None = None
        for step in steps:
            if failure is not None and not step.always:
                summary["skipped"].append({"operation": step.operation, "reason": "an earlier step failed"})
                continue
            claim = flight.claim(step.operation, key=slot or request.id, token=request.id)
            if isinstance(claim, flight.Skipped):
                log.info("%s: %s skipped, %s", job, step.operation.replace("_", " "), claim.reason)
                summary["skipped"].append({"operation": step.operation, "reason": claim.reason})
                continue
            # An earlier delivery of this task may have died mid-write: it held
            # this lock, so nothing else writes under our tag now.
            cleanup.remove_unfinished_files(tag=request.id)
            tag = run_tag.set(request.id)
            slot_tag = history.current_slot.set(slot)  # tagged on the restore points
            try:
                step.run(summary, ctx)
            except BackupError as exc:
                # A failed backup must not stop the day's cleanup: later
                # "always" steps still run, then the first failure is raised.
                claim.release()
                failure = failure or exc
                continue
            except BaseException as exc:
                claim.release()
                self._fail(exc, job)
                raise
            finally:
                run_tag.reset(tag)
                history.current_slot.reset(slot_tag)
            claim.finish()
        if failure is not None:
            self._fail(failure, job)
            raise failure
        summary["duration_s"] = round(time.monotonic() - began, 3)
        log.info("%s finished in %.2f s%s", job, summary["duration_s"], _outcome(summary))
        return summary

    def _progress(self, label: str, done: int, total: int, elapsed: float) -> None:
        """Report an export's progress as task state, where a result backend keeps it."""
        if not self.request.id:
            return
        if done < total and time.monotonic() - getattr(self, "_last_progress", 0.0) < 1.0:
            return
        self._last_progress = time.monotonic()
        rate = done / elapsed if elapsed > 0 else 0.0
        self.update_state(
            state="PROGRESS",
            meta={
                "operation": label,
                "done": done,
                "total": total,
                "rows_per_s": round(rate),
                "seconds_left": round((total - done) / rate) if rate else None,
            },
        )

    def _fail(self, exc: BaseException, job: str) -> None:
        """Retry a transient failure with backoff; anything else fails now."""
        log = run_logger()
        if isinstance(exc, SoftTimeLimitExceeded):
            limit = (self.request.timelimit or (None, None))[1] or conf.soft_time_limit_seconds()
            stopped = TimeLimitReached(
                f"{job} stopped at its time limit of {limit:g} s and removed its unfinished files: "
                "set BACKUP_TIME_LIMIT higher if backups need longer."
            )
            log.error("%s", stopped)
            raise stopped from None
        if isinstance(exc, BackupError) and not exc.permanent and self.request.retries < self.max_retries:
            delay = conf.retry_delay_seconds() * 2**self.request.retries
            log.warning(
                "%s will be retried in %d s (retry %d of %d): %s",
                job,
                delay,
                self.request.retries + 1,
                self.max_retries,
                exc,
            )
            raise self.retry(exc=exc, countdown=delay)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # After a hard time limit the worker killed the run in the middle of
        # a file: remove what it left (its soft limit cleans up by itself).
        if isinstance(exc, TimeLimitExceeded | WorkerLostError):
            cleanup.remove_unfinished_files(tag=task_id)


def _outcome(summary: dict) -> str:
    parts = []
    if files := summary["files"]:
        size = human_size(sum(f["size_bytes"] for f in files))
        parts.append(f"{len(files)} file{'s' if len(files) > 1 else ''} ({size})")
    if skipped := summary["skipped"]:
        parts.append(f"skipped {', '.join(s['operation'].replace('_', ' ') for s in skipped)}")
    return ": " + "; ".join(parts) if parts else ""


@dataclass(frozen=True)
class Trigger:
    """Who or what started a run: as the run history records it, and as the log says it."""

    recorded: str
    logged: str


def _trigger(request, slot: str | None, job: str) -> Trigger:
    if slot:
        return Trigger(f"schedule: {job} ({slot})", f"scheduled for {slot}")
    if who := _header(request, REQUESTED_BY_HEADER):
        return Trigger(f"admin: {who}", f"requested in admin by {who}")
    if _header(request, "periodic_task_name"):
        return Trigger(f"admin: ran the schedule {job}", "run from admin")
    return Trigger(f"task: {job}", "requested")


@shared_task(base=BackupTask, bind=True, label="Complete backup")
def complete_backup(self) -> dict:
    """Database snapshot, CSV and JSON export under one time stamp (the hourly job)."""
    return self.run_steps([Step("complete_backup", _backup)])


@shared_task(base=BackupTask, bind=True, label="Database backup")
def snapshot_database(self) -> dict:
    return self.run_steps([Step("snapshot_database", _only("db"))])


@shared_task(base=BackupTask, bind=True, label="CSV export")
def export_csv(self, since: str | None = None, until: str | None = None) -> dict:
    """All readings, or those from `since` up to `until` (ISO date or date-time, plant time when naive)."""
    return self.run_steps([Step("export_csv", _only("csv", since=since, until=until))])


@shared_task(base=BackupTask, bind=True, label="JSON export")
def export_json(self, since: str | None = None, until: str | None = None) -> dict:
    """All readings, or those from `since` up to `until` (ISO date or date-time, plant time when naive)."""
    return self.run_steps([Step("export_json", _only("json", since=since, until=until))])


@shared_task(base=BackupTask, bind=True, label="Cleanup")
def cleanup_old_backups(self, days_to_keep: int | None = None) -> dict:
    return self.run_steps([Step("cleanup_old_backups", _cleanup(days_to_keep))])


@shared_task(base=BackupTask, bind=True, label="Daily backup and cleanup")
def daily_backup(self) -> dict:
    """The guide's daily job: complete backup, then cleanup of old backups."""
    return self.run_steps(
        [
            Step("complete_backup", _backup),
            Step("cleanup_old_backups", _cleanup(None), always=True),
            # Forget and prune after the backup, never beside it (the history's own lock too).
            Step("history_retention", _history_retention, always=True),
        ]
    )


@shared_task(base=BackupTask, bind=True, label="Weekly backup and statistics")
def weekly_backup(self) -> dict:
    """The guide's weekly job: complete backup, a restore drill, then the status report in the log."""
    return self.run_steps(
        [
            Step("complete_backup", _backup),
            Step("restore_drill", _drill),
            Step("history_drill", _history_drill),
            Step("history_check", _history_check, always=True),
            Step("statistics", _statistics, always=True),
        ]
    )


@shared_task(base=BackupTask, bind=True, label="Restore drill")
def restore_drill(self) -> dict:
    """Restore the newest snapshot into a scratch copy and check it against its record."""
    return self.run_steps([Step("restore_drill", _drill)])
