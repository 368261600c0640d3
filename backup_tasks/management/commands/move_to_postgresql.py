"""python manage.py move_to_postgresql SQLITE_FILE: move a SQLite plant into the PostgreSQL database
DATABASE_URL names (migrated, without readings), streamed, in one transaction."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backup_tasks.core.errors import BackupError
from backup_tasks.services.move import move_plant


class Command(BaseCommand):
    help = (
        "Copy every reading, user, schedule and backup run of a SQLite database file into the "
        "PostgreSQL database of DATABASE_URL (run 'migrate' on it first; stop the sensor loop and the worker)."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="the SQLite database file of the plant (db.sqlite3)")

    def handle(self, **options):
        try:
            result = move_plant(Path(options["source"]))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        others = sum(result.rows.values())
        self.stdout.write(
            f"Moved {result.readings:,} readings and {others:,} other rows from {result.source} "
            f"in {result.duration_s:.1f} s."
        )
