"""Guarded restore of a snapshot into the live database, and restore drills.

Both copy with SQLite's online backup API: the live database is written page
by page under SQLite's own locking, never replaced by a file copy behind the
back of a process that has it open.
"""

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from backup_tasks import compression, conf, flight, layout
from backup_tasks.engines import get_engine
from backup_tasks.engines.sqlite import SQLiteEngine
from backup_tasks.errors import BackupError
from backup_tasks.manifest import SUFFIX, file_sha256, recorded_checksum
from backup_tasks.models import BackupRun
from backup_tasks.runs import Run, notify_failure, record_finished, recorded
from backup_tasks.verify import ContentError, open_snapshot, plain_snapshot_rows

RUN_TABLE = BackupRun._meta.db_table


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


@contextmanager
def restorable(path: Path) -> Iterator[tuple[Path, int]]:
    """Refuse anything but an intact smartAquarium snapshot this code understands.

    Yields the plain database (decompressed beside the backup when needed)
    and its number of readings.
    """
    if not path.is_file():
        raise BackupError(f"No such file: {path}. Nothing was restored.")
    expected = recorded_checksum(path)
    if expected is None:
        raise BackupError(
            f"{path} has no checksum beside it ({path.name}{SUFFIX}): copy the .sha256 file along with "
            "the backup. Nothing was restored."
        )
    if file_sha256(path) != expected:
        raise BackupError(
            f"{path} does not match its checksum: the file was damaged or changed after it was "
            "written. Pick another backup; nothing was restored."
        )
    with compression.plain_copy(path) as plain:
        try:
            rows = plain_snapshot_rows(plain)
        except ContentError as exc:
            raise BackupError(f"{path} cannot be restored: {exc}. Nothing was restored.") from None
        _check_schema(path, plain)
        yield plain, rows


def _check_schema(path: Path, plain: Path) -> None:
    db = open_snapshot(plain)
    try:
        migrations = set(db.execute("SELECT app, name FROM django_migrations").fetchall())
    except sqlite3.DatabaseError:
        raise BackupError(
            f"{path} is not a smartAquarium database (it has no migration history). Nothing was restored."
        ) from None
    finally:
        db.close()
    if not any(app == "readings" for app, _ in migrations):
        raise BackupError(
            f"{path} is a database of another application (no smartAquarium readings). Nothing was restored."
        )
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    newer = sorted(f"{app}.{name}" for app, name in migrations - known)
    if newer:
        raise BackupError(
            f"{path} comes from a newer version of smartAquarium (unknown migrations: {', '.join(newer[:3])}): "
            "upgrade this installation first. Nothing was restored."
        )


def _live_engine(alias: str) -> SQLiteEngine:
    engine = get_engine(alias)
    if not isinstance(engine, SQLiteEngine):
        raise BackupError("Restore works on SQLite databases; use your database's own tools.")
    return engine


def _count_readings(db: sqlite3.Connection) -> int:
    try:
        return db.execute("SELECT COUNT(*) FROM readings_reading").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0


def _save_run_history(live: sqlite3.Connection) -> bool:
    """Copy the live run history aside (a temp table survives the restore)."""
    try:
        live.execute(f"CREATE TEMP TABLE saved_runs AS SELECT * FROM main.{RUN_TABLE}")
    except sqlite3.DatabaseError:
        return False
    return True


def _put_back_run_history(live: sqlite3.Connection) -> None:
    """The history of the backups is the live one, not the snapshot's older copy."""
    restored = {row[1] for row in live.execute(f"PRAGMA main.table_info({RUN_TABLE})")}
    if not restored:
        return  # A snapshot from before run history existed: 'migrate' brings the table.
    saved = [row[1] for row in live.execute("PRAGMA temp.table_info(saved_runs)")]
    names = ", ".join(name for name in saved if name in restored)
    live.execute(f"DELETE FROM main.{RUN_TABLE}")
    live.execute(f"INSERT INTO main.{RUN_TABLE} ({names}) SELECT {names} FROM temp.saved_runs")
    live.execute("DROP TABLE temp.saved_runs")


def restore_snapshot(
    *,
    path: Path,
    alias: str = DEFAULT_DB_ALIAS,
    trigger: str = "",
    confirm: Callable[[int, int], bool] | None = None,
) -> RestoreResult:
    """Replace the live database's content with a verified snapshot.

    `confirm(readings_now, readings_in_backup)` is asked before anything
    changes; a safety snapshot of the live database is taken first.
    """
    run = Run(kind=BackupRun.Kind.RESTORE, trigger=trigger, file=str(path))
    started, began = timezone.now(), time.monotonic()
    try:
        engine = _live_engine(alias)
        engine.check_available()
        with restorable(path) as (plain, rows_in_backup):
            before, after, safety = _replace_live(engine, plain, rows_in_backup, alias, path, confirm)
    except BaseException as exc:
        run.status = BackupRun.Status.FAILED
        run.error = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        _finish_run(run, alias, started, began)
        notify_failure(run)
        raise
    run.rows = after
    run.details = {"readings_before": before, "readings_after": after, "safety_snapshot": safety.path}
    _finish_run(run, alias, started, began)
    return RestoreResult(str(path), before, after, safety.path)


def _replace_live(
    engine: SQLiteEngine,
    plain: Path,
    rows_in_backup: int,
    alias: str,
    path: Path,
    confirm: Callable[[int, int], bool] | None,
):
    from backup_tasks import services

    busy = flight.running()
    if busy:
        operation, task = next(iter(busy.items()))
        raise BackupError(
            f"A backup task is running ({operation.replace('_', ' ')}, task {task}): wait for it to finish "
            "or stop the worker, then restore. Nothing was restored."
        )
    live = engine.connect()
    try:
        before = _count_readings(live)
    finally:
        live.close()
    if confirm is not None and not confirm(before, rows_in_backup):
        raise BackupError("Restore cancelled: the live database was not changed.")
    safety = services.snapshot_database(alias=alias, trigger=f"safety snapshot before restoring {path.name}")
    connections[alias].close()
    source, live = open_snapshot(plain), engine.connect()
    try:
        history = _save_run_history(live)
        source.backup(live, pages=-1)
        live.execute("PRAGMA journal_mode=WAL")
        if history:
            _put_back_run_history(live)
        after = _count_readings(live)
    except sqlite3.Error as exc:
        raise BackupError(
            f"The restore failed ({exc}); the live database is unchanged or can be brought back from "
            f"the safety snapshot {safety.path}."
        ) from None
    finally:
        source.close()
        live.close()
    return before, after, safety


def _finish_run(run: Run, alias: str, started: datetime, began: float) -> None:
    # Recorded after the fact: a record made before the restore would be
    # overwritten with the snapshot's own history.
    run.duration_s = time.monotonic() - began
    record_finished(run, alias=alias, started_at=started)


def _drill_copy(path: Path, plain: Path) -> tuple[int, str | None, list[str]]:
    """Restore plain into a scratch file through the backup API; count and check what arrived."""
    scratch = path.with_name(f".drill_{plain.name}.{int(time.time())}.tmp")
    try:
        source, target = open_snapshot(plain), sqlite3.connect(scratch)
        try:
            source.backup(target, pages=-1)
            problems = [row[0] for row in target.execute("PRAGMA integrity_check(5)")]
            # Apart: together they walk every reading, alone each reads the index's pages or one entry.
            rows = target.execute("SELECT COUNT(*) FROM readings_reading").fetchone()[0]
            newest = target.execute("SELECT MAX(timestamp) FROM readings_reading").fetchone()[0]
        finally:
            source.close()
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"The drill could not restore {path.name}: {exc}.") from None
    finally:
        scratch.unlink(missing_ok=True)
    return rows, newest, problems


def restore_drill(
    *, alias: str = DEFAULT_DB_ALIAS, root: Path | None = None, trigger: str = ""
) -> DrillResult:
    """Restore the newest snapshot into a scratch file and check it against its record."""
    with recorded(BackupRun.Kind.DRILL, trigger=trigger, alias=alias) as run:
        began = time.monotonic()
        snapshots = layout.backups(layout.DB, root)
        if not snapshots:
            raise BackupError("No database snapshot to drill: run 'python manage.py backup_database' first.")
        path = snapshots[-1][1]
        run.file = str(path)
        record = (
            BackupRun.objects.using(alias)
            .succeeded()
            .of_kind(BackupRun.Kind.SNAPSHOT)
            .filter(file__endswith=f"/{path.name}")
            .order_by("-started_at")
            .first()
        )
        if record is None:
            raise BackupError(f"No record of how {path.name} was taken: nothing to compare the restore with.")
        with restorable(path) as (plain, _):
            rows, newest, problems = _drill_copy(path, plain)
        newest_at = datetime.fromisoformat(newest).replace(tzinfo=UTC) if newest else None
        mismatches = []
        if problems != ["ok"]:
            mismatches.append(f"integrity check failed: {problems[0]}")
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
