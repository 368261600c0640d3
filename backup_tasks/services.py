"""Backup, export, cleanup and status: each operation once, for every door.

The management command, the Celery tasks and the admin actions call these
functions and hold no backup logic of their own.
"""

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from backup_tasks import conf, layout
from backup_tasks.engines import get_engine
from backup_tasks.errors import BackupError
from backup_tasks.exporters import WRITERS
from backup_tasks.log import run_logger
from backup_tasks.safefile import atomic_output, discard
from backup_tasks.status import StatusReport, backup_status, render_status

EXPORT_CHUNK = 10_000
STALE_TEMP_AGE = timedelta(hours=1)


@dataclass
class BackupResult:
    kind: str
    path: str
    size_bytes: int
    rows: int
    duration_s: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CleanupResult:
    days_to_keep: int
    removed: list[str] = field(default_factory=list)
    removed_temporary: list[str] = field(default_factory=list)
    kept: int = 0
    freed_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def now_stamp() -> datetime:
    """The time that names a run's files: now in the plant's zone, whole seconds."""
    return datetime.now(conf.plant_zone()).replace(microsecond=0)


def _run(kind: layout.Kind, work: Callable[[], tuple[Path, int]]) -> BackupResult:
    log = run_logger()
    began = time.monotonic()
    try:
        path, rows = work()
    except BackupError as exc:
        log.error("%s failed: %s", kind.label, exc)
        raise
    except Exception:
        log.exception("%s failed unexpectedly", kind.label)
        raise
    result = BackupResult(
        kind=kind.key,
        path=str(path),
        size_bytes=path.stat().st_size,
        rows=rows,
        duration_s=round(time.monotonic() - began, 3),
    )
    log.info(
        "%s written: %s (%s, %s readings, %.2f s)",
        kind.label,
        path,
        human_size(result.size_bytes),
        f"{rows:,}",
        result.duration_s,
    )
    return result


def snapshot_database(
    *, alias: str = "default", when: datetime | None = None, root: Path | None = None
) -> BackupResult:
    """Snapshot the whole database into BACKUP_DIR/database/, verified before it is named."""
    engine = get_engine(alias)
    when = when or now_stamp()

    def work() -> tuple[Path, int]:
        engine.check_available()
        with atomic_output(
            layout.DB.directory(root), layout.DB.file_name, when, "the database backup"
        ) as out:
            rows = engine.snapshot(out.tmp)
        return out.final, rows

    return _run(layout.DB, work)


def _export(
    kind: layout.Kind,
    *,
    alias: str,
    when: datetime | None,
    start: datetime | None,
    end: datetime | None,
    root: Path | None,
) -> BackupResult:
    engine = get_engine(alias)
    when = when or now_stamp()
    write = WRITERS[kind.key]

    def work() -> tuple[Path, int]:
        engine.check_available()
        with atomic_output(kind.directory(root), kind.file_name, when, f"the {kind.label}") as out:
            lines = engine.export_lines(kind.key, conf.plant_zone(), start, end, EXPORT_CHUNK)
            # closing(): a write that fails (disk full, a time limit) ends the
            # export's read transaction now, not when the generator is collected.
            with open(out.tmp, "xb", buffering=1 << 20) as handle, closing(lines):
                rows, written = write(handle, lines)
            on_disk = out.tmp.stat().st_size
            if on_disk != written:
                raise BackupError(
                    f"The {kind.label} came out {on_disk:,} bytes instead of {written:,}: "
                    "the backup disk lost data; check it and run the backup again."
                )
        return out.final, rows

    return _run(kind, work)


def export_csv(
    *,
    alias: str = "default",
    when: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    root: Path | None = None,
) -> BackupResult:
    """Export readings (start <= timestamp < end) to BACKUP_DIR/csv_exports/."""
    return _export(layout.CSV, alias=alias, when=when, start=start, end=end, root=root)


def export_json(
    *,
    alias: str = "default",
    when: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    root: Path | None = None,
) -> BackupResult:
    """Export readings (start <= timestamp < end) to BACKUP_DIR/json_exports/."""
    return _export(layout.JSON, alias=alias, when=when, start=start, end=end, root=root)


OPERATIONS: dict[str, Callable[..., BackupResult]] = {
    "db": snapshot_database,
    "csv": export_csv,
    "json": export_json,
}
ALL_KINDS = ("db", "csv", "json")


def complete_backup(
    *,
    kinds: tuple[str, ...] = ALL_KINDS,
    alias: str = "default",
    root: Path | None = None,
    on_result: Callable[[BackupResult], None] | None = None,
) -> list[BackupResult]:
    """Snapshot and export under one time stamp; stop at the first failure.

    Files finished before a failure stay: each is complete and verified.
    """
    get_engine(alias).check_available()
    when = now_stamp()
    results = []
    for kind in kinds:
        result = OPERATIONS[kind](alias=alias, when=when, root=root)
        results.append(result)
        if on_result:
            on_result(result)
    run_logger().info("Backup completed: %s", ", ".join(layout.KINDS[k].label for k in kinds))
    return results


def cleanup_old_backups(
    *, days_to_keep: int | None = None, now: datetime | None = None, root: Path | None = None
) -> CleanupResult:
    """Remove our backups whose name stamps are older than days_to_keep days.

    Only files matching our own name patterns are touched, plus temporary
    files that crashed runs left behind more than an hour ago.
    """
    days = conf.keep_days() if days_to_keep is None else days_to_keep
    if days < 1:
        raise BackupError(f"Days to keep must be at least 1, got {days}: cleanup removed nothing.")
    now = now or datetime.now(conf.plant_zone())
    cutoff = now - timedelta(days=days)
    result = CleanupResult(days_to_keep=days)
    log = run_logger()
    for kind in layout.KINDS.values():
        for stamp, path in layout.backups(kind, root):
            if stamp >= cutoff:
                result.kept += 1
                continue
            size = _remove(path)
            if size is not None:
                result.removed.append(str(path))
                result.freed_bytes += size
                log.info("Cleanup removed %s (older than %d days)", path, days)
        result.removed_temporary += _remove_stale_temporaries(kind.directory(root), now)
    log.info(
        "Cleanup finished: %d removed (%s freed), %d kept",
        len(result.removed),
        human_size(result.freed_bytes),
        result.kept,
    )
    return result


def log_statistics(*, alias: str = "default", root: Path | None = None) -> StatusReport:
    """Write the BACKUP STATUS report to the activity log and return it."""
    report = backup_status(alias=alias, root=root)
    run_logger().info("Backup statistics:\n%s", render_status(report))
    return report


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
    except FileNotFoundError:
        return removed
    limit = now.timestamp() - STALE_TEMP_AGE.total_seconds()
    for path in entries:
        if layout.TEMP_RE.match(path.name):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed.append(str(path))
            except FileNotFoundError:
                continue
    return removed


def human_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
