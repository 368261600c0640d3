"""What a database engine does for backups: snapshot, and export rows as text."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db import transaction

from backup_tasks.errors import BackupError
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


class Engine:
    """Generic engine: exports through the ORM's database connection."""

    vendor = "generic"

    def __init__(self, alias: str, settings_dict: dict) -> None:
        self.alias = alias
        self.settings_dict = settings_dict

    def describe(self) -> str:
        return f"{self.settings_dict['ENGINE']} database {self.settings_dict.get('NAME')!r}"

    def check_available(self) -> None:
        """Raise a BackupError when the database cannot be read at all."""

    def size_bytes(self) -> int:
        """About how large a snapshot will be (0: unknown)."""
        return 0

    def snapshot(self, target: Path, *, with_sha256: bool = False) -> Snapshot:
        """Write a consistent, checked copy of the whole database to target; say what it holds."""
        raise BackupError(
            f"Database snapshots are not supported for {self.settings_dict['ENGINE']}: "
            "use the CSV and JSON exports, or the database's own dump tool."
        )

    def export_lines(
        self, line_format: str, zone: ZoneInfo, start: datetime | None, end: datetime | None, chunk: int
    ) -> Iterator[list[str]]:
        """Yield lists of formatted lines ('csv' or 'json'), oldest reading first."""
        rows = (
            Reading.objects.using(self.alias)
            .between(start, end)
            .order_by("timestamp", "id")
            .values_list(*FIELDS, "timestamp")
        )
        with transaction.atomic(using=self.alias):  # one consistent read, server-side cursor
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
