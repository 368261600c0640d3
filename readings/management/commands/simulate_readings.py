import sqlite3
import time
from datetime import datetime, timedelta
from itertools import islice

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from readings.models import Reading
from readings.simulation import generate

BATCH = 50_000


class Command(BaseCommand):
    help = "Fill the database with realistic demo readings (one every --interval seconds)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, required=True, help="how many days of readings")
        parser.add_argument("--interval", type=int, default=2, help="seconds between readings (default 2)")
        parser.add_argument(
            "--start",
            help="first day, YYYY-MM-DD in the plant's zone (default: so the readings end now)",
        )
        parser.add_argument("--seed", type=int, default=2, help="random seed (default 2)")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when the database already has readings"
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *, days, interval, start, seed, if_empty, database, **options):
        if if_empty and Reading.objects.using(database).exists():
            self.stdout.write("The database already has readings: no demo readings added.")
            return
        if days <= 0:
            raise CommandError("--days must be greater than 0")
        if interval <= 0:
            raise CommandError("--interval must be at least 1 second")
        count = int(days * 86_400 // interval)
        if start:
            try:
                first_day = datetime.strptime(start, "%Y-%m-%d")
            except ValueError:
                raise CommandError(f"--start must be a date like 2025-01-11, got {start!r}") from None
            start_at = timezone.make_aware(first_day)
        else:
            start_at = timezone.now() - timedelta(seconds=count * interval)
        start_epoch = int(start_at.timestamp()) // interval * interval

        rows = generate(start_epoch=start_epoch, count=count, interval=interval, seed=seed)
        began = time.monotonic()
        connection = connections[database]
        if connection.vendor == "sqlite":
            self._insert_sqlite(connection.settings_dict["NAME"], rows)
        else:
            self._insert_orm(database, rows)
        elapsed = time.monotonic() - began
        self.stdout.write(
            f"Created {count:,} readings from {timezone.localtime(start_at):%Y-%m-%d %H:%M} "
            f"every {interval} s in {elapsed:.1f} s"
        )

    def _insert_sqlite(self, path, rows) -> None:
        # A raw connection with executemany: the ORM would spend most of a
        # year's 15.8 million rows building model instances.
        try:
            db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        except sqlite3.OperationalError:
            raise CommandError(
                f"Database {path} does not exist: run 'python manage.py migrate' first."
            ) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            sql = (
                f"INSERT INTO {Reading._meta.db_table} (water_temperature, air_temperature,"
                " humidity, setpoint, pid_output, timestamp) VALUES (?, ?, ?, ?, ?, ?)"
            )
            while batch := list(islice(rows, BATCH)):
                with db:
                    db.executemany(sql, batch)
        except sqlite3.OperationalError as exc:
            raise CommandError(f"Could not write readings to {path}: {exc}") from None
        finally:
            db.close()

    def _insert_orm(self, database, rows) -> None:
        while batch := list(islice(rows, 5_000)):
            Reading.objects.using(database).bulk_create(
                Reading(
                    water_temperature=w,
                    air_temperature=a,
                    humidity=h,
                    setpoint=s,
                    pid_output=p,
                    timestamp=datetime.fromisoformat(t + "+00:00"),
                )
                for w, a, h, s, p, t in batch
            )
