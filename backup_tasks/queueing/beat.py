"""django-celery-beat's DatabaseScheduler, mended for a plant that must not miss a backup.

CELERY_BEAT_SCHEDULER points here. Compared with upstream:

- Daylight saving time (upstream #134, #194, #604): crontabs are computed in
  real (UTC) time from wall-clock times in their zone, by core.crontab.
  Upstream skips the repeated hour of an hourly job.
- Every enabled task is loaded: upstream keeps only crontabs within two hours
  of now, with zone offsets taken from a January date (an hour off in summer).
- Each message carries its schedule slot, so the worker's single-flight lock
  gives one backup per slot (see queueing.flight).
- One beat sends: a second one (two `worker -B` by mistake) stands by and
  takes over within BACKUP_LOCK_TTL seconds when the first stops.
- A run that cannot be queued (Redis down) is written to scheduled_backup.log
  as missed; Celery does not make it up, and the next run follows the schedule.
"""

import logging
import os
import socket
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import redis
from celery import schedules
from celery.beat import SchedulingError
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry
from django_celery_beat.tzcrontab import TzAwareCrontab

from backup_tasks import conf
from backup_tasks.core.crontab import MAX_DAYS, Crontab, interval_run_after
from backup_tasks.core.units import moment_text
from backup_tasks.queueing import broker, flight
from backup_tasks.queueing.headers import SLOT_HEADER
from backup_tasks.storage.log import run_logger

# Celery's beat log (the worker's console); scheduled_backup.log gets only
# what an operator needs: missed runs and a second beat.
logger = logging.getLogger("celery.beat")


def now() -> datetime:
    """The scheduler's clock: every schedule decision asks this one function."""
    return datetime.now(UTC)


def _clock() -> datetime:
    return now()  # Looked up at call time, so a test can fix the clock.


class PlantCrontab(TzAwareCrontab):
    """A crontab in its own zone that runs each wall-clock time once across DST changes."""

    def nowfunc(self) -> datetime:
        return _clock().astimezone(self.tz)

    def next_run_after(self, moment: datetime) -> datetime | None:
        """The first run strictly after `moment`, or None if the crontab never matches."""
        return Crontab.of(self, self.tz).next_run_after(moment)

    # All arithmetic in UTC: Python compares and subtracts two times of the
    # same zone by their wall clocks, which is wrong across a DST change.

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        following = self.next_run_after(last_run_at)
        return _utc(following) - _utc(self.now()) if following else timedelta(days=MAX_DAYS)

    def is_due(self, last_run_at: datetime) -> schedules.schedstate:
        current = _utc(self.now())
        due_at = self.next_run_after(last_run_at)
        if due_at is None:
            return schedules.schedstate(False, 24 * 3600)
        if _utc(due_at) <= current:
            following = self.next_run_after(current)
            wait = (_utc(following) - current).total_seconds() if following else 24 * 3600
            return schedules.schedstate(True, wait)
        return schedules.schedstate(False, (_utc(due_at) - current).total_seconds())


class PlantEntry(ModelEntry):
    """A periodic task from the database, on the scheduler's clock and DST-safe crontabs."""

    def __init__(self, model, app=None) -> None:
        super().__init__(model, app=app)
        if model.crontab is not None:
            crontab = model.crontab
            self.schedule = PlantCrontab(
                minute=crontab.minute,
                hour=crontab.hour,
                day_of_week=crontab.day_of_week,
                day_of_month=crontab.day_of_month,
                month_of_year=crontab.month_of_year,
                tz=crontab.timezone,
                app=self.app,
            )
        elif isinstance(self.schedule, schedules.BaseSchedule):
            self.schedule.nowfun = _clock

    def _default_now(self) -> datetime:
        return _clock().astimezone(self.app.timezone)

    def default_now(self) -> datetime:
        return self._default_now()

    def due_at(self) -> datetime | None:
        """When this entry's current run was due: its schedule slot."""
        last = self.last_run_at
        return self.due_after(last if last.tzinfo else last.replace(tzinfo=UTC))

    def due_after(self, moment: datetime) -> datetime | None:
        """When the first run after a run at `moment` is due."""
        if isinstance(self.schedule, PlantCrontab):
            return self.schedule.next_run_after(moment)
        if isinstance(self.schedule, schedules.schedule):
            return interval_run_after(moment, self.schedule.run_every, conf.plant_zone())
        return None


class PlantScheduler(DatabaseScheduler):
    Entry = PlantEntry

    def __init__(self, *args, **kwargs) -> None:
        self._leading: bool | None = None
        self._token = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        super().__init__(*args, **kwargs)

    def enabled_models_qs(self):
        return self.Model.objects.enabled()

    # -- one beat sends ---------------------------------------------------

    def tick(self, *args, **kwargs) -> float:
        if not self._lead():
            return min(self.max_interval, conf.lock_ttl_seconds() / 3)
        return super().tick(*args, **kwargs)

    def _lead(self) -> bool:
        key = f"{flight.PREFIX}:beat"
        ttl_ms = conf.lock_ttl_seconds() * 1000
        try:
            r = broker.client()
            leading = bool(
                r.eval(flight.RENEW, 1, key, self._token, ttl_ms)
                or r.set(key, self._token, nx=True, px=ttl_ms)
            )
            holder = None if leading else r.get(key)
        except redis.RedisError:
            # Redis is down: keep the role we had; a leader goes on and
            # writes down the runs it cannot send.
            return self._leading is not False
        if leading and self._leading is False:
            logger.warning("beat: the other beat stopped; this one sends the schedule now")
            run_logger().info("This beat (%s) now sends the schedule", self._token)
            # Start from the run times the other beat saved.
            self._initial_read = True
            self._heap = None
        elif not leading and self._leading is not False:
            message = (
                "Another beat (%s) already sends the schedule: this one (%s) stands by. "
                "Run exactly one beat: 'celery -A smartAquarium worker -B' on one machine only."
            )
            logger.warning(message, holder, self._token)
            run_logger().warning(message, holder, self._token)
        self._leading = leading
        return leading

    def close(self) -> None:
        super().close()
        if self._leading:
            with suppress(redis.RedisError):  # If Redis is down, it expires by itself.
                broker.client().eval(flight.RELEASE, 1, f"{flight.PREFIX}:beat", self._token)

    # -- slots and missed runs --------------------------------------------

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        due = entry.due_at()
        if due is not None:
            headers = {**entry.options.get("headers", {}), SLOT_HEADER: due.isoformat(sep=" ")}
            entry.options = {**entry.options, "headers": headers}
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def apply_entry(self, entry, producer=None) -> None:
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            result = self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            message = (
                "Missed %s due at %s: %s. It was not queued and will not be made up; the next run is at %s."
            )
            cause = exc.__context__ if isinstance(exc, SchedulingError) and exc.__context__ else exc
            reason = (
                broker.unreachable(cause)
                if isinstance(cause, broker.QUEUE_ERRORS)
                else f"it could not be sent ({cause})"
            )
            args = (entry.name, _when(entry.due_at()), reason, _when(entry.due_after(entry.default_now())))
            logger.error(message, *args)
            run_logger().error(message, *args)
        else:
            logger.debug("%s sent. id->%s", entry.task, getattr(result, "id", None))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _when(moment: datetime | None) -> str:
    return moment_text(moment, conf.plant_zone(), with_zone=True)
