"""SQLite: online snapshots with the backup API, exports formatted in SQL."""

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from backup_tasks import errors
from backup_tasks.engines.base import Engine, Snapshot
from backup_tasks.manifest import file_sha256
from readings.models import Reading

HEADER = b"SQLite format 3\x00"


class DamagedCopy(Exception):
    """What is wrong with a copy of a database, in a few words."""


# Each reading becomes one finished line inside SQLite: formatting 15.8
# million rows in per-row Python costs several times the query itself.
# substr drops fractions of a second: SQLite would round .9995 s up.
LINE_SQL = {
    "csv": "printf('%.2f,%.2f,%.2f,%.2f,%.15g,%s', water_temperature, air_temperature,"
    " humidity, setpoint, pid_output, strftime('%Y-%m-%d %H:%M:%S', substr(timestamp, 1, 19), ?))",
    "json": 'printf(\'{"water_temperature":%.2f,"air_temperature":%.2f,"humidity":%.2f,'
    '"setpoint":%.2f,"pid_output":%.15g,"timestamp":"%s"}\', water_temperature,'
    " air_temperature, humidity, setpoint, pid_output,"
    " strftime('%Y-%m-%d %H:%M:%S', substr(timestamp, 1, 19), ?))",
}
# The same lines when the zone is a whole number of hours off UTC (nearly
# every plant): minutes and seconds are then the stored ones, so one query
# per UTC hour passes the local 'YYYY-MM-DD HH' and SQLite only appends the
# stored ':MM:SS'. strftime on every row costs as much as the numbers' printf.
HOUR_LINE_SQL = {
    "csv": "printf('%.2f,%.2f,%.2f,%.2f,%.15g,%s%s', water_temperature, air_temperature,"
    " humidity, setpoint, pid_output, ?, substr(timestamp, 14, 6))",
    "json": 'printf(\'{"water_temperature":%.2f,"air_temperature":%.2f,"humidity":%.2f,'
    '"setpoint":%.2f,"pid_output":%.15g,"timestamp":"%s%s"}\', water_temperature,'
    " air_temperature, humidity, setpoint, pid_output, ?, substr(timestamp, 14, 6))",
}
HOUR = timedelta(hours=1)


class SQLiteEngine(Engine):
    vendor = "sqlite"

    @property
    def path(self) -> Path:
        return Path(self.settings_dict["NAME"])

    @property
    def busy_timeout(self) -> float:
        return float(self.settings_dict.get("OPTIONS", {}).get("timeout", 20))

    def describe(self) -> str:
        return f"SQLite database {self.path}"

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def check_available(self) -> None:
        name = str(self.settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise errors.BackupError("An in-memory database cannot be backed up: set DATABASE_URL to a file.")
        path = self.path
        if not path.is_file():
            raise errors.DatabaseMissing(
                f"The database {path} does not exist: check DATABASE_URL, or run "
                "'python manage.py migrate' to create a new one. Nothing was backed up."
            )
        try:
            with path.open("rb") as handle:
                header = handle.read(len(HEADER))
        except OSError as exc:
            raise errors.BackupError(f"Cannot read the database {path}: {exc.strerror}.") from None
        if not header:
            raise errors.DatabaseMissing(
                f"The database {path} is an empty file: check DATABASE_URL, or run "
                "'python manage.py migrate' to create the tables. Nothing was backed up."
            )
        if header != HEADER:
            raise errors.CorruptDatabase(
                f"The database {path} is not a SQLite database (damaged header): "
                "restore it from the last good backup. Earlier backups were not touched."
            )

    def connect(self) -> sqlite3.Connection:
        """A raw connection to the live database (never creates it)."""
        self.check_available()
        # mode=rw: never create an empty database where the real one is missing.
        uri = f"{self.path.resolve().as_uri()}?mode=rw"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        return db

    def snapshot(self, target: Path, *, with_sha256: bool = False) -> Snapshot:
        source = self.connect()
        try:
            copy = sqlite3.connect(target, isolation_level=None)
            try:
                # A temporary file needs neither a rollback journal nor syncs of its
                # own: a failed run discards it, and atomic_output fsyncs it once
                # before it gets its name.
                copy.execute("PRAGMA journal_mode=OFF")
                copy.execute("PRAGMA synchronous=OFF")
                # Online backup API in one step (pages=-1): a consistent copy
                # while the sensor loop keeps writing to the WAL. A stepped
                # backup restarts on every write; a file copy can be torn.
                source.backup(copy, pages=-1)
                # A backup file should be one self-contained file, not WAL.
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
        except sqlite3.Error as exc:
            raise self._translate(exc, target) from None
        finally:
            source.close()
        # The file is final now: hash it on the other core while SQLite checks it.
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(file_sha256, target) if with_sha256 else None
            try:
                rows, newest = check_copy(target)
            except DamagedCopy as exc:
                raise errors.CorruptDatabase(
                    f"The database {self.path} is corrupt ({exc}): "
                    "restore it from the last good backup. Earlier backups were not touched."
                ) from None
            except sqlite3.Error as exc:
                raise self._translate(exc, target) from None
            return Snapshot(rows, _parse(newest) if newest else None, digest.result() if digest else None)

    def export_lines(
        self, line_format: str, zone: ZoneInfo, start: datetime | None, end: datetime | None, chunk: int
    ) -> Iterator[list[str]]:
        db = self.connect()
        try:
            db.execute("BEGIN")  # One read snapshot across every query below.
            first = _edge(db, "MIN", start, end)
            if first is None:
                return
            last = _edge(db, "MAX", start, end)
            for seg_start, seg_end, offset in offset_segments(zone, first, last):
                # Every query gets its own bounds, clamped to the window, never the
                # window's condition beside them: SQLite walks one index range per
                # query, and picking the window's bound would make each hour's
                # query walk on to the end of the window.
                low = seg_start or first
                high = _earliest(seg_end, end)
                if offset % 3600 == 0:
                    yield from _by_hour(db, line_format, low, high, last, offset, chunk)
                else:
                    yield from _by_segment(db, line_format, low, high, offset, chunk)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        finally:
            db.close()

    def _translate(self, exc: sqlite3.Error, target: Path | None = None) -> errors.BackupError:
        message = str(exc)
        if "malformed" in message or "not a database" in message:
            return errors.CorruptDatabase(
                f"The database {self.path} is corrupt ({message}): restore it from the last good "
                "backup. Earlier backups were not touched."
            )
        if "no such table" in message:
            return errors.CorruptDatabase(
                f"The database {self.path} has no readings table ({message}): is DATABASE_URL the "
                "smartAquarium database? Run 'python manage.py migrate' for a new one."
            )
        if "locked" in message or "busy" in message:
            return errors.DatabaseBusy(
                f"The database {self.path} stayed locked for {self.busy_timeout:g} s: try again."
            )
        if target is not None and ("full" in message or "I/O error" in message):
            return errors.DiskFull(
                f"Could not write the snapshot in {target.parent} ({message}): free up space on the "
                "backup disk or run 'python manage.py backup_database --cleanup'."
            )
        return errors.BackupError(f"SQLite error on {self.path}: {message}.")


def check_copy(path: Path) -> tuple[int, str | None]:
    """Prove that a fresh copy is a whole, sound database; return its readings.

    The file must be as long as its header says, and pass SQLite's full
    PRAGMA integrity_check: every page, cell, free page and index entry. The
    backup API copies pages without reading them, so the copy carries any
    damage of the source; this is where it is caught, before the file is
    named. At a year of readings the check is most of a snapshot's time
    (about 10 s on one core); the checksum is computed meanwhile on the other.
    """
    with path.open("rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or header[: len(HEADER)] != HEADER:
        raise DamagedCopy("its copy is not a SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size = path.stat().st_size
    if page_size * pages != size:
        raise DamagedCopy(
            f"its copy has {size:,} bytes where its header says {pages:,} pages of {page_size:,}"
        )
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check(20)")]
        if problems != ["ok"]:
            raise DamagedCopy(f"integrity check: {problems[0]}")
        table = Reading._meta.db_table
        # Two queries: COUNT(*) alone counts the index's pages and MAX() alone is one
        # step, where the pair in one query walks every reading (7 s at a year).
        rows = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        newest = db.execute(f"SELECT MAX(timestamp) FROM {table}").fetchone()[0]
        return rows, newest
    finally:
        db.close()


def _edge(
    db: sqlite3.Connection, which: str, start: datetime | None, end: datetime | None
) -> datetime | None:
    """The first (MIN) or last (MAX) reading time in [start, end).

    One aggregate per query: SQLite answers a lone MIN() or MAX() with one step
    into the timestamp index, but MIN() and MAX() together with a walk of it all.
    """
    where, params = _range_sql(start, end)
    sql = f"SELECT {which}(timestamp) FROM {Reading._meta.db_table}{where}"
    found = db.execute(sql, params).fetchone()[0]
    return None if found is None else _parse(found)


def _range_sql(low: datetime | None, high: datetime | None) -> tuple[str, list[str]]:
    """WHERE low <= timestamp < high (either bound may be None) as SQL and parameters."""
    clauses, params = [], []
    if low is not None:
        clauses.append("timestamp >= ?")
        params.append(_utc_text(low))
    if high is not None:
        clauses.append("timestamp < ?")
        params.append(_utc_text(high))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _earliest(*moments: datetime | None) -> datetime | None:
    """The earliest of the bounds given (None: no bound)."""
    given = [moment for moment in moments if moment is not None]
    return min(given) if given else None


def _by_segment(
    db: sqlite3.Connection,
    line_format: str,
    low: datetime,
    high: datetime | None,
    offset: int,
    chunk: int,
) -> Iterator[list[str]]:
    """Lines of readings in [low, high), one run of constant offset, shifted by strftime on every row."""
    where, params = _range_sql(low, high)
    cursor = db.execute(
        f"SELECT {LINE_SQL[line_format]} FROM {Reading._meta.db_table}{where} ORDER BY timestamp, id",
        [f"{offset:+d} seconds", *params],
    )
    while rows := cursor.fetchmany(chunk):
        yield [row[0] for row in rows]


def _by_hour(
    db: sqlite3.Connection,
    line_format: str,
    low: datetime,
    high: datetime | None,
    last: datetime,
    offset: int,
    chunk: int,
) -> Iterator[list[str]]:
    """Lines of readings in [low, high) for a whole-hour offset: one query per UTC hour.

    last is the newest reading of the export: nothing after it is asked for.
    """
    table = Reading._meta.db_table
    lines_sql = (
        f"SELECT {HOUR_LINE_SQL[line_format]} FROM {table} WHERE timestamp >= ? AND timestamp < ?"
        " ORDER BY timestamp, id"
    )
    shift = timedelta(seconds=offset)
    hour = low.replace(minute=0, second=0, microsecond=0)
    while hour <= last and (high is None or hour < high):
        until = _earliest(hour + HOUR, high)
        prefix = (hour + shift).strftime("%Y-%m-%d %H")
        cursor = db.execute(lines_sql, [prefix, _utc_text(max(hour, low)), _utc_text(until)])
        found = False
        while rows := cursor.fetchmany(chunk):
            found = True
            yield [row[0] for row in rows]
        if found:
            hour = until
            continue
        # An hour without readings (the plant was off): jump to the next reading
        # instead of asking for every empty hour in between.
        following = _edge(db, "MIN", until, high)
        if following is None:
            return
        hour = following.replace(minute=0, second=0, microsecond=0)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _utc_text(value: datetime | None) -> str | None:
    """The way Django stores an aware datetime in SQLite: naive UTC, str()."""
    if value is None:
        return None
    return str(value.astimezone(UTC).replace(tzinfo=None))


def offset_segments(
    zone: ZoneInfo, first: datetime, last: datetime
) -> list[tuple[datetime | None, datetime | None, int]]:
    """Split [first, last] into runs of constant UTC offset in zone.

    Returns (start, end, offset_seconds); the first start and last end are None
    (open). Lets SQL shift timestamps by a constant instead of calling the
    time zone database once per row.
    """

    def offset(epoch: int) -> int:
        return int(datetime.fromtimestamp(epoch, zone).utcoffset().total_seconds())

    segments: list[tuple[datetime | None, datetime | None, int]] = []
    seg_start: datetime | None = None
    probe, end = int(first.timestamp()), int(last.timestamp()) + 1
    current = offset(probe)
    while probe < end:
        nxt = min(probe + 3600, end)  # No zone changes its offset twice within an hour.
        if offset(nxt) != current:
            low, high = probe, nxt  # offset(low) == current != offset(high)
            while high - low > 1:
                mid = (low + high) // 2
                if offset(mid) == current:
                    low = mid
                else:
                    high = mid
            boundary = datetime.fromtimestamp(high, UTC)
            segments.append((seg_start, boundary, current))
            seg_start, current = boundary, offset(high)
        probe = nxt
    segments.append((seg_start, None, current))
    return segments
