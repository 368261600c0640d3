"""Crontab arithmetic in the plant's zone that stays right across daylight saving time.

A crontab names wall-clock times in its zone; runs happen at real (UTC) moments.
A time skipped when clocks go forward runs shifted forward by the gap (02:00
becomes 03:00), once; a time that happens twice when clocks go back runs once,
at its first occurrence, except when the hour field is '*': then each real hour
runs. The scheduler (queueing.beat) and the status report both ask this module.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

# No zone moves its clocks by more than this at once.
FOLD_MARGIN = timedelta(hours=3)
# A crontab that matches no day in this many days never runs (e.g. 30 February).
MAX_DAYS = 4 * 366 + 7


@dataclass(frozen=True)
class Crontab:
    """A crontab's expanded fields (sets of numbers, days of the week 0 = Sunday) and its zone."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_week: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    zone: tzinfo

    @classmethod
    def of(cls, schedule, zone: tzinfo) -> "Crontab":
        """From a Celery crontab, whose fields are already expanded into sets."""
        return cls(
            frozenset(schedule.minute),
            frozenset(schedule.hour),
            frozenset(schedule.day_of_week),
            frozenset(schedule.day_of_month),
            frozenset(schedule.month_of_year),
            zone,
        )

    def next_run_after(self, moment: datetime) -> datetime | None:
        """The first run strictly after `moment`, in the crontab's zone; None if it never matches."""
        after = moment.astimezone(UTC)
        # Start a little before `moment` in wall time: after clocks go back,
        # an earlier wall time can still lie ahead in real time.
        start = after.astimezone(self.zone).replace(tzinfo=None) - FOLD_MARGIN
        best: datetime | None = None
        best_wall: datetime | None = None
        for wall in self._walls_from(start):
            if best_wall is not None and wall > best_wall + FOLD_MARGIN:
                break
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best):
                    best, best_wall = instant, wall
        return best.astimezone(self.zone) if best else None

    def _walls_from(self, start: datetime) -> Iterator[datetime]:
        """Matching wall-clock times from `start` on, in wall-clock order."""
        day = start.date()
        for _ in range(MAX_DAYS):
            if self._matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        wall = datetime.combine(day, time(hour, minute))
                        if wall >= start:
                            yield wall
            day += timedelta(days=1)

    def _matches(self, day: date) -> bool:
        return (
            day.month in self.months
            and day.day in self.days_of_month
            and day.isoweekday() % 7 in self.days_of_week
        )

    def _instants(self, wall: datetime) -> tuple[datetime, ...]:
        # fold=0 is the first occurrence of a repeated time, and for a skipped
        # time the reading with the old offset: shifted forward by the gap.
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if second > first and self.hours == frozenset(range(24)):
            return first, second  # Repeated hour of an every-hour job: both real hours run.
        return (first,)


def interval_run_after(moment: datetime, every: timedelta, zone: tzinfo) -> datetime:
    """The run of an interval schedule that follows a run at `moment`, in real time."""
    return (moment.astimezone(UTC) + every).astimezone(zone)
