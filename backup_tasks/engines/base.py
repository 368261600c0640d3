"""What a database engine does for backups: snapshot, export rows as text, verify a copy, restore into."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db import transaction

from backup_tasks.core.errors import BackupError
from readings.models import Reading

CENT = Decimal("0.01")
FIELDS = ("water_temperature", "air_temperature", "humidity", "setpoint", "pid_output")


def two_decimals(value: float) -> str:
    # Half away from zero on the value as written, as a person rounds
    # 24.125 to 24.13, the same as SQLite's printf and PostgreSQL's to_char.
    return str(Decimal(repr(value)).quantize(CENT, rounding=ROUND_HALF_UP))


def plain_number(value: float) -> str:
    """120.0 -> '120', 37.5 -> '37.5': no needless decimals."""
    return f"{value:.15g}"


@dataclass
class Snapshot:
    rows: int
    newest_reading: datetime | None
    sha256: str | None = None  # Of the file, when asked for and computed along the way.


@dataclass(frozen=True)
class Misconfigured:
    """A setting under which backups and the sensor loop cannot share the database."""

    message: str
    hint: str


class DamagedCopy(Exception):
    """What is wrong with a copy of a database, in a few words."""


class RestoreFailed(Exception):
    """Why copying a snapshot into a database stopped, in the engine's words."""


class Engine:
    """Generic engine: exports through the ORM's database connection."""

    snapshot_suffix = ".sqlite3"  # the ending of this engine's snapshot files
    tools_hint = ""  # what to install when missing_tools() names any

    def __init__(self, alias: str, settings_dict: dict) -> None:
        self.alias = alias
        self.settings_dict = settings_dict

    def _unsupported(self, what: str) -> BackupError:
        return BackupError(
            f"{what} is not supported for {self.settings_dict['ENGINE']}: "
            "use the CSV and JSON exports, or the database's own dump and restore tools."
        )

    def misconfiguration(self) -> Misconfigured | None:
        """What in this database's setup keeps backups and the sensor loop from sharing it, if anything."""
        return None

    def missing_tools(self) -> list[str]:
        """Programs this engine's backups and restores need that are not installed, and what to install."""
        return []

    def check_available(self) -> None:
        """Raise a BackupError when the database cannot be read at all."""

    def size_bytes(self) -> int:
        """About how large a snapshot will be (0: unknown)."""
        return 0

    def explain(self, exc: Exception) -> str:
        """A database error in words an operator can act on."""
        return str(exc)

    def is_live_file(self, path: Path) -> bool:
        """Whether path is one of the live database's own files (never to be read as a backup)."""
        return False

    def snapshot(self, target: Path, *, with_sha256: bool = False, for_history: bool = False) -> Snapshot:
        """Write a consistent, checked copy of the whole database to target; say what it holds.

        for_history: the copy goes into the deduplicating history, so the engine must
        not compress it itself (a compressed copy shares no chunks with the last one).
        """
        raise BackupError(
            f"Database snapshots are not supported for {self.settings_dict['ENGINE']}: "
            "use the CSV and JSON exports, or the database's own dump tool."
        )

    def verify_copy(self, path: Path) -> Snapshot:
        """Prove that a plain snapshot file is a whole, sound database; say what it holds.

        Raises DamagedCopy saying what is wrong with it.
        """
        raise self._unsupported("Checking a database snapshot")

    def applied_migrations(self, path: Path) -> set[tuple[str, str]]:
        """The (app, migration) pairs a snapshot file records; DamagedCopy when it has no such history."""
        raise self._unsupported("Restoring a database snapshot")

    def count_readings(self) -> int:
        """Readings in the live database now; 0 when it has no readings table."""
        return Reading.objects.using(self.alias).count()

    def restore_into(
        self, source: Path, target: Path | None = None, *, keep_tables: Sequence[str] = ()
    ) -> None:
        """Copy a verified snapshot file's content into target, a scratch file, or the live database (None).

        In the live database the rows of keep_tables stay the live ones. Raises
        RestoreFailed; the live database is then unchanged.
        """
        raise self._unsupported("Restoring a database snapshot")

    def drill(self, plain: Path) -> Snapshot:
        """Restore a verified snapshot file into a scratch copy and say what the copy holds.

        The scratch copy is removed in every case. Raises RestoreFailed when the
        copy cannot be made, DamagedCopy when the copy is not sound.
        """
        raise self._unsupported("A restore drill")

    def blocking_sessions(self) -> list[str]:
        """Other sessions whose locks would make a restore into the live database wait, in words."""
        return []

    def readings_rows(self, chunk: int = 50_000) -> Iterator[bytes]:
        """Every reading as CSV rows (id, the five values exactly, UTC time stamp), oldest id first."""
        raise self._unsupported("Moving the readings out")

    def load_readings(self, rows: Iterator[bytes]) -> int:
        """Stream readings_rows() of another database into this one's empty readings table.

        Runs in the ORM connection's current transaction; returns how many were loaded.
        """
        raise BackupError(
            f"Moving readings into {self.settings_dict['ENGINE']} is not supported: set DATABASE_URL to "
            "the PostgreSQL database to move to."
        )

    def export_lines(
        self,
        line_format: str,
        zone: ZoneInfo,
        start: datetime | None,
        end: datetime | None,
        chunk: int,
        count: Callable[[int], None] | None = None,
    ) -> Iterator[list[str]]:
        """Yield lists of formatted lines ('csv' or 'json'), oldest reading first.

        count, when given, is told how many readings will come before the first
        lines, counted in the same read as the lines themselves.
        """
        readings = Reading.objects.using(self.alias).between(start, end)
        rows = readings.order_by("timestamp", "id").values_list(*FIELDS, "timestamp")
        with transaction.atomic(using=self.alias):  # one consistent read, server-side cursor
            if count is not None:
                count(readings.count())
            batch = []
            for row in rows.iterator(chunk_size=chunk):
                batch.append(format_row(line_format, row, zone))
                if len(batch) == chunk:
                    yield batch
                    batch = []
            if batch:
                yield batch


def format_row(line_format: str, row: tuple, zone: ZoneInfo) -> str:
    water, air, humidity, setpoint, pid, timestamp = row
    when = timestamp.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    if line_format == "csv":
        return (
            f"{two_decimals(water)},{two_decimals(air)},{two_decimals(humidity)},"
            f"{two_decimals(setpoint)},{plain_number(pid)},{when}"
        )
    return (
        f'{{"water_temperature":{two_decimals(water)},"air_temperature":{two_decimals(air)},'
        f'"humidity":{two_decimals(humidity)},"setpoint":{two_decimals(setpoint)},'
        f'"pid_output":{plain_number(pid)},"timestamp":"{when}"}}'
    )
