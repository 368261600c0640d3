"""SQLite: online snapshots with the backup API, exports formatted in SQL."""

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db import connections

from backup_tasks.core import errors
from backup_tasks.engines.base import DamagedCopy, Engine, Misconfigured, RestoreFailed, Snapshot
from backup_tasks.storage.checksums import file_sha256
from readings.models import Reading

HEADER = b"SQLite format 3\x00"


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
    @property
    def path(self) -> Path:
        return Path(self.settings_dict["NAME"])

    @property
    def busy_timeout(self) -> float:
        return float(self.settings_dict.get("OPTIONS", {}).get("timeout", 20))

    def misconfiguration(self) -> Misconfigured | None:
        """The sensor loop and backups share the database only in WAL mode."""
        name = str(self.settings_dict["NAME"])
        # A missing database is reported by the command that needs it; a
        # check must never create an empty one.
        if name == ":memory:" or "mode=memory" in name or not Path(name).is_file():
            return None
        try:
            with connections[self.alias].cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0]
        except Exception:
            return None  # Unreadable or corrupt: the backup command says so in its own words.
        if str(mode).lower() == "wal":
            return None
        return Misconfigured(
            f"The SQLite database {name} is in {mode!r} journal mode, not WAL: the sensor "
            "loop would fail with 'database is locked' while a backup reads.",
            "Keep init_command 'PRAGMA journal_mode=WAL' in DATABASES OPTIONS, and keep "
            "the database on a local disk (WAL does not work on network shares).",
        )

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def is_live_file(self, path: Path) -> bool:
        """Whether path is the live database, its -wal or its -shm, by any name or link (stat() only)."""
        try:
            given = path.stat()
        except OSError:
            return False
        for own in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                info = own.stat()
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == (given.st_dev, given.st_ino):
                return True
        return False

    def check_available(self) -> None:
        """Raise a BackupError when the database is missing, empty or not a SQLite database."""
        self._check_file()
        try:
            # No busy timeout: a writer holding the database proves it is one,
            # and the operation that follows waits for it in its own connection.
            db = sqlite3.connect(self._uri(), uri=True, timeout=0, isolation_level=None)
            try:
                db.execute("PRAGMA schema_version")
            finally:
                db.close()
        except sqlite3.Error as exc:
            if "not a database" in str(exc):
                raise errors.CorruptDatabase(
                    f"The database {self.path} is not a SQLite database (damaged header): "
                    "restore it from the last good backup. Earlier backups were not touched."
                ) from None
            if not _busy(str(exc)):
                raise self._translate(exc) from None

    def _check_file(self) -> None:
        """What stat() tells of the live database: there, a file, not empty, readable.

        Never open() the live database, its -wal or its -shm outside SQLite, not
        even to read the header: POSIX advisory locks belong to the process and
        the file, and closing ANY descriptor of the file drops every lock the
        process holds on it, those of SQLite's own connections in the web server
        or the worker included. SQLite then believes it holds locks it has lost,
        and another process may checkpoint and reset the WAL under it ("How To
        Corrupt An SQLite Database File", section 2.2). stat() opens nothing; the
        header is read by SQLite, whose connections share their locks safely.
        """
        name = str(self.settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise errors.BackupError("An in-memory database cannot be backed up: set DATABASE_URL to a file.")
        path = self.path
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            info = None
        except OSError as exc:
            raise errors.BackupError(f"Cannot read the database {path}: {exc.strerror}.") from None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise errors.DatabaseMissing(
                f"The database {path} does not exist: check DATABASE_URL, or run "
                "'python manage.py migrate' to create a new one. Nothing was backed up."
            )
        if info.st_size == 0:
            raise errors.DatabaseMissing(
                f"The database {path} is an empty file: check DATABASE_URL, or run "
                "'python manage.py migrate' to create the tables. Nothing was backed up."
            )
        if not os.access(path, os.R_OK):
            raise errors.BackupError(f"Cannot read the database {path}: Permission denied.")

    def _uri(self) -> str:
        # mode=rw: never create an empty database where the real one is missing.
        return f"{self.path.resolve().as_uri()}?mode=rw"

    def connect(self) -> sqlite3.Connection:
        """A raw connection to the live database (never creates it)."""
        self.check_available()
        try:
            db = sqlite3.connect(self._uri(), uri=True, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        return db

    def snapshot(self, target: Path, *, with_sha256: bool = False, for_history: bool = False) -> Snapshot:
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
            raise self._translate(exc, target, "snapshot") from None
        finally:
            source.close()
        # The file is final now: hash it on the other core while SQLite checks it.
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(file_sha256, target) if with_sha256 else None
            try:
                rows, newest = check_copy(target)
            except DamagedCopy as exc:
                raise self._damaged(str(exc), "snapshot", checking=True) from None
            except sqlite3.Error as exc:
                raise self._translate(exc, target, "snapshot", checking=True) from None
            return Snapshot(rows, _parse(newest) if newest else None, digest.result() if digest else None)

    def verify_copy(self, path: Path) -> Snapshot:
        with path.open("rb") as handle:
            header = handle.read(len(HEADER))
        if header.startswith(b"PGDMP"):
            raise DamagedCopy(
                "a PostgreSQL dump, not a SQLite database: this installation runs on SQLite "
                "(restore it with DATABASE_URL set to a PostgreSQL database)"
            )
        if header != HEADER:
            raise DamagedCopy("not a SQLite database")
        try:
            db = _open_copy(path)
            try:
                if problem := _integrity_problem(db):
                    raise DamagedCopy(f"integrity check failed: {problem}")
                rows = db.execute(f"SELECT COUNT(*) FROM {Reading._meta.db_table}").fetchone()[0]
                newest = _newest_in(db)
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise DamagedCopy(f"not a readable snapshot: {exc}") from None
        return Snapshot(rows, _parse(newest) if newest else None)

    def applied_migrations(self, path: Path) -> set[tuple[str, str]]:
        db = _open_copy(path)
        try:
            return set(db.execute("SELECT app, name FROM django_migrations").fetchall())
        except sqlite3.DatabaseError:
            raise DamagedCopy("it has no migration history") from None
        finally:
            db.close()

    def count_readings(self) -> int:
        live = self.connect()
        try:
            return _readings_in(live)[0]
        except sqlite3.DatabaseError:
            return 0
        finally:
            live.close()

    def restore_into(
        self, source: Path, target: Path | None = None, *, keep_tables: Sequence[str] = ()
    ) -> None:
        """Online backup API from the snapshot, page by page under SQLite's own locking:
        the live database is never replaced by a file copy behind the back of a
        process that has it open."""
        if target is None:
            connections[self.alias].close()  # Django's connection must not keep the old pages.
        try:
            copy = _open_copy(source)
            into = self.connect() if target is None else sqlite3.connect(target)
            try:
                kept = [table for table in keep_tables if target is None and _set_aside(into, table)]
                copy.backup(into, pages=-1)
                if target is None:
                    into.execute("PRAGMA journal_mode=WAL")
                for table in kept:
                    _put_back(into, table)
            finally:
                copy.close()
                into.close()
        except sqlite3.Error as exc:
            raise RestoreFailed(str(exc)) from None

    def drill(self, plain: Path) -> Snapshot:
        scratch = plain.with_name(f".drill_{plain.name}.{int(time.time())}.tmp")
        try:
            self.restore_into(plain, scratch)
            return self.verify_copy(scratch)
        finally:
            scratch.unlink(missing_ok=True)

    def readings_rows(self, chunk: int = 50_000) -> Iterator[bytes]:
        # %!.17g: every digit a double needs to come back exactly the same.
        db = self.connect()
        try:
            db.execute("BEGIN")  # one read snapshot
            cursor = db.execute(
                "SELECT printf('%d,%!.17g,%!.17g,%!.17g,%!.17g,%!.17g,%s+00', id, water_temperature,"
                " air_temperature, humidity, setpoint, pid_output, timestamp)"
                f" FROM {Reading._meta.db_table} ORDER BY id"
            )
            while rows := cursor.fetchmany(chunk):
                yield ("\n".join(row[0] for row in rows) + "\n").encode()
        except sqlite3.Error as exc:
            raise self._translate(exc, what="move") from None
        finally:
            db.close()

    def export_lines(
        self,
        line_format: str,
        zone: ZoneInfo,
        start: datetime | None,
        end: datetime | None,
        chunk: int,
        count: Callable[[int], None] | None = None,
    ) -> Iterator[list[str]]:
        db = self.connect()
        try:
            db.execute("BEGIN")  # One read snapshot across every query below.
            if count is not None:
                # In the same read as the lines: a count taken before it misses
                # what the sensor loop adds meanwhile ("N + 2 of N readings").
                where, params = _range_sql(start, end)
                count(
                    db.execute(f"SELECT COUNT(*) FROM {Reading._meta.db_table}{where}", params).fetchone()[0]
                )
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
            raise self._translate(exc, what="export") from None
        finally:
            db.close()

    def _translate(
        self, exc: sqlite3.Error, target: Path | None = None, what: str = "", checking: bool = False
    ) -> errors.BackupError:
        message = str(exc)
        if "malformed" in message or "not a database" in message:
            if what:  # a read of the live database, or of our copy of it
                return self._damaged(message, what, checking)
            return self._corrupt(message)
        if "no such table" in message:
            return errors.CorruptDatabase(
                f"The database {self.path} has no readings table ({message}): is DATABASE_URL the "
                "smartAquarium database? Run 'python manage.py migrate' for a new one."
            )
        if _busy(message):
            return errors.DatabaseBusy(
                f"The database {self.path} stayed locked for {self.busy_timeout:g} s: try again."
            )
        if self.read_only(message):
            return errors.NotWritable(f"The {self.explain(exc)}")
        if target is not None and ("full" in message or "I/O error" in message):
            return errors.DiskFull(
                f"Could not write the snapshot in {target.parent} ({message}): free up space on the "
                "backup disk or run 'python manage.py backup_database --cleanup'."
            )
        return errors.BackupError(f"SQLite error on {self.path}: {message}.")

    def read_only(self, message: str) -> bool:
        """Whether SQLite failed because this user cannot write the database or its folder."""
        if "readonly" in message:
            return True
        # The database itself is there (stat() said so): SQLite cannot create its -wal or -shm.
        folder = self.path.parent
        return "unable to open" in message and not (
            os.access(self.path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)
        )

    def explain(self, exc: Exception) -> str:
        if not self.read_only(str(exc)):
            return str(exc)
        name = self.path.name
        return (
            f"database {self.path} cannot be written by this user ({exc}): make it and its folder "
            f"{self.path.parent} writable for the user that runs smartAquarium "
            f"(SQLite keeps {name}-wal and {name}-shm beside it)."
        )

    def _corrupt(self, finding: str) -> errors.CorruptDatabase:
        return errors.CorruptDatabase(
            f"The database {self.path} is corrupt ({finding}): restore it from the last good "
            "backup. Earlier backups were not touched."
        )

    def _damaged(self, finding: str, what: str, checking: bool = False) -> errors.BackupError:
        """A snapshot or export that found damage: is it the live database's, or only the read's?

        Telling an operator to restore a sound database loses every reading since
        the last backup, so the database is named corrupt only when it fails its
        own check, read again through a connection of its own.
        """
        found = "failed its check" if checking else "failed"
        try:
            live = self.live_problem()
        except sqlite3.Error as exc:
            return errors.CopyFailed(
                f"The {what} of the database {self.path} {found} ({finding}), and the live database "
                f"could not be checked again ({exc}): run the {what} again."
            )
        if live is not None:
            return self._corrupt(live)
        return errors.CopyFailed(
            f"The {what} of the database {self.path} {found} ({finding}), but the live database "
            f"was checked again and is sound: nothing needs restoring, run the {what} again."
        )

    def live_problem(self) -> str | None:
        """The first problem PRAGMA integrity_check finds in the live database; None when it is sound."""
        db = sqlite3.connect(self._uri(), uri=True, timeout=self.busy_timeout, isolation_level=None)
        try:
            problem = _integrity_problem(db)
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc) or "not a database" in str(exc):
                return str(exc)
            raise
        finally:
            db.close()
        return None if problem is None else f"integrity check: {problem}"


def first_problem(problems: list[str]) -> str:
    """The first problem integrity_check reports, on one line (it may head it with the schema's name)."""
    lines = [line for text in problems for line in text.splitlines() if not line.startswith("***")]
    return lines[0] if lines else "unknown problem"


def _busy(message: str) -> bool:
    return "locked" in message or "busy" in message


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
    # The readings are counted meanwhile, on a connection of their own (0.2 s at a year),
    # and reported only when the check passed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(_readings_in_copy, path)
        db = _open_copy(path)
        try:
            problem = _integrity_problem(db)
        finally:
            db.close()
        if problem:
            counted.cancel()
            raise DamagedCopy(f"integrity check: {problem}")
        return counted.result()


def _readings_in_copy(path: Path) -> tuple[int, str | None]:
    db = _open_copy(path)
    try:
        return _readings_in(db)
    finally:
        db.close()


def _open_copy(path: Path) -> sqlite3.Connection:
    """Open a copy read-only, without creating -wal or -shm files beside it."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)


def _integrity_problem(db: sqlite3.Connection) -> str | None:
    """The first problem SQLite's full integrity check finds (every page, cell and index entry)."""
    problems = [row[0] for row in db.execute("PRAGMA integrity_check(20)")]
    return None if problems == ["ok"] else first_problem(problems)


def _readings_in(db: sqlite3.Connection) -> tuple[int, str | None]:
    """How many readings a database holds, and the newest one's time stamp as stored.

    Two queries: COUNT(*) alone counts the index's pages and MAX() alone is one
    step, where the pair in one query walks every reading (7 s at a year).
    """
    table = Reading._meta.db_table
    rows = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return rows, db.execute(f"SELECT MAX(timestamp) FROM {table}").fetchone()[0]


def _newest_in(db: sqlite3.Connection) -> str | None:
    """The newest reading's stored time stamp; None when the table has none (not our schema:
    a restore's schema check then says whose database it is)."""
    try:
        return db.execute(f"SELECT MAX(timestamp) FROM {Reading._meta.db_table}").fetchone()[0]
    except sqlite3.OperationalError:
        return None


def _set_aside(live: sqlite3.Connection, table: str) -> bool:
    """Copy a live table aside before a restore (a temporary table survives it)."""
    try:
        live.execute(f"CREATE TEMP TABLE saved_{table} AS SELECT * FROM main.{table}")
    except sqlite3.DatabaseError:
        return False
    return True


def _put_back(live: sqlite3.Connection, table: str) -> None:
    """The table's rows are the live ones again, not the snapshot's older copy."""
    restored = {row[1] for row in live.execute(f"PRAGMA main.table_info({table})")}
    if not restored:
        return  # A snapshot from before the table existed: 'migrate' brings it.
    saved = [row[1] for row in live.execute(f"PRAGMA temp.table_info(saved_{table})")]
    names = ", ".join(name for name in saved if name in restored)
    live.execute(f"DELETE FROM main.{table}")
    live.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM temp.saved_{table}")
    live.execute(f"DROP TABLE temp.saved_{table}")


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
