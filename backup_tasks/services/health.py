"""--check: one line and a Nagios/Icinga/systemd exit code (0 OK, 1 WARNING, 2 CRITICAL)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import DatabaseError
from django.utils import timezone

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError
from backup_tasks.engines import get_engine
from backup_tasks.models import BackupRun
from backup_tasks.services import history
from backup_tasks.storage.safefile import MISSING, not_regular

OK, WARNING, CRITICAL = 0, 1, 2
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}
# Kinds whose last failure means the backups cannot be trusted right now.
WATCHED = (
    BackupRun.Kind.SNAPSHOT,
    BackupRun.Kind.CSV,
    BackupRun.Kind.JSON,
    BackupRun.Kind.CLEANUP,
    BackupRun.Kind.VERIFY,
    BackupRun.Kind.DRILL,
    BackupRun.Kind.HISTORY_CHECK,
    BackupRun.Kind.HISTORY_RETENTION,
)
DRILL_EVERY = timedelta(days=8)  # weekly drills, a day of grace


@dataclass
class Health:
    code: int
    message: str
    # Why, in a word a program can act on (the dashboard offers the job that helps):
    # ok, unreadable, failed, no_snapshot, stale, missing, stuck or no_drill.
    reason: str = "ok"
    kind: str = ""  # the BackupRun kind concerned, when there is one

    @property
    def line(self) -> str:
        return f"BACKUP {NAMES[self.code]} - {self.message}"


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _newest_in_backup_folder(runs) -> BackupRun | None:
    """The newest successful snapshot whose file is one of ours in the current BACKUP_DIR.

    A record names its file by path; one elsewhere (BACKUP_DIR since changed, or
    a forged row) says nothing about the backups this installation keeps now.
    """
    successes = runs.of_kind(BackupRun.Kind.SNAPSHOT).succeeded().order_by("-started_at", "-id")
    for run in successes.iterator(chunk_size=100):
        if layout.kind_of_backup(Path(run.file)) is layout.DB:
            return run
    return None


def backup_health(
    *, max_age_hours: float = 2.0, alias: str = "default", now: datetime | None = None
) -> Health:
    now = now or timezone.now()
    try:
        get_engine(alias).check_available()
        runs = BackupRun.objects.using(alias)
        recorded = runs.last_success(BackupRun.Kind.SNAPSHOT)
        newest = _newest_in_backup_folder(runs)
        failed = [
            last
            for kind in WATCHED
            if (last := runs.last_finished(kind)) and last.status == BackupRun.Status.FAILED
        ]
        drill = runs.last_success(BackupRun.Kind.DRILL)
        stuck = runs.filter(
            status=BackupRun.Status.RUNNING, started_at__lt=now - timedelta(hours=max_age_hours)
        ).count()
    except (BackupError, DatabaseError) as exc:
        return Health(CRITICAL, f"cannot read the run history: {exc}", "unreadable")

    if failed:
        worst = failed[0]
        when = timezone.localtime(worst.started_at).strftime("%Y-%m-%d %H:%M")
        return Health(
            CRITICAL,
            f"last {worst.get_kind_display().lower()} failed at {when}: {worst.error}",
            "failed",
            worst.kind,
        )
    lag = offsite_lag(alias=alias, now=now)
    if lag is not None and lag.code == CRITICAL:
        return lag
    if newest is None and recorded is not None:
        return Health(
            CRITICAL,
            f"no verified snapshot in the backup folder {conf.backup_dir()}; the newest recorded, "
            f"{recorded.file}, is outside it (BACKUP_DIR changed?): run 'python manage.py backup_database'",
            "no_snapshot",
            BackupRun.Kind.SNAPSHOT,
        )
    if newest is None:
        return Health(
            CRITICAL,
            "no verified database snapshot yet: run 'python manage.py backup_database'",
            "no_snapshot",
            BackupRun.Kind.SNAPSHOT,
        )
    age = now - newest.started_at
    name = Path(newest.file).name
    if age > timedelta(hours=max_age_hours):
        return Health(
            CRITICAL,
            f"newest verified snapshot {name} is {_hours(age)} old (limit {max_age_hours:g} h)",
            "stale",
            BackupRun.Kind.SNAPSHOT,
        )
    what = not_regular(Path(newest.file))
    if what == MISSING:
        return Health(
            WARNING,
            f"newest verified snapshot {name} is no longer on disk",
            "missing",
            BackupRun.Kind.SNAPSHOT,
        )
    if what:
        return Health(
            WARNING,
            f"newest verified snapshot {name} has been replaced: it {what}",
            "missing",
            BackupRun.Kind.SNAPSHOT,
        )
    if recorded.pk != newest.pk:
        return Health(
            WARNING,
            f"newest verified snapshot {name} is {_hours(age)} old, but a newer one is recorded outside "
            f"the backup folder {conf.backup_dir()}, not judged: {recorded.file}",
            "missing",
            BackupRun.Kind.SNAPSHOT,
        )
    if lag is not None:
        return lag
    if stuck:
        return Health(
            WARNING, f"{stuck} run(s) still marked running for more than {max_age_hours:g} h", "stuck"
        )
    if drill is None or now - drill.started_at > DRILL_EVERY:
        return Health(
            WARNING,
            f"newest verified snapshot {name} is {_hours(age)} old, but no restore drill succeeded in the last 8 days",
            "no_drill",
            BackupRun.Kind.DRILL,
        )
    return Health(OK, f"newest verified snapshot {name} is {_hours(age)} old; last runs succeeded")


def offsite_lag(*, alias: str = "default", now: datetime | None = None) -> Health | None:
    """WARNING when the offsite copy is older than BACKUP_OFFSITE_MAX_AGE_HOURS, CRITICAL at three times that."""
    remote = history.offsite()
    if remote is None or not history.enabled():
        return None
    now = now or timezone.now()
    limit = conf.offsite_max_age_hours()
    last = history.last_offsite_copy(alias)
    if last is None:
        first = BackupRun.objects.using(alias).succeeded().order_by("started_at").first()
        if first is None or now - first.started_at <= timedelta(hours=limit):
            return None
        age, what = now - first.started_at, f"nothing copied to the offsite history {remote.shown} yet"
    else:
        age, what = now - last, f"offsite history {remote.shown} last caught up {_hours(now - last)} ago"
    if age <= timedelta(hours=limit):
        return None
    code = CRITICAL if age > timedelta(hours=3 * limit) else WARNING
    return Health(
        code,
        f"{what} (limit {limit:g} h): check the connection and the log, the next backup retries",
        "offsite",
    )
