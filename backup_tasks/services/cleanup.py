"""Cleanup: remove the backups the retention policy does not keep, and what killed runs left.

Only files matching our own name patterns are touched (with their checksums),
plus temporary files that crashed runs left behind.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.db import DatabaseError

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError
from backup_tasks.core.retention import Candidate, Policy, plan, protect_newest_good
from backup_tasks.core.units import human_size
from backup_tasks.engines import get_engine
from backup_tasks.models import BackupRun
from backup_tasks.services.runs import recorded
from backup_tasks.storage.checksums import sidecar
from backup_tasks.storage.log import run_logger
from backup_tasks.storage.safefile import discard

STALE_TEMP_AGE = timedelta(hours=1)


@dataclass
class CleanupResult:
    days_to_keep: int
    policy: str = ""
    dry_run: bool = False
    removed: list[str] = field(default_factory=list)
    keeping: list[tuple[str, list[str]]] = field(default_factory=list)
    removed_temporary: list[str] = field(default_factory=list)
    kept: int = 0
    freed_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def retention_policy(
    *,
    days_to_keep: int | None = None,
    keep_hourly: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
) -> Policy:
    """The configured policy, with any of its numbers overridden."""

    def pick(value: int | None, default: int, name: str, least: int) -> int:
        chosen = default if value is None else value
        if chosen < least:
            raise BackupError(f"{name} must be at least {least}, got {chosen}: cleanup removed nothing.")
        return chosen

    return Policy(
        days=pick(days_to_keep, conf.keep_days(), "Days to keep", 1),
        hourly=pick(keep_hourly, conf.keep_count("HOURLY"), "Hourly snapshots to keep", 0),
        daily=pick(keep_daily, conf.keep_count("DAILY"), "Daily snapshots to keep", 0),
        weekly=pick(keep_weekly, conf.keep_count("WEEKLY"), "Weekly snapshots to keep", 0),
        monthly=pick(keep_monthly, conf.keep_count("MONTHLY"), "Monthly snapshots to keep", 0),
    )


def _damage_report(alias: str) -> tuple[set[str], dict[str, int]]:
    """Names the newest verification found wrong, and the recorded size of each backup."""
    try:
        get_engine(alias).check_available()
        runs = BackupRun.objects.using(alias)
        verify = runs.of_kind(BackupRun.Kind.VERIFY).finished().order_by("-started_at", "-id").first()
        damaged = {Path(p["path"]).name for p in (verify.details.get("problems", []) if verify else [])}
        sizes = {
            Path(file).name: size
            for file, size in runs.succeeded().exclude(size_bytes=None).values_list("file", "size_bytes")
            if file
        }
    except (BackupError, DatabaseError):
        return set(), {}
    return damaged, sizes


def cleanup_old_backups(
    *,
    days_to_keep: int | None = None,
    keep_hourly: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    root: Path | None = None,
    alias: str = "default",
    trigger: str = "",
) -> CleanupResult:
    """Remove the backups the retention policy does not keep; with dry_run, only say which.

    Snapshots follow the grandfather-father-son counts when any is set, else
    the days rule; exports always follow the days rule. Only files matching
    our own name patterns are touched (with their checksums), plus temporary
    files that crashed runs left behind more than an hour ago. The newest
    verified snapshot is never removed, and a damaged backup never counts as
    a kept one.
    """
    policy = retention_policy(
        days_to_keep=days_to_keep,
        keep_hourly=keep_hourly,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
    )
    zone = conf.plant_zone()
    now = now or datetime.now(zone)
    result = CleanupResult(days_to_keep=policy.days, policy=policy.describe(), dry_run=dry_run)
    log = run_logger()
    damaged, sizes = _damage_report(alias)
    with recorded(BackupRun.Kind.CLEANUP, trigger=trigger, alias=alias) as run:
        for kind in layout.KINDS.values():
            candidates = []
            for stamp, path in layout.backups(kind, root):
                stat = path.stat()
                good = (
                    sidecar(path).exists()
                    and path.name not in damaged
                    and sizes.get(path.name, stat.st_size) == stat.st_size
                )
                candidates.append(Candidate(path, stamp, stat.st_mtime, good))
            decisions = plan(candidates, policy, now=now, zone=zone, gfs=kind is layout.DB)
            if kind is layout.DB:
                protect_newest_good(decisions)
            for candidate in reversed(decisions):  # oldest first, as listed
                if candidate.keep:
                    result.kept += 1
                    result.keeping.append((str(candidate.path), candidate.reasons))
                    continue
                size = candidate.path.stat().st_size if dry_run else _remove(candidate.path)
                if size is None:
                    continue
                if not dry_run:
                    _remove(sidecar(candidate.path))
                    log.info("Cleanup removed %s (%s)", candidate.path, policy.describe())
                result.removed.append(str(candidate.path))
                result.freed_bytes += size
            if not dry_run:
                result.removed_temporary += _remove_stale_temporaries(kind.directory(root), now)
        run.size_bytes = result.freed_bytes
        run.details = {
            "removed": len(result.removed),
            "kept": result.kept,
            "policy": result.policy,
            "dry_run": dry_run,
        }
    log.info(
        "Cleanup %s: %d removed (%s freed), %d kept",
        "dry run" if dry_run else "finished",
        len(result.removed),
        human_size(result.freed_bytes),
        result.kept,
    )
    return result


def remove_unfinished_files(*, tag: str, root: Path | None = None) -> list[str]:
    """Remove the temporary files of the run named `tag` (a killed or timed-out task)."""
    removed = []
    for kind in layout.KINDS.values():
        try:
            entries = list(kind.directory(root).iterdir())
        except OSError:
            continue  # No folder yet, or not a folder: the run itself reports that.
        for path in entries:
            if layout.TEMP_RE.match(path.name) and f".{tag}." in path.name:
                discard(path)
                removed.append(str(path))
    if removed:
        run_logger().info(
            "Removed %d unfinished file(s) of an interrupted run: %s", len(removed), ", ".join(removed)
        )
    return removed


def _remove(path: Path) -> int | None:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return None  # Removed meanwhile by another cleanup.
    except OSError as exc:
        raise BackupError(f"Cannot remove {path} ({exc.strerror}): check the folder's permissions.") from None
    return size


def _remove_stale_temporaries(folder: Path, now: datetime) -> list[str]:
    removed = []
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    limit = now.timestamp() - STALE_TEMP_AGE.total_seconds()
    for path in entries:
        if layout.TEMP_RE.match(path.name):
            try:
                if path.stat().st_mtime < limit:
                    discard(path)  # with any journal file the database left beside it
                    removed.append(str(path))
            except FileNotFoundError:
                continue
    return removed
