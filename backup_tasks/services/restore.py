"""Guarded restore of a snapshot into the live database, and restore drills.

Both copy through the database's engine (engines.*.restore_into): the live
database keeps its own locking, and its run history stays the live one.
"""

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS
from django.db.migrations.loader import MigrationLoader

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError
from backup_tasks.engines import get_engine
from backup_tasks.engines.base import DamagedCopy, Engine, RestoreFailed
from backup_tasks.models import BackupRun
from backup_tasks.services import backup, history
from backup_tasks.services.runs import recorded
from backup_tasks.services.verify import foreign_database
from backup_tasks.storage import compression
from backup_tasks.storage.checksums import SUFFIX, file_sha256, recorded_checksum, sidecar, why_no_checksum
from backup_tasks.storage.safefile import MISSING, not_regular

# {operation: task id} of the backup tasks running now; None when that cannot be known.
RunningTasks = Callable[[], Mapping[str, str] | None]


@dataclass
class RestoreResult:
    path: str
    readings_before: int
    readings_after: int
    safety_snapshot: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DrillResult:
    path: str
    rows: int
    newest_reading: str | None
    duration_s: float

    def to_dict(self) -> dict:
        return asdict(self)


LOCK_WAIT_S = 10.0  # how long a restore waits for other sessions' locks before it gives up


def wait_for_sessions(engine: Engine, timeout: float = LOCK_WAIT_S) -> list[str]:
    """Sessions whose locks would block a restore, still there after up to timeout; [] once there are none."""
    deadline = time.monotonic() + timeout
    while True:
        found = engine.blocking_sessions()
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


@contextmanager
def restorable(engine: Engine, path: Path) -> Iterator[tuple[Path, int]]:
    """Refuse anything but an intact smartAquarium snapshot this code understands.

    Yields the plain database (decompressed beside the backup when needed)
    and its number of readings.
    """
    if what := not_regular(path):
        raise BackupError(f"Cannot restore {path}: it {what}. Nothing was restored.")
    expected = recorded_checksum(path)
    if expected is None and not_regular(sidecar(path)) == MISSING:
        raise BackupError(
            f"{path} has no checksum beside it ({path.name}{SUFFIX}): copy the .sha256 file along with "
            "the backup. Nothing was restored."
        )
    if expected is None:
        raise BackupError(f"{path} has no checksum to trust: {why_no_checksum(path)}. Nothing was restored.")
    if file_sha256(path) != expected:
        raise BackupError(
            f"{path} does not match its checksum: the file was damaged or changed after it was "
            "written. Pick another backup; nothing was restored."
        )
    with compression.plain_copy(path) as plain:
        try:
            rows = engine.verify_copy(plain).rows
        except DamagedCopy as exc:
            raise BackupError(f"{path} cannot be restored: {exc}. Nothing was restored.") from None
        _check_schema(engine, path, plain)
        yield plain, rows


def _check_schema(engine: Engine, path: Path, plain: Path) -> None:
    if problem := foreign_database(engine, plain):
        raise BackupError(f"{path} is {problem}. Nothing was restored.")
    migrations = engine.applied_migrations(plain)
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    newer = sorted(f"{app}.{name}" for app, name in migrations - known)
    if newer:
        raise BackupError(
            f"{path} comes from a newer version of smartAquarium (unknown migrations: {', '.join(newer[:3])}): "
            "upgrade this installation first. Nothing was restored."
        )


def restore_snapshot(
    *,
    path: Path,
    running_tasks: RunningTasks,
    alias: str = DEFAULT_DB_ALIAS,
    trigger: str = "",
    confirm: Callable[[int, int], bool] | None = None,
) -> RestoreResult:
    """Replace the live database's content with a verified snapshot.

    Refused while running_tasks() names a backup task at work (the door passes
    the task queue's locks). `confirm(readings_now, readings_in_backup)` is
    asked before anything changes; a safety snapshot of the live database is
    taken first.
    """
    # Recorded once finished: a record made before would be overwritten with
    # the snapshot's own history.
    with recorded(BackupRun.Kind.RESTORE, trigger=trigger, alias=alias, when_finished=True) as run:
        run.file = str(path)
        engine = get_engine(alias)
        engine.check_available()
        if engine.is_live_file(path):
            # Read outside the engine, it would lose this process the database's locks.
            raise BackupError(
                f"{path} is the live database itself: restore a snapshot from "
                f"{layout.DB.directory()}. Nothing was restored."
            )
        with restorable(engine, path) as (plain, rows_in_backup):
            busy = running_tasks()
            if busy:
                operation, task = next(iter(busy.items()))
                raise BackupError(
                    f"A backup task is running ({operation.replace('_', ' ')}, task {task}): wait for it "
                    "to finish or stop the worker, then restore. Nothing was restored."
                )
            if blocking := wait_for_sessions(engine):
                raise BackupError(
                    f"Other sessions hold locks a restore would wait for, still after {LOCK_WAIT_S:g} s: "
                    f"{'; '.join(blocking[:3])}. Let them finish or stop them, then restore. Nothing was restored."
                )
            before = engine.count_readings()
            if confirm is not None and not confirm(before, rows_in_backup):
                raise BackupError("Restore cancelled: the live database was not changed.")
            safety = backup.snapshot_database(
                alias=alias, trigger=f"safety snapshot before restoring {path.name}"
            )
            try:
                engine.restore_into(plain, keep_tables=[BackupRun._meta.db_table])
            except RestoreFailed as exc:
                raise BackupError(
                    f"The restore failed ({exc}); the live database is unchanged or can be brought back "
                    f"from the safety snapshot {safety.path}."
                ) from None
            after = engine.count_readings()
        run.rows = after
        run.details = {"readings_before": before, "readings_after": after, "safety_snapshot": safety.path}
    return RestoreResult(str(path), before, after, safety.path)


@contextmanager
def fetched(
    moment: datetime, *, where: str = history.LOCAL, root: Path | None = None
) -> Iterator[tuple[Path, "history.Point"]]:
    """The newest database restore point at or before moment, as a file with its .sha256 in a scratch folder."""
    repo, point = history.point_at(moment, where=where)
    parent = layout.DB.directory(root)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".history_{point.short_id}.", suffix=".tmp", dir=parent))
    try:
        yield history.fetch(repo, point, folder), point
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restore_at(
    *,
    moment: datetime,
    running_tasks: RunningTasks,
    where: str = history.LOCAL,
    alias: str = DEFAULT_DB_ALIAS,
    trigger: str = "",
    confirm: Callable[[int, int], bool] | None = None,
) -> RestoreResult:
    """Restore the newest restore point at or before moment (plant time), local or offsite.

    The point's file is checked against the SHA-256 recorded at backup time and
    by the engine's integrity check, then goes the same guarded way as a file.
    """
    with fetched(moment, where=where) as (path, point):
        result = restore_snapshot(
            path=path, running_tasks=running_tasks, alias=alias, trigger=trigger, confirm=confirm
        )
    taken = point.time.astimezone(conf.plant_zone()).strftime("%Y-%m-%d %H:%M:%S")
    result.path = f"{path.name} (restore point {point.short_id} of {taken}, {where})"
    return result


def restore_drill(
    *, alias: str = DEFAULT_DB_ALIAS, root: Path | None = None, trigger: str = ""
) -> DrillResult:
    """Restore the newest snapshot into a scratch copy and check it against its record."""
    with recorded(BackupRun.Kind.DRILL, trigger=trigger, alias=alias) as run:
        began = time.monotonic()
        engine = get_engine(alias)
        snapshots = layout.backups(layout.DB, root)
        if not snapshots:
            raise BackupError("No database snapshot to drill: run 'python manage.py backup_database' first.")
        path = snapshots[-1][1]
        run.file = str(path)
        record = BackupRun.objects.using(alias).last_success_for(path)
        if record is None:
            raise BackupError(f"No record of how {path.name} was taken: nothing to compare the restore with.")
        with restorable(engine, path) as (plain, _):
            try:
                restored = engine.drill(plain)
                problem = None
            except RestoreFailed as exc:
                raise BackupError(f"The drill could not restore {path.name}: {exc}.") from None
            except DamagedCopy as exc:
                restored, problem = None, str(exc)
        if restored is None:
            raise BackupError(f"Restore drill of {path.name} failed: {problem}.")
        rows, newest_at = restored.rows, restored.newest_reading
        mismatches = []
        if rows != record.rows:
            mismatches.append(f"{rows:,} readings restored, {record.rows:,} recorded")
        if newest_at != record.newest_reading:
            mismatches.append(f"newest reading {newest_at} restored, {record.newest_reading} recorded")
        run.rows, run.newest_reading = rows, newest_at
        run.details = {"snapshot": str(path), "recorded_rows": record.rows}
        if mismatches:
            raise BackupError(f"Restore drill of {path.name} failed: {'; '.join(mismatches)}.")
        duration = time.monotonic() - began
    return DrillResult(
        str(path), rows, newest_at.astimezone(conf.plant_zone()).isoformat() if newest_at else None, duration
    )


def history_drill(
    *, alias: str = DEFAULT_DB_ALIAS, root: Path | None = None, trigger: str = "", offsite: bool = False
) -> list[DrillResult]:
    """Restore the newest database restore point and one random older one into scratch copies.

    Each is checked against its checksum, the engine's integrity check and the
    readings recorded when it was taken. offsite: from the offsite repository.
    """
    where = history.OFFSITE if offsite else history.LOCAL
    results = []
    with recorded(BackupRun.Kind.DRILL, trigger=trigger, alias=alias) as run:
        engine = get_engine(alias)
        repo = history.repository_named(where)
        points = history.drill_points(where=where)
        if not points:
            raise BackupError(f"No database restore point in the {where} history to drill yet.")
        parent = layout.DB.directory(root)
        parent.mkdir(parents=True, exist_ok=True)
        run.details = {"repository": where, "points": []}
        for point in points:
            began = time.monotonic()
            folder = Path(tempfile.mkdtemp(prefix=f".history_{point.short_id}.", suffix=".tmp", dir=parent))
            try:
                path = history.fetch(repo, point, folder)
                with restorable(engine, path) as (plain, _):
                    try:
                        # A scratch copy the engine makes and removes: a file beside it on
                        # SQLite, a scratch database on PostgreSQL.
                        restored = engine.drill(plain)
                    except (RestoreFailed, DamagedCopy) as exc:
                        raise BackupError(
                            f"Restore drill of {where} restore point {point.short_id} failed: {exc}."
                        ) from None
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            recorded_rows = point.tag("rows")
            if recorded_rows is not None and int(recorded_rows) != restored.rows:
                raise BackupError(
                    f"Restore drill of {where} restore point {point.short_id} failed: {restored.rows:,} "
                    f"readings restored, {int(recorded_rows):,} recorded."
                )
            newest = restored.newest_reading
            run.details["points"].append({"id": point.short_id, "rows": restored.rows})
            results.append(
                DrillResult(
                    f"{where} restore point {point.short_id} ({path.name})",
                    restored.rows,
                    newest.astimezone(conf.plant_zone()).isoformat() if newest else None,
                    time.monotonic() - began,
                )
            )
        run.file = repo.shown
        run.rows = results[0].rows
    return results
