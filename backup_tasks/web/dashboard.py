"""The backup dashboard: "are my data safe?" on one admin page.

It shows what `backup_database --status` prints and what `--check` decides,
plus charts drawn on the server from a few hundred points the database has
already averaged, so the page stays fast over a year of readings.
"""

import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Avg, F, Value
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.units import MB, human_size
from backup_tasks.engines.sql import EpochSeconds
from backup_tasks.models import BackupRun
from backup_tasks.services.health import NAMES as HEALTH_NAMES
from backup_tasks.services.health import Health, backup_health
from backup_tasks.services.status import backup_status, history_lines, render_status, schedule_times
from backup_tasks.storage.checksums import recorded_checksum, sidecar
from backup_tasks.storage.safefile import disk_usage
from backup_tasks.web import charts, downloads, jobs
from readings.models import Reading

DASHBOARD_PERMISSION = "backup_tasks.view_dashboard"
RECENT_RUNS = 20
FILES_PER_KIND = 10
BACKUP_CHART_DAYS = 30
# Kinds whose runs leave a file; their sizes and durations are charted.
FILE_KINDS = BackupRun.FILE_KINDS
# The parts of the page that follow a queued or running job (see dashboard.html).
LIVE_PARTS = ("health", "kinds", "runs", "files")
KIND_COLOURS = {"snapshot": "#1565c0", "csv": "#2e7d32", "json": "#ef6c00"}


@dataclass(frozen=True)
class Window:
    chart_id: str
    title: str
    span: timedelta
    bucket: timedelta  # readings are averaged over this, in the database

    @property
    def points(self) -> int:
        return int(self.span / self.bucket)

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The span ending with the bucket that holds `now`, on whole buckets."""
        step = int(self.bucket.total_seconds())
        end = datetime.fromtimestamp(int(now.timestamp()) // step * step + step, tz=UTC)
        return end - self.points * self.bucket, end


WINDOWS = (
    Window("chart-24h", "Last 24 hours", timedelta(hours=24), timedelta(minutes=5)),
    Window("chart-7d", "Last 7 days", timedelta(days=7), timedelta(minutes=30)),
)
TEMPERATURES = (
    ("water_temperature", "Water", "#1565c0", False),
    ("air_temperature", "Air", "#c62828", False),
    ("setpoint", "Setpoint", "#555555", True),
)


def temperature_series(window: Window, now: datetime, alias: str = "default") -> list[charts.Series]:
    """Water, air and setpoint averaged per bucket over the window ending at `now`.

    The averaging happens in one GROUP BY over the timestamp index: a week is
    336 rows back from the database whatever the number of readings. A bucket
    without readings stays empty, so an outage shows as a gap in the line.
    """
    step = int(window.bucket.total_seconds())
    start, end = window.bounds(now)
    rows = (
        Reading.objects.using(alias)
        .between(start, end)
        .annotate(bucket=EpochSeconds("timestamp") / Value(step))
        .values("bucket")
        .annotate(**{field: Avg(F(field)) for field, *_ in TEMPERATURES})
        .order_by("bucket")
    )
    averages = {row["bucket"]: row for row in rows}
    first = int(start.timestamp()) // step
    moments = [(first + i, start + (i + 0.5) * window.bucket) for i in range(window.points)]
    return [
        charts.Series(
            label,
            colour,
            [(moment, averages[b][field] if b in averages else None) for b, moment in moments],
            dashed=dashed,
        )
        for field, label, colour, dashed in TEMPERATURES
    ]


def temperature_charts(now: datetime) -> list:
    return [
        charts.line_chart(
            window.chart_id,
            f"Temperatures, {window.title.lower()}",
            temperature_series(window, now),
            *window.bounds(now),
            unit="°C",
            empty_text=f"No readings in the {window.title.lower()}",
        )
        for window in WINDOWS
    ]


def backup_charts(now: datetime) -> list:
    """Size and duration of every successful backup of the last BACKUP_CHART_DAYS days."""
    start = now - timedelta(days=BACKUP_CHART_DAYS)
    runs = (
        BackupRun.objects.succeeded()
        .filter(kind__in=FILE_KINDS, started_at__gte=start)
        .order_by("started_at")
        .values_list("kind", "started_at", "size_bytes", "duration_s")
    )
    sizes: dict[str, list] = {kind: [] for kind in FILE_KINDS}
    durations: dict[str, list] = {kind: [] for kind in FILE_KINDS}
    for kind, started, size, duration in runs:
        if size is not None:
            sizes[kind].append((started, size / MB))
        if duration is not None:
            durations[kind].append((started, duration))

    def series(points: dict[str, list]) -> list[charts.Series]:
        return [
            charts.Series(BackupRun.Kind(kind).label, KIND_COLOURS[kind], points[kind], markers=True)
            for kind in FILE_KINDS
            if points[kind]
        ]

    empty = f"No backups in the last {BACKUP_CHART_DAYS} days"
    charted = (
        ("chart-backups", "Backup sizes", sizes, "MB"),
        ("chart-durations", "Backup durations", durations, "s"),
    )
    return [
        charts.line_chart(
            chart_id,
            f"{what}, last {BACKUP_CHART_DAYS} days",
            series(points),
            start,
            now,
            unit=unit,
            empty_text=empty,
            from_zero=True,
        )
        for chart_id, what, points, unit in charted
    ]


@dataclass
class KindSummary:
    label: str
    last_success: BackupRun | None
    last_failure: BackupRun | None

    @property
    def failing(self) -> bool:
        """The last attempt failed: the failure is newer than the last success."""
        if self.last_failure is None:
            return False
        return self.last_success is None or self.last_failure.started_at > self.last_success.started_at


@dataclass
class BackupFile:
    kind: str
    path: Path
    name: str  # relative to the backup folder
    size: str
    modified: datetime
    sha256: str
    url: str | None
    checksum_url: str | None


def kind_summaries() -> list[KindSummary]:
    runs = BackupRun.objects.all()
    return [
        KindSummary(kind.label, runs.last_success(kind), runs.last_failure(kind)) for kind in BackupRun.Kind
    ]


def backup_files(can_download: bool) -> list[BackupFile]:
    """The newest files of each kind, newest first, with their recorded checksums."""
    root = conf.backup_dir()
    files = []
    for kind in layout.KINDS.values():
        try:
            newest = layout.backups(kind, root)[-FILES_PER_KIND:]
        except OSError:  # a folder the web server may not read: the table says nothing of it
            continue
        for _, path in reversed(newest):
            try:
                info = path.lstat()
            except OSError:
                continue  # removed by cleanup since the folder was listed
            if not stat.S_ISREG(info.st_mode):
                continue  # a link or anything else that is not one of our files
            checksum = recorded_checksum(path) or ""
            files.append(
                BackupFile(
                    kind=kind.label,
                    path=path,
                    name=f"{kind.folder}/{path.name}",
                    size=human_size(info.st_size),
                    modified=datetime.fromtimestamp(info.st_mtime, tz=UTC),
                    sha256=checksum,
                    url=downloads.url_for(path) if can_download else None,
                    checksum_url=downloads.url_for(sidecar(path)) if can_download and checksum else None,
                )
            )
    return files


# What the health line asks the operator to do next, and the button that does it.
NEXT_STEPS = {
    "no_snapshot": "Next: make the first backup.",
    "stale": "Next: make a backup now, and make sure the worker with beat runs "
    "(./scripts/serve.sh, or celery -A smartAquarium worker -B): it backs up every hour.",
    "missing": "Next: make a new backup.",
    "no_drill": "Next: run a restore drill. It restores the newest snapshot into a scratch copy and "
    "checks it; the weekly backup repeats it from then on.",
    "failed": "Next: set right what the error says, then run it again.",
    "offsite": "Next: check that the offsite repository (BACKUP_OFFSITE_REPOSITORY) can be reached; "
    "the next backup copies everything it missed.",
}
JOB_FOR_KIND = {
    BackupRun.Kind.SNAPSHOT: "complete_backup",
    BackupRun.Kind.CSV: "export_csv",
    BackupRun.Kind.JSON: "export_json",
    BackupRun.Kind.CLEANUP: "cleanup",
    BackupRun.Kind.DRILL: "restore_drill",
}


@dataclass
class NextStep:
    text: str
    job: jobs.Job | None  # None: the operator may not run jobs, or no job helps


def next_step(health: Health, can_run: bool) -> NextStep | None:
    text = NEXT_STEPS.get(health.reason)
    if text is None:
        return None
    job = jobs.JOBS.get(JOB_FOR_KIND.get(health.kind, "")) if can_run else None
    return NextStep(text, job)


def disk_space() -> dict:
    folder = conf.backup_dir()
    total, free = disk_usage(folder) or (0, 0)
    return {
        "folder": str(folder),
        "free": human_size(free),
        "total": human_size(total),
        "free_percent": round(100 * free / total) if total else 0,
        "low": bool(total) and free / total < 0.10,
    }


def live_context(request) -> dict:
    """What the parts in LIVE_PARTS show: they change as jobs run."""
    health = backup_health()
    can_run = request.user.has_perm(jobs.RUN_PERMISSION)
    return {
        "health": health,
        "health_name": HEALTH_NAMES[health.code],
        "next_step": next_step(health, can_run),
        "kinds": kind_summaries(),
        "runs": BackupRun.objects.all()[:RECENT_RUNS],
        "files": backup_files(request.user.has_perm(downloads.DOWNLOAD_PERMISSION)),
        "files_per_kind": FILES_PER_KIND,
    }


@require_GET
def dashboard(request):
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    now = timezone.now()
    context = {
        **admin.site.each_context(request),
        **live_context(request),
        "title": "Backup dashboard",
        "schedules": schedule_times("default"),
        "disk": disk_space(),
        "history": history_lines(),
        "temperature_charts": temperature_charts(now),
        "backup_charts": backup_charts(now),
        "jobs": jobs.JOBS.values() if request.user.has_perm(jobs.RUN_PERMISSION) else [],
        "live_parts": " ".join(LIVE_PARTS),
    }
    return TemplateResponse(request, "admin/backup_tasks/dashboard.html", context)


@require_GET
def live(request):
    """The health line and the tables of runs and files, fetched by the dashboard
    every few seconds while a job is queued or running, so a run is seen to finish
    without reloading the page (and its charts and status report)."""
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    return TemplateResponse(request, "admin/backup_tasks/dashboard_live.html", live_context(request))


@require_GET
def status_report(request):
    """The --status report as plain text, fetched by the dashboard after it has loaded.

    Its statistics scan every reading (seconds at a year's data), so the
    dashboard shows everything else at once and fills this in when it comes.
    """
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    return HttpResponse(render_status(backup_status()), content_type="text/plain; charset=utf-8")


@require_POST
def run_job(request):
    """A dashboard button: queue the job and come back to the dashboard with the answer."""
    if not request.user.has_perm(jobs.RUN_PERMISSION):
        raise PermissionDenied
    job = jobs.JOBS.get(request.POST.get("job", ""))
    if job is None:
        messages.error(request, "Unknown job: choose one of the dashboard's buttons.")
    else:
        level, message = jobs.enqueue(job, request.user.get_username())
        # "queued" tells the dashboard to follow the job until its run has finished.
        messages.add_message(
            request, level, message, extra_tags="queued" if level == messages.SUCCESS else ""
        )
    return redirect("backup_tasks:dashboard")
