"""python manage.py backup_database: the guide's manual backup, status and cleanup."""

import sys

from django.core.management.base import BaseCommand, CommandError

from backup_tasks import layout, services
from backup_tasks.errors import BackupError
from backup_tasks.status import backup_status, render_status

DONE_LINES = {
    "db": "Database backed up to {path}",
    "csv": "Readings exported to CSV: {path}",
    "json": "Readings exported to JSON: {path}",
}


class Error(CommandError):
    """Printed by Django as 'Error: <message>': one line, no traceback."""


class Command(BaseCommand):
    help = (
        "Back up the database and export readings to CSV and JSON (default: all), "
        "show the backup status, or remove old backups."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def one_line_error(message):
            if not parser.called_from_command_line:
                raise Error(message)
            parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

        parser.error = one_line_error
        return parser

    def add_arguments(self, parser):
        parser.add_argument(
            "--type",
            choices=["all", "db", "csv", "json"],
            help="what to back up: all (default), db, csv or json",
        )
        parser.add_argument("--status", action="store_true", help="show backup status and statistics")
        parser.add_argument("--cleanup", action="store_true", help="remove backups older than --days days")
        parser.add_argument(
            "--days",
            type=int,
            metavar="N",
            help="with --cleanup: keep N days of backups (default BACKUP_KEEP_DAYS, 30)",
        )

    def handle(self, *, type, status, cleanup, days, **options):
        if days is not None and not cleanup:
            raise Error("--days goes with --cleanup, as in: backup_database --cleanup --days 7")
        if days is not None and days < 1:
            raise Error(f"--days must be at least 1, got {days}")
        run_backup = type is not None or not (status or cleanup)
        try:
            if run_backup:
                self._backup(type or "all")
            if cleanup:
                self._cleanup(days)
        except BackupError as exc:
            raise Error(str(exc)) from None
        if status:
            report = backup_status()
            self.stdout.write(render_status(report))
            if report.database_problem:
                sys.stdout.flush()
                raise Error(report.database_problem)

    def _backup(self, kind: str) -> None:
        kinds = services.ALL_KINDS if kind == "all" else (kind,)

        def report(result: services.BackupResult) -> None:
            self.stdout.write(DONE_LINES[result.kind].format(path=layout.display_str(result.path)))

        services.complete_backup(kinds=kinds, on_result=report)
        if kind == "all":
            self.stdout.write("Backup completed!")

    def _cleanup(self, days: int | None) -> None:
        result = services.cleanup_old_backups(days_to_keep=days)
        for shown in layout.display_strs(result.removed):
            self.stdout.write(f"Removed {shown}")
        for shown in layout.display_strs(result.removed_temporary):
            self.stdout.write(f"Removed unfinished file {shown}")
        self.stdout.write(
            f"Cleanup complete: removed {len(result.removed)} backups older than "
            f"{result.days_to_keep} days ({services.human_size(result.freed_bytes)} freed), "
            f"kept {result.kept}."
        )
