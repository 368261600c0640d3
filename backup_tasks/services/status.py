"""The guide's BACKUP STATUS report."""

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.crontab import Crontab, interval_run_after
from backup_tasks.core.errors import BackupError
from backup_tasks.core.units import human_size, moment_text
from backup_tasks.engines import get_engine
from backup_tasks.models import BackupRun, BackupSchedule
from backup_tasks.services import history
from backup_tasks.storage.log import run_logger
from readings.models import Reading

RULE = "=" * 60


@dataclass
class StatusReport:
    location: str
    counts: dict[str, int]
    stats: dict | None = None
    latest: dict | None = None
    database_problem: str | None = None
    runs: list[str] = field(default_factory=list)  # "Database snapshot: last success ..., last failure ..."
    schedules: list[str] = field(default_factory=list)  # "Hourly backup: next run ..."
    history: list[str] = field(default_factory=list)  # the restic history: where, how big, offsite

    def to_dict(self) -> dict:
        return {
            "location": self.location,
            "counts": self.counts,
            "stats": self.stats,
            "latest": self.latest,
            "database_problem": self.database_problem,
            "runs": self.runs,
            "schedules": self.schedules,
            "history": self.history,
        }


def backup_status(*, alias: str = "default", root: Path | None = None) -> StatusReport:
    """Count our backups and summarise the readings; never creates or changes anything."""
    folder = (root or conf.backup_dir()).resolve()
    report = StatusReport(
        location=str(folder),
        counts={key: layout.exports(kind, root) for key, kind in layout.KINDS.items()},
    )
    try:
        get_engine(alias).check_available()
    except BackupError as exc:
        report.database_problem = str(exc)
        return report
    report.history = history_lines(alias)
    report.runs = run_lines(alias)
    report.schedules = schedule_lines(alias)
    readings = Reading.objects.using(alias)
    stats = readings.stats()
    if not stats["total"]:
        return report
    report.stats = stats
    latest = readings.order_by("-timestamp", "-id").first()
    report.latest = {
        "water_temperature": latest.water_temperature,
        "air_temperature": latest.air_temperature,
        "humidity": latest.humidity,
        "setpoint": latest.setpoint,
        "pid_output": latest.pid_output,
        "timestamp": timezone.localtime(latest.timestamp, conf.plant_zone()).strftime("%Y-%m-%d %H:%M:%S"),
    }
    return report


def render_status(report: StatusReport) -> str:
    lines = [
        RULE,
        "HEAT TREATMENT PLANT CONTROL - BACKUP STATUS",
        RULE,
        "",
        f"Backup Location: {report.location}",
        "",
        f"Database Backups: {report.counts['db']}",
        f"CSV Exports: {report.counts['csv']}",
        f"JSON Exports: {report.counts['json']}",
        "",
        "Database Statistics:",
    ]
    stats, latest = report.stats, report.latest
    if report.database_problem:
        lines.append(f"  Database not available: {report.database_problem}")
    elif not stats:
        lines.append("  Total Readings: 0")
        lines.append("  No readings recorded yet.")
    else:
        lines += [
            f"  Total Readings: {stats['total']:,}",
            f"  Water Temp Range: {stats['water_min']:.2f}°C - {stats['water_max']:.2f}°C",
            f"  Water Temp Avg: {stats['water_avg']:.2f}°C",
            f"  Air Temp Range: {stats['air_min']:.2f}°C - {stats['air_max']:.2f}°C",
            f"  Air Temp Avg: {stats['air_avg']:.2f}°C",
            f"  Humidity Avg: {stats['humidity_avg']:.2f}%",
            "",
            "Latest Reading:",
            f"  Water: {latest['water_temperature']:.2f}°C",
            f"  Air: {latest['air_temperature']:.2f}°C",
            f"  Humidity: {latest['humidity']:.2f}%",
            f"  Setpoint: {latest['setpoint']:.2f}°C",
            f"  Time: {latest['timestamp']}",
        ]
    if report.runs:
        lines += ["", "Backup Runs:", *(f"  {line}" for line in report.runs)]
    if report.schedules:
        lines += ["", "Schedules:", *(f"  {line}" for line in report.schedules)]
    if report.history:
        lines += ["", "Backup History:", *(f"  {line}" for line in report.history)]
    lines.append(RULE)
    return "\n".join(lines)


def _when(moment: datetime | None) -> str:
    return moment_text(moment, conf.plant_zone())


def run_lines(alias: str) -> list[str]:
    """Last success and failure of each kind that ever ran."""
    runs = BackupRun.objects.using(alias)
    lines = []
    for kind in BackupRun.Kind:
        success, failure = runs.last_success(kind), runs.last_failure(kind)
        if success is None and failure is None:
            continue
        line = f"{kind.label}: last success {_when(success and success.started_at)}"
        line += f", last failure {_when(failure and failure.started_at)}"
        if failure and (success is None or failure.started_at > success.started_at):
            line += f" ({failure.error[:100]})"
        lines.append(line)
    return lines


def schedule_lines(alias: str) -> list[str]:
    """The next run of each of our periodic tasks, as the scheduler computes it."""
    return [f"{name}: {when}" for name, when in schedule_times(alias)]


def schedule_times(alias: str) -> list[tuple[str, str]]:
    """(name, "next run YYYY-MM-DD HH:MM:SS" or "disabled") of each of our periodic tasks."""
    now = timezone.now()
    times = []
    for task in BackupSchedule.objects.using(alias).ours().order_by("name"):
        if not task.enabled:
            times.append((task.name, "disabled"))
            continue
        nxt = _next_run(task, now)
        times.append((task.name, f"next run {_when(max(nxt, now) if nxt else None)}"))
    return times


def _next_run(task: BackupSchedule, now: datetime) -> datetime | None:
    """When the scheduler (queueing.beat) sends this task next, by the same arithmetic."""
    if task.crontab is not None:
        return Crontab.of(task.crontab.schedule, task.crontab.timezone).next_run_after(now)
    if task.interval is not None:
        # An interval counts from its last run.
        since = task.last_run_at or now
        return interval_run_after(since, task.interval.schedule.run_every, conf.plant_zone())
    return None  # solar and one-off schedules are not ours


def log_statistics(*, alias: str = "default", root: Path | None = None) -> StatusReport:
    """Write the BACKUP STATUS report to the activity log and return it."""
    report = backup_status(alias=alias, root=root)
    run_logger().info("Backup statistics:\n%s", render_status(report))
    return report


def history_lines(alias: str = "default") -> list[str]:
    """The history's figures, or why there is none; never makes a key or a repository.

    Nothing when the operator turned it off (BACKUP_REPOSITORY=off).
    """
    if conf.repository_location() is None:
        return []
    if why := history.why_off():
        return [why]
    try:
        figures = history.figures(alias=alias)
    except BackupError as exc:
        return [f"Not readable: {exc}"]
    lines = [
        f"Repository: {figures.location}",
        f"Restore points: {figures.points:,} (oldest {_when(figures.oldest)}, newest {_when(figures.newest)})",
        f"Size: {human_size(figures.logical_bytes)} of backups stored in {human_size(figures.stored_bytes)}"
        + (f", {human_size(figures.disk_bytes)} on disk" if figures.disk_bytes is not None else ""),
        f"Key: {conf.repository_key_file()} (keep a copy away from the plant: without it the history cannot be read)",
    ]
    if figures.offsite is None:
        lines.append("Offsite: none (set BACKUP_OFFSITE_REPOSITORY to copy the history off the machine)")
    elif figures.offsite_lag_hours is None:
        lines.append(f"Offsite: {figures.offsite}, not copied yet")
    else:
        lines.append(f"Offsite: {figures.offsite}, last caught up {figures.offsite_lag_hours:.1f} h ago")
    if figures.days_until_full is not None:
        lines.append(
            f"Disk forecast: at the last 7 days' growth the backup disk is full in {figures.days_until_full:,.0f} days"
        )
    else:
        lines.append("Disk forecast: no growth measured yet (after a day of restore points)")
    return lines
