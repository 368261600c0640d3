"""The guide's BACKUP STATUS report."""

from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from backup_tasks import conf, layout
from backup_tasks.engines import get_engine
from backup_tasks.errors import BackupError
from readings.models import Reading

RULE = "=" * 60


@dataclass
class StatusReport:
    location: str
    counts: dict[str, int]
    stats: dict | None = None
    latest: dict | None = None
    database_problem: str | None = None

    def to_dict(self) -> dict:
        return {
            "location": self.location,
            "counts": self.counts,
            "stats": self.stats,
            "latest": self.latest,
            "database_problem": self.database_problem,
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
    lines.append(RULE)
    return "\n".join(lines)
