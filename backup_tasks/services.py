"""Backup, export, cleanup and status: each operation once, for every door.

The management command, the Celery tasks and the admin actions call these
functions and hold no backup logic of their own.
"""

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypedDict, Unpack

from django.db import DatabaseError

from backup_tasks import compression, conf, layout
from backup_tasks.engines import get_engine
from backup_tasks.errors import BackupError, DiskFull
from backup_tasks.exporters import STREAMS, WRITERS
from backup_tasks.log import run_logger
from backup_tasks.manifest import HashingWriter, file_sha256, sidecar, write_checksum
from backup_tasks.models import BackupRun
from backup_tasks.retention import Candidate, Policy, plan, protect_newest_good
from backup_tasks.runs import recorded
from backup_tasks.safefile import atomic_output, discard, disk_usage, ensure_dir, written_back
from backup_tasks.status import StatusReport, backup_status, render_status

EXPORT_CHUNK = 10_000
STREAM_CHUNK = 2_000  # lines per block of a download: a few hundred KB
STALE_TEMP_AGE = timedelta(hours=1)


@dataclass
class BackupResult:
    kind: str
    path: str
    size_bytes: int
    rows: int
    duration_s: float
    sha256: str
    parts: list[str] = field(default_factory=list)  # files after the first, for a CSV export in parts

    def to_dict(self) -> dict:
        return asdict(self)


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


@dataclass
class Part:
    path: Path
    rows: int
    sha256: str


@dataclass
class Written:
    path: Path
    rows: int
    sha256: str
    newest_reading: datetime | None = None
    parts: list[Part] = field(default_factory=list)  # a CSV export in several files
    details: dict = field(default_factory=dict)  # recorded with the run


def now_stamp() -> datetime:
    """The time that names a run's files: now in the plant's zone, whole seconds."""
    return datetime.now(conf.plant_zone()).replace(microsecond=0)


def _run(kind: layout.Kind, *, trigger: str, alias: str, work: Callable[[], Written]) -> BackupResult:
    with recorded(kind.run_kind, trigger=trigger, alias=alias) as run:
        began = time.monotonic()
        written = work()
        parts = written.parts or [Part(written.path, written.rows, written.sha256)]
        for part in parts:
            write_checksum(part.path, part.sha256)
        result = BackupResult(
            kind=kind.key,
            path=str(written.path),
            size_bytes=sum(part.path.stat().st_size for part in parts),
            rows=written.rows,
            duration_s=round(time.monotonic() - began, 3),
            sha256=written.sha256,
            parts=[str(part.path) for part in parts[1:]],
        )
        run.file, run.size_bytes, run.rows = result.path, result.size_bytes, result.rows
        run.sha256, run.newest_reading = result.sha256, written.newest_reading
        run.details = dict(written.details)
        if len(parts) > 1:
            run.details["parts"] = [{"file": p.path.name, "rows": p.rows, "sha256": p.sha256} for p in parts]
    run_logger().info(
        "%s written: %s (%s, %s readings, %.2f s)",
        kind.label,
        written.path,
        human_size(result.size_bytes),
        f"{result.rows:,}",
        result.duration_s,
    )
    return result


SPACE_MARGIN = 1.1  # the expected size, plus 10 %, plus a little:
SPACE_SLACK = 1_000_000


def free_bytes(folder: Path) -> int:
    usage = disk_usage(folder)
    return 0 if usage is None else usage[1]


def expected_size(kind: layout.Kind, root: Path | None, estimate_now: int = 0) -> int:
    """About what the next backup of a kind needs, plus a margin: the larger of the last
    one (every part) and estimate_now, what the data would take as it is now.

    The last backup alone underestimates a database that has grown since: a 4 MB
    snapshot said 5.6 MB would do, and the 12 MB database then filled the disk.
    """
    files = layout.backups(kind, root)
    last = 0
    if files:
        stamp = files[-1][0]
        last = sum(path.stat().st_size for s, path in files if s == stamp)
    size = max(last, estimate_now)
    return int(size * SPACE_MARGIN) + SPACE_SLACK if size else 0


def ensure_space(
    kind: layout.Kind, *, root: Path | None, alias: str, trigger: str, estimate_now: int = 0
) -> None:
    """Fail before writing anything when the backup disk cannot hold the next backup.

    When space is short, old backups are cleaned up by the retention policy first.
    """
    folder = ensure_dir(kind.directory(root))
    need = expected_size(kind, root, estimate_now)
    free = free_bytes(folder)
    if free >= need:
        return
    log = run_logger()
    log.warning("Disk guard: %s needs about %s, %s free: cleaning up first", kind.label, mb(need), mb(free))
    cleanup_old_backups(
        root=root, alias=alias, trigger=f"disk guard before {kind.label} ({trigger or 'no trigger'})"
    )
    free = free_bytes(folder)
    if free < need:
        raise DiskFull(
            f"Not enough space on the backup disk: need about {mb(need)}, {mb(free)} free in {folder}. "
            "Nothing was written; free up space or move BACKUP_DIR to a larger disk."
        )


def mb(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


# progress(label, readings done, readings in all, seconds since the start)
Progress = Callable[[str, int, int, float], None]


class Total:
    """The readings an export will write, as the export itself counts them."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self, readings: int) -> None:
        self.readings = readings


def _reporting(chunks: Iterator[list[str]], kind: layout.Kind, progress: Progress, total: Total):
    began, done = time.monotonic(), 0
    first = next(chunks, None)  # begins the export's read, which counts its readings
    progress(kind.label, 0, total.readings, 0.0)
    if first is None:
        return
    for lines in itertools.chain([first], chunks):
        yield lines
        done += len(lines)
        progress(kind.label, done, total.readings, time.monotonic() - began)


def namer(kind: layout.Kind, method: str) -> Callable[[datetime, int], str]:
    ending = compression.suffix(method)
    return lambda when, part: kind.file_name(when, part, ending)


def snapshot_database(
    *,
    alias: str = "default",
    when: datetime | None = None,
    root: Path | None = None,
    trigger: str = "",
    compress: str | None = None,
) -> BackupResult:
    """Snapshot the whole database into BACKUP_DIR/database/, verified before it is named."""
    engine = get_engine(alias)
    when = when or now_stamp()
    method = compress or conf.compression()
    name_for = namer(layout.DB, method)

    def work() -> Written:
        engine.check_available()
        folder = layout.DB.directory(root)
        # size_bytes() looks with stat() only: opening the live database file would
        # drop the locks SQLite holds on it in this process.
        ensure_space(layout.DB, root=root, alias=alias, trigger=trigger, estimate_now=engine.size_bytes())
        with atomic_output(folder, name_for, when, "the database backup") as out:
            if method == "none":
                with written_back(out.tmp):
                    snapshot = engine.snapshot(out.tmp, with_sha256=True)
                sha256 = snapshot.sha256 or file_sha256(out.tmp)
            else:
                # Verified as a plain database first, then compressed.
                plain = out.tmp.with_name(out.tmp.name + ".plain.tmp")
                try:
                    snapshot = engine.snapshot(plain)
                    compression.compress_file(plain, out.tmp, method)
                finally:
                    plain.unlink(missing_ok=True)
                sha256 = file_sha256(out.tmp)
        return Written(out.final, snapshot.rows, sha256, snapshot.newest_reading)

    return _run(layout.DB, trigger=trigger, alias=alias, work=work)


def _export(
    kind: layout.Kind,
    *,
    alias: str = "default",
    when: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    root: Path | None = None,
    trigger: str = "",
    compress: str | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
) -> BackupResult:
    engine = get_engine(alias)
    when = when or now_stamp()
    write = WRITERS[kind.key]
    details = {}
    if incremental:
        start, end = incremental_window(kind, alias=alias)
        details = {
            "incremental": True,
            "window_start": start.isoformat() if start else None,
            "window_end": end.isoformat(),
        }
    method = compress or conf.compression()
    name_for = namer(kind, method)

    def work() -> Written:
        engine.check_available()
        ensure_space(kind, root=root, alias=alias, trigger=trigger)
        with atomic_output(kind.directory(root), name_for, when, f"the {kind.label}") as out:
            with ExitStack() as files:
                hashers: list[HashingWriter] = []

                def open_part() -> BinaryIO:
                    tmp = out.tmp if not hashers else out.add_part()
                    hashers.append(HashingWriter(files.enter_context(open(tmp, "xb", buffering=1 << 20))))
                    if method == "none":
                        return hashers[-1]
                    return files.enter_context(compression.compressing_writer(method, hashers[-1]))

                # closing(): a write that fails (disk full, a time limit) ends the
                # export's read transaction now, not when the generator is collected.
                total = Total() if progress is not None else None
                lines = files.enter_context(
                    closing(engine.export_lines(kind.key, conf.plant_zone(), start, end, EXPORT_CHUNK, total))
                )
                if total is not None:
                    lines = _reporting(lines, kind, progress, total)
                counts = write(open_part, lines, conf.csv_max_lines())
            for tmp, hasher in zip(out.tmps, hashers, strict=True):
                on_disk, written = tmp.stat().st_size, hasher.count
                if on_disk != written:
                    raise BackupError(
                        f"The {kind.label} came out {on_disk:,} bytes instead of {written:,}: "
                        "the backup disk lost data; check it and run the backup again."
                    )
        parts = [
            Part(final, rows, hasher.hexdigest())
            for final, (rows, _), hasher in zip(out.finals, counts, hashers, strict=True)
        ]
        return Written(out.final, sum(p.rows for p in parts), parts[0].sha256, parts=parts, details=details)

    return _run(kind, trigger=trigger, alias=alias, work=work)


def incremental_window(kind: layout.Kind, *, alias: str = "default") -> tuple[datetime | None, datetime]:
    """From where the last successful incremental export of this kind ended, to shortly before now.

    Failed and skipped runs record no window, so the next run covers what they
    missed: no gap, and windows never overlap.
    """
    last = (
        BackupRun.objects.using(alias)
        .succeeded()
        .of_kind(kind.run_kind)
        .filter(details__incremental=True)
        .order_by("-started_at", "-id")
        .first()
    )
    start = datetime.fromisoformat(last.details["window_end"]) if last else None
    end = (datetime.now(conf.plant_zone()) - timedelta(seconds=conf.export_lag_seconds())).replace(
        microsecond=0
    )
    return start, max(end, start) if start else end


class ExportOptions(TypedDict, total=False):
    alias: str
    when: datetime | None
    start: datetime | None  # readings with start <= timestamp < end
    end: datetime | None
    root: Path | None
    trigger: str
    compress: str | None
    progress: Progress | None
    incremental: bool  # the scheduled jobs: continue where the last incremental export ended


def export_csv(**options: Unpack[ExportOptions]) -> BackupResult:
    """Export readings (start <= timestamp < end) to BACKUP_DIR/csv_exports/."""
    return _export(layout.CSV, **options)


def export_json(**options: Unpack[ExportOptions]) -> BackupResult:
    """Export readings (start <= timestamp < end) to BACKUP_DIR/json_exports/."""
    return _export(layout.JSON, **options)


def export_stream(
    kind: str,
    *,
    start: datetime | None,
    end: datetime | None,
    alias: str = "default",
    chunk: int = STREAM_CHUNK,
) -> Iterator[bytes] | None:
    """The bytes of a CSV or JSON export of readings (start <= timestamp < end), block by block.

    The same lines and framing as export_csv and export_json, never split into
    parts; None when no reading is in the window.
    """
    engine = get_engine(alias)
    engine.check_available()
    lines = engine.export_lines(kind, conf.plant_zone(), start, end, chunk)
    # The first block is read now, so a locked or damaged database is reported
    # before a response has begun, not as a download that breaks off.
    try:
        first = next(lines, None)
    except BaseException:
        lines.close()
        raise
    if first is None:
        lines.close()
        return None

    def blocks() -> Iterator[bytes]:
        # closing(): a download the client abandons ends the read transaction now.
        with closing(lines):
            yield from STREAMS[kind](itertools.chain([first], lines))

    return blocks()


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
    trigger: str = "",
    on_result: Callable[[BackupResult], None] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    compress: str | None = None,
    progress: Progress | None = None,
    incremental: bool = False,
) -> list[BackupResult]:
    """Snapshot and export under one time stamp; stop at the first failure.

    Files finished before a failure stay: each is complete and verified.
    """
    get_engine(alias).check_available()
    when = now_stamp()
    results = []
    for kind in kinds:
        # A snapshot is always whole, and one step of SQLite's backup API: no window, no progress.
        window = {} if kind == "db" else {"start": start, "end": end, "progress": progress}
        if incremental and kind != "db":
            window = {"progress": progress, "incremental": True}
        result = OPERATIONS[kind](
            alias=alias, when=when, root=root, trigger=trigger, compress=compress, **window
        )
        results.append(result)
        if on_result:
            on_result(result)
    run_logger().info("Backup completed: %s", ", ".join(layout.KINDS[k].label for k in kinds))
    return results


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
    except (FileNotFoundError, NotADirectoryError):
        return removed
    limit = now.timestamp() - STALE_TEMP_AGE.total_seconds()
    for path in entries:
        if layout.TEMP_RE.match(path.name):
            try:
                if path.stat().st_mtime < limit:
                    discard(path)  # with any -journal SQLite left beside it
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
