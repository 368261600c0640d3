"""Backup: the database snapshot, the CSV and JSON exports, and the complete backup of all three.

Each file is written under a temporary name, checked, given its checksum and
recorded as a run; the disk guard refuses to start what the disk cannot hold.
"""

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypedDict, Unpack

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError, DiskFull
from backup_tasks.core.units import human_size
from backup_tasks.engines import get_engine
from backup_tasks.models import BackupRun
from backup_tasks.services import history
from backup_tasks.services.cleanup import cleanup_old_backups
from backup_tasks.services.runs import recorded
from backup_tasks.storage import compression
from backup_tasks.storage.checksums import HashingWriter, file_sha256, write_checksum
from backup_tasks.storage.formats import STREAMS, WRITERS
from backup_tasks.storage.log import run_logger
from backup_tasks.storage.safefile import atomic_output, disk_usage, ensure_dir, written_back

EXPORT_CHUNK = 10_000
STREAM_CHUNK = 2_000  # lines per block of a download: a few hundred KB


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


def _run(
    kind: layout.Kind, *, trigger: str, alias: str, when: datetime, work: Callable[[], Written]
) -> BackupResult:
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
        # Verified and named: now a restore point in the history (when restic is there).
        stored = history.store(
            kind,
            [part.path for part in parts],
            when=when,
            run_id=run.record.pk if run.record else None,
            rows=result.rows,
        )
        if stored is not None:
            run.details["history"] = stored.to_dict()
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
    log.warning(
        "Disk guard: %s needs about %s, %s free: cleaning up first",
        kind.label,
        human_size(need),
        human_size(free),
    )
    cleanup_old_backups(
        root=root, alias=alias, trigger=f"disk guard before {kind.label} ({trigger or 'no trigger'})"
    )
    free = free_bytes(folder)
    if free < need:
        raise DiskFull(
            f"Not enough space on the backup disk: need about {human_size(need)}, {human_size(free)} free in {folder}. "
            "Nothing was written; free up space or move BACKUP_DIR to a larger disk."
        )


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


def namer(kind: layout.Kind, method: str, suffix: str = "") -> Callable[[datetime, int], str]:
    ending = compression.suffix(method)
    return lambda when, part: kind.file_name(when, part, ending, suffix)


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
    name_for = namer(layout.DB, method, engine.snapshot_suffix)

    def work() -> Written:
        engine.check_available()
        folder = layout.DB.directory(root)
        # size_bytes() looks with stat() only: opening the live database file would
        # drop the locks SQLite holds on it in this process.
        ensure_space(layout.DB, root=root, alias=alias, trigger=trigger, estimate_now=engine.size_bytes())
        with atomic_output(folder, name_for, when, "the database backup") as out:
            if method == "none":
                with written_back(out.tmp):
                    snapshot = engine.snapshot(out.tmp, with_sha256=True, for_history=history.enabled())
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

    return _run(layout.DB, trigger=trigger, alias=alias, when=when, work=work)


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

    return _run(kind, trigger=trigger, alias=alias, when=when, work=work)


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


# The service that writes each kind of backup, by its layout key (the guide's --type).
SERVICE_OF_KIND: dict[str, Callable[..., BackupResult]] = {
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
        # A snapshot is always whole, and taken in one step: no window, no progress.
        window = {} if kind == "db" else {"start": start, "end": end, "progress": progress}
        if incremental and kind != "db":
            window = {"progress": progress, "incremental": True}
        result = SERVICE_OF_KIND[kind](
            alias=alias, when=when, root=root, trigger=trigger, compress=compress, **window
        )
        results.append(result)
        if on_result:
            on_result(result)
    run_logger().info("Backup completed: %s", ", ".join(layout.KINDS[k].label for k in kinds))
    after_backup(alias=alias, root=root)
    return results


def after_backup(*, alias: str = "default", root: Path | None = None) -> None:
    """Once a backup is in the history: thin the plain files, then copy offsite (never failing the backup)."""
    if not history.enabled():
        return
    history.thin_plain(root=root, alias=alias)
    copied = history.copy_offsite()
    if copied is not None:
        # Recorded with the newest run, where --check and --status read the offsite lag.
        last = BackupRun.objects.using(alias).succeeded().order_by("-id").first()
        if last is not None:
            last.details = {**(last.details or {}), "offsite": copied.to_dict()}
            last.save(using=alias, update_fields=["details"])
